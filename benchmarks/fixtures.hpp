// Shared set-up of the benchmark suite: model shapes, seeded synthetic weights, copies of a layer
// rotated so that decode never finds its weights in cache, the one-at-a-time cache of expensive
// fixtures, and the counters every benchmark reports.
#pragma once

#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "recurrent_depth/backends/cpu/cpu_backend.hpp"
#include "recurrent_depth/backends/cpu/machine_limits.hpp"
#include "recurrent_depth/blocks/block_context.hpp"
#include "recurrent_depth/cache/kv_cache.hpp"
#include "recurrent_depth/core/precision.hpp"
#include "recurrent_depth/core/random.hpp"
#include "recurrent_depth/core/tensor.hpp"
#include "recurrent_depth/core/threads.hpp"
#include "recurrent_depth/model/architecture.hpp"
#include "recurrent_depth/model/synthetic_weights.hpp"

namespace rdbench {

namespace rd = recurrent_depth;
using Backend = rd::CpuBackend;

// Positions already in the KV cache when attention runs, and the prefill chunk length.
inline constexpr std::size_t kContext = 256;
inline constexpr std::size_t kPrefillChunk = 64;
inline constexpr std::uint64_t kSeed = 20250125;

// Name prefix of the block every layer is loaded from (the checkpoint holds one core block).
inline const std::string kBlockName = std::string(rd::names::kCore) + ".0";

inline const char* const kShapes[] = {"tiny", "huginn-mini", "huginn-0125"};

enum class Mode { decode, prefill };
inline constexpr Mode kModes[] = {Mode::decode, Mode::prefill};

inline std::size_t positions_of(Mode mode) {
  return mode == Mode::decode ? 1 : kPrefillChunk;
}
inline const char* mode_name(Mode mode) {
  return mode == Mode::decode ? "decode" : "prefill";
}

// ---- Rotation -----------------------------------------------------------------------------------
// Decode reads each weight once per call, so a benchmark that calls the same layer again would be
// served from the last-level cache. Each benchmark therefore owns several independent copies of
// its layer whose weights (and, for attention, KV slots: copy c attends through its own slot)
// together exceed this many bytes (default 128 MiB, 4x an EPYC CCD's 32 MiB L3, or twice the
// last-level cache where that is larger: 960 MiB on a Xeon with 480 MiB of L3;
// RDEPTH_BENCH_ROTATION_MB overrides) and uses the next copy on every iteration.
inline std::size_t rotation_bytes() {
  static const std::size_t bytes = [] {
    std::size_t bytes = rd::cpu::beyond_last_level_cache(std::size_t(128) << 20);
    if (const char* env = std::getenv("RDEPTH_BENCH_ROTATION_MB")) {
      const long value = std::strtol(env, nullptr, 10);
      if (value > 0) bytes = static_cast<std::size_t>(value) << 20;
    }
    return bytes;
  }();
  return bytes;
}

// Copies needed so that copies * touched_bytes >= rotation_bytes(), at most max_copies.
inline std::size_t copies_for(std::size_t touched_bytes, std::size_t max_copies = 4096) {
  const std::size_t n =
      (rotation_bytes() + touched_bytes - 1) / std::max<std::size_t>(touched_bytes, 1);
  return std::clamp<std::size_t>(n, 1, max_copies);
}

// ---- Weights and data ---------------------------------------------------------------------------

inline rd::ModelConfig bench_config(std::string_view shape) {
  return rd::shape_config(shape);
}

// The seeded synthetic checkpoint of one shape, with the real tensor names but only the tensors
// the benchmarks load: `transformer.adapter` and `transformer.core_block.0` (no prelude, coda or
// embedding rows worth mentioning; that keeps huginn-0125's checkpoint at 0.9 GB). Stored as bf16;
// f32 layers are read from it exactly (bf16 -> f32 widening), which does not change any timing.
// One shape is held at a time.
inline const rd::Checkpoint& checkpoint_for(const std::string& shape) {
  static std::string held;
  static std::optional<rd::Checkpoint> checkpoint;
  if (!checkpoint || held != shape) {
    checkpoint.reset();
    held.clear();
    rd::ModelConfig c = bench_config(shape);
    c.n_layers_in_prelude = 0;
    c.n_layers_in_recurrent_block = 1;
    c.n_layers_in_coda = 0;
    c.vocab_size = 64;
    c.validate("benchmark shape " + shape);
    checkpoint.emplace(rd::synthetic_checkpoint(c, kSeed, rd::DType::BF16));
    held = shape;
  }
  return *checkpoint;
}

// Rows of N(0, scale^2) values.
inline rd::Matrix<float> random_matrix(std::size_t rows, std::size_t cols, std::uint64_t seed,
                                       double scale = 1.0) {
  rd::Matrix<float> m(rows, cols);
  rd::Rng rng(seed);
  for (std::size_t r = 0; r < rows; ++r)
    for (std::size_t c = 0; c < cols; ++c) m(r, c) = static_cast<float>(scale * rng.normal());
  return m;
}

// ---- Attention state ----------------------------------------------------------------------------
// KV cache, RoPE table and scratch of the layers that attend. Every slot a benchmark uses already
// holds kContext + kPrefillChunk positions of random keys and values; each call then writes its
// rows at positions kContext, kContext + 1, ... which REPLACES the entries there in place (see
// KvSlot::write), so the cache never grows across iterations, and since keys after a query's own
// position are masked, a call does exactly the work of attending over kContext earlier positions.
// (KvCache::truncate would do the same at the price of a memmove inside the timed loop.)
// KV slots in the format a model of Precision's weights stores them in.
template <class Precision>
struct AttentionState {
  rd::KvCache cache;
  rd::Matrix<float> rope;
  rd::Workspace workspace;

  explicit AttentionState(const rd::ModelConfig& c)
      : cache(static_cast<std::size_t>(c.n_embd), rule()),
        rope(rd::rope_table(kContext + kPrefillChunk, static_cast<std::size_t>(c.head_dim()),
                            c.rope_base)) {}

  void populate(const std::vector<int>& slots) {
    const std::size_t width = cache.width();
    const rd::Matrix<float> keys = random_matrix(kContext + kPrefillChunk, width, kSeed + 11);
    const rd::Matrix<float> values = random_matrix(kContext + kPrefillChunk, width, kSeed + 12);
    for (int id : slots) cache.storage(id).write(0, keys.view(), values.view());
  }

  // Keys and values the last of `positions` queries reads (each entry at least once).
  double attended_bytes(std::size_t positions) const {
    return 2.0 * sizeof(float) *
           static_cast<double>(rd::kv_words_per_row(cache.width(), cache.format()) *
                               (kContext + positions));
  }

  // One sequence: the T rows of a call are its positions kContext .. kContext + T - 1.
  rd::BlockContext context(int slot, std::size_t positions) {
    sequence = rd::SequenceRows{&cache, kContext, 0, positions};
    return rd::BlockContext{std::span<const rd::SequenceRows>(&sequence, 1), slot, rope.view(),
                            workspace};
  }

 private:
  static rd::CacheRule rule() {
    rd::CacheRule rule;
    rule.format = rd::default_kv_format_for<Precision>;
    return rule;
  }
  rd::SequenceRows sequence{};
};

// Sum over the T queries of the keys each one sees (its own position included).
inline double visible_keys(std::size_t positions) {
  double total = 0;
  for (std::size_t t = 0; t < positions; ++t) total += static_cast<double>(kContext + t + 1);
  return total;
}

// ---- Counters -----------------------------------------------------------------------------------

struct Work {
  double weight_bytes = 0;      // matmul weight bytes read per call
  double flops = 0;             // per call
  double kv_bytes = 0;          // KV cache bytes attended per call (keys and values)
  double activation_bytes = 0;  // reported only where the weights are negligible (norms)
};

// GB/s counts every byte a call has to move (weights + KV + the activations where counted): the
// figure to compare with machine/read_bandwidth. weight_GB/s, kv_GB/s and act_GB/s split it.
inline void report(benchmark::State& state, const Work& work, std::size_t positions) {
  using benchmark::Counter;
  state.counters["GB/s"] = Counter(work.weight_bytes + work.kv_bytes + work.activation_bytes,
                                   Counter::kIsIterationInvariantRate, Counter::kIs1000);
  state.counters["weight_GB/s"] =
      Counter(work.weight_bytes, Counter::kIsIterationInvariantRate, Counter::kIs1000);
  state.counters["GFLOP/s"] =
      Counter(work.flops, Counter::kIsIterationInvariantRate, Counter::kIs1000);
  state.counters["positions"] = Counter(static_cast<double>(positions));
  if (work.kv_bytes > 0)
    state.counters["kv_GB/s"] =
        Counter(work.kv_bytes, Counter::kIsIterationInvariantRate, Counter::kIs1000);
  if (work.activation_bytes > 0)
    state.counters["act_GB/s"] =
        Counter(work.activation_bytes, Counter::kIsIterationInvariantRate, Counter::kIs1000);
}

// "12.3 kB", "4.56 MB", "790 MB": weight bytes one call reads, for the benchmark label.
inline std::string human_bytes(double bytes) {
  char text[32];
  if (bytes < 1e6)
    std::snprintf(text, sizeof text, "%.1f kB", bytes / 1e3);
  else if (bytes < 1e8)
    std::snprintf(text, sizeof text, "%.2f MB", bytes / 1e6);
  else
    std::snprintf(text, sizeof text, "%.0f MB", bytes / 1e6);
  return text;
}

// ---- One fixture at a time ----------------------------------------------------------------------
// Benchmarks are registered grouped by (shape, precision, fixture), decode then prefill, so each
// fixture is built once, used by its consecutive benchmarks (and their repetitions), and dropped
// when the next one is built: memory stays at one fixture (about 1.8 GB at most, huginn-0125's f32
// core iteration, plus its load-time copies) and the checkpoint. Random interleaving would rebuild
// fixtures over and over.
class FixtureCache {
 public:
  template <class T, class Build>
  T& get(const std::string& key, Build&& build) {
    if (key_ != key || !value_) {
      value_.reset();
      key_.clear();
      std::unique_ptr<T> built = build();
      value_ = std::shared_ptr<void>(built.release(), [](void* p) { delete static_cast<T*>(p); });
      key_ = key;
    }
    return *static_cast<T*>(value_.get());
  }
  void clear() {
    value_.reset();
    key_.clear();
  }

 private:
  std::string key_;
  std::shared_ptr<void> value_;
};

inline FixtureCache& fixture_cache() {
  static FixtureCache cache;
  return cache;
}

// Per-shape benchmark settings: short minimum times for the small widths (a `--benchmark_filter=
// tiny` run takes seconds), longer for huginn-0125, where one prefill call takes seconds anyway.
inline benchmark::internal::Benchmark* apply_settings(benchmark::internal::Benchmark* b,
                                                      std::string_view shape,
                                                      bool microseconds = false) {
  b->UseRealTime();
  if (shape == "tiny") {
    b->Unit(benchmark::kMicrosecond)->MinTime(0.1);
  } else if (shape == "huginn-mini") {
    b->Unit(microseconds ? benchmark::kMicrosecond : benchmark::kMillisecond)->MinTime(0.2);
  } else {
    b->Unit(microseconds ? benchmark::kMicrosecond : benchmark::kMillisecond)->MinTime(0.3);
  }
  return b;
}

// The loop every fixture benchmark shares. A Fixture provides copies(), run(copy, positions),
// work(positions) and describe(); the first call per (fixture, mode) runs once untimed so that
// scratch buffers are sized and touched before timing.
template <class Fixture>
void run_fixture(benchmark::State& state, Fixture& fixture, Mode mode) {
  const std::size_t positions = positions_of(mode);
  fixture.resize_inputs(positions);
  auto& warmed = fixture.warmed[mode == Mode::decode ? 0 : 1];
  if (!warmed) {
    fixture.run(fixture.next_copy(), positions);
    warmed = true;
  }
  for (auto _ : state) {
    fixture.run(fixture.next_copy(), positions);
    benchmark::ClobberMemory();
  }
  report(state, fixture.work(positions), positions);
  state.SetLabel(std::to_string(fixture.copies()) + " copies, " +
                 human_bytes(fixture.work(1).weight_bytes) + " weights/call");
}

// Base of the fixtures: the rotating copy index (kept across runs, so a new run starts on the
// least recently used copy) and the warm-up flags.
struct RotatingFixture {
  std::size_t cursor = 0;
  bool warmed[2] = {false, false};
  std::size_t count = 1;
  std::size_t copies() const { return count; }
  std::size_t next_copy() {
    const std::size_t c = cursor;
    cursor = (cursor + 1) % count;
    return c;
  }
};

// Registers NAME/decode and NAME/prefill for a fixture type built by `build` (returns unique_ptr).
template <class Fixture, class Build>
void register_fixture(const std::string& shape, const std::string& name, Build build,
                      bool microseconds = false) {
  for (Mode mode : kModes) {
    const std::string full = name + "/" + mode_name(mode);
    benchmark::internal::Benchmark* b =
        benchmark::RegisterBenchmark(full.c_str(), [name, mode, build](benchmark::State& state) {
          Fixture* fixture = nullptr;
          try {
            fixture = &fixture_cache().get<Fixture>(name, build);
          } catch (const std::exception& e) {
            fixture_cache().clear();
            state.SkipWithError(e.what());
            return;
          }
          run_fixture(state, *fixture, mode);
        });
    apply_settings(b, shape, microseconds);
  }
}

// Defined in bench_machine.cpp, bench_kernels.cpp and bench_blocks.cpp; called by main() in the
// order the benchmarks should run.
void register_machine_benchmarks();
void register_kernel_benchmarks(const std::string& shape, rd::WeightFormat format);
void register_block_benchmarks(const std::string& shape, rd::WeightFormat format);

}  // namespace rdbench
