// The state of one sequence being run through a model: its KV cache, the scratch activations
// reused across calls (both in the backend's Memory), and the seeded generator for random initial
// states. Cheap to create; one session per concurrent sequence.
#pragma once

#include <cstdint>

#include "../blocks/block_context.hpp"
#include "../cache/kv_cache.hpp"
#include "../core/random.hpp"

namespace recurrent_depth {

template <class Memory = HostMemory>
struct BasicSession {
  using Matrix = typename Memory::Matrix;

  BasicSession(std::size_t width, std::uint64_t seed, CacheRule rule = {}, KvCacheLimit limit = {})
      : cache(width, rule, limit), rng(seed) {}

  // The session of a new sequence, as if just constructed, keeping the memory of its cache
  // (where the rule stays) and of its scratch buffers.
  void restart(std::uint64_t seed, CacheRule rule = {}, KvCacheLimit limit = {}) {
    cache.restart(rule, limit);
    rng = Rng(seed);
  }

  typename Memory::Stream stream;  // where the session's forward passes queue their work
  BasicKvCache<Memory> cache;
  Rng rng;
  BasicWorkspace<Memory> workspace;
  Matrix residual;      // [T, n_embd]: embeddings, then e, then the coda's stream
  Matrix injected;      // adapter part that depends on e only
  Matrix state;         // recurrent state
  Matrix next;          // next recurrent state
  Matrix previous;      // state before the last iteration (for exit criteria)
  Matrix probe;         // coda stream of an exit check
  Matrix probe_logits;  // logits of an exit check
  Matrix latents;       // ln_f(final state) [T, n_embd]
  typename Memory::template Array<std::int32_t> staged_ids;  // token ids in Memory
  // Host copies of device rows the exit criteria and the results read (unused on host memory).
  recurrent_depth::Matrix<float> host_rows, host_previous, host_logits;
};

// A session of a CPU model (host memory).
using Session = BasicSession<>;

}  // namespace recurrent_depth
