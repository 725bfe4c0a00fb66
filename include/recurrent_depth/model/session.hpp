// The state of one sequence being run through a model: its KV cache, the scratch activations
// reused across calls, and the seeded generator for random initial states. Cheap to create;
// one session per concurrent sequence.
#pragma once

#include <cstdint>

#include "../blocks/block_context.hpp"
#include "../cache/kv_cache.hpp"
#include "../core/random.hpp"

namespace recurrent_depth {

struct Session {
  Session(std::size_t width, std::uint64_t seed, CacheRule rule = {}, KvCacheLimit limit = {})
      : cache(width, rule, limit), rng(seed) {}

  KvCache cache;
  Rng rng;
  Workspace workspace;
  Matrix<float> residual;      // [T, n_embd]: embeddings, then e, then the coda's stream
  Matrix<float> injected;      // adapter part that depends on e only
  Matrix<float> state;         // recurrent state
  Matrix<float> next;          // next recurrent state
  Matrix<float> previous;      // state before the last iteration (for exit criteria)
  Matrix<float> probe;         // coda stream of an exit check
  Matrix<float> probe_logits;  // logits of an exit check
};

}  // namespace recurrent_depth
