// The machine's limits, measured in the same run so every figure can be read next to them:
// machine/read_bandwidth sums a 1 GiB float array with all OpenMP threads (4 streams each);
// machine/peak_fma runs independent register-resident FMA chains on all threads with the SIMD
// batch the library's kernels use (xsimd's default architecture for the compile flags).
#include <cstddef>
#include <memory>
#include <new>

#include "fixtures.hpp"
#include "recurrent_depth/backends/cpu/simd.hpp"

namespace rdbench {
namespace {

using rd::cpu::FloatBatch;
using rd::cpu::kFloatLanes;

struct ReadBuffer {
  static constexpr std::size_t kFloats = std::size_t(1) << 28;  // 1 GiB
  struct Free {
    void operator()(float* p) const { ::operator delete[](p, std::align_val_t{64}); }
  };
  std::unique_ptr<float[], Free> data{
      static_cast<float*>(::operator new[](kFloats * sizeof(float), std::align_val_t{64}))};
  ReadBuffer() {
    const std::ptrdiff_t n = static_cast<std::ptrdiff_t>(kFloats);
    float* p = data.get();
    // First touch from the threads that will read it.
#pragma omp parallel for schedule(static)
    for (std::ptrdiff_t i = 0; i < n; ++i) p[i] = static_cast<float>(i & 1023) * 1e-3f;
  }
};

// Each work item sums kStreams chunks at once (two accumulators each): several concurrent
// streams per thread, as the matmul kernel reads 4 weight rows at once, keep more lines in flight
// than a single stream and measure a few GB/s more on this machine.
float sum_all(const float* p, std::size_t n) {
  constexpr std::size_t kChunk = 1 << 16;  // floats per stream and work item
  constexpr int kStreams = 4;
  const std::ptrdiff_t items = static_cast<std::ptrdiff_t>(n / (kChunk * kStreams));
  float total = 0.0f;
#pragma omp parallel for schedule(static) reduction(+ : total)
  for (std::ptrdiff_t c = 0; c < items; ++c) {
    const float* q[kStreams];
    FloatBatch a[kStreams][2];
    for (int s = 0; s < kStreams; ++s) {
      q[s] = p + (static_cast<std::size_t>(c) * kStreams + s) * kChunk;
      a[s][0] = a[s][1] = FloatBatch(0.0f);
    }
    for (std::size_t i = 0; i < kChunk; i += 2 * kFloatLanes) {
      for (int s = 0; s < kStreams; ++s) {
        a[s][0] += FloatBatch::load_aligned(q[s] + i);
        a[s][1] += FloatBatch::load_aligned(q[s] + i + kFloatLanes);
      }
    }
    FloatBatch sum(0.0f);
    for (int s = 0; s < kStreams; ++s) sum += a[s][0] + a[s][1];
    total += xsimd::hadd(sum);
  }
  return total;
}

void read_bandwidth(benchmark::State& state) {
  ReadBuffer& buffer = fixture_cache().get<ReadBuffer>(
      "machine/read_bandwidth", [] { return std::make_unique<ReadBuffer>(); });
  for (auto _ : state) {
    float total = sum_all(buffer.data.get(), ReadBuffer::kFloats);
    benchmark::DoNotOptimize(total);
  }
  state.counters["read_GB/s"] = benchmark::Counter(double(ReadBuffer::kFloats * sizeof(float)),
                                                   benchmark::Counter::kIsIterationInvariantRate,
                                                   benchmark::Counter::kIs1000);
  state.counters["threads"] = benchmark::Counter(rd::max_threads());
}

// kChains independent accumulators per thread: enough to cover the FMA latency times the number
// of FMA pipes, few enough to stay in registers.
constexpr int kChains = 16;
constexpr long kSteps = 1 << 22;

float fma_chains(long steps) {
  float sink = 0.0f;
#pragma omp parallel reduction(+ : sink)
  {
    FloatBatch acc[kChains];
    for (int k = 0; k < kChains; ++k)
      acc[k] = FloatBatch(1e-3f * float(k + 1 + rd::thread_index()));
    const FloatBatch a(0.999999f), b(1e-7f);
    for (long s = 0; s < steps; ++s) {
#pragma GCC unroll 16
      for (int k = 0; k < kChains; ++k) acc[k] = xsimd::fma(acc[k], a, b);
    }
    FloatBatch total(0.0f);
    for (int k = 0; k < kChains; ++k) total += acc[k];
    sink += xsimd::hadd(total);
  }
  return sink;
}

void peak_fma(benchmark::State& state) {
  for (auto _ : state) {
    float sink = fma_chains(kSteps);
    benchmark::DoNotOptimize(sink);
  }
  const double flops = 2.0 * kFloatLanes * kChains * double(kSteps) * rd::max_threads();
  state.counters["GFLOP/s"] = benchmark::Counter(
      flops, benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
  state.counters["threads"] = benchmark::Counter(rd::max_threads());
}

}  // namespace

void register_machine_benchmarks() {
  benchmark::RegisterBenchmark("machine/read_bandwidth", read_bandwidth)
      ->UseRealTime()
      ->Unit(benchmark::kMillisecond)
      ->MinTime(0.5);
  benchmark::RegisterBenchmark("machine/peak_fma", peak_fma)
      ->UseRealTime()
      ->Unit(benchmark::kMillisecond)
      ->MinTime(0.3);
}

}  // namespace rdbench
