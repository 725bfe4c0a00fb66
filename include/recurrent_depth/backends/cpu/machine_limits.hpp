// The machine's own limits, measured, so throughput can be quoted as a fraction of them:
//   ReadBandwidthProbe  sums a large float array (well beyond the caches, on huge pages as the
//                       weights) with all OpenMP threads, several streams per thread; repeatable
//                       next to each step of a measurement (the bandwidth of a shared machine
//                       moves)
//   fma_peak_gflops     independent register-resident FMA chains on all threads, in the SIMD batch
//                       the kernels use (xsimd's default architecture for the compile flags)
//   int8_dot_peak_gops  the same with the int8 kernel's instruction (AVX-512 VNNI vpdpbusd, 64
//                       multiply-adds of bytes per instruction); 0 where the build has none
// Each returns the best of a few timed passes (the machine may be shared: the best pass is the
// closest to what it can do).
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>

#include "../../core/aligned_memory.hpp"
#include "../../core/threads.hpp"
#include "simd.hpp"

namespace recurrent_depth::cpu {

namespace detail {

// Sums n floats (n a multiple of 4 * 2^16): each work item reads 4 chunks at once.
inline float sum_streams(const float* p, std::size_t n) {
  constexpr std::size_t kChunk = 1 << 16;
  constexpr int kStreams = 4;
  const auto items = static_cast<std::ptrdiff_t>(n / (kChunk * kStreams));
  float total = 0.0f;
#pragma omp parallel for schedule(static) reduction(+ : total)
  for (std::ptrdiff_t c = 0; c < items; ++c) {
    const float* q[kStreams];
    FloatBatch a[kStreams][2];
    for (int s = 0; s < kStreams; ++s) {
      q[s] = p + (static_cast<std::size_t>(c) * kStreams + s) * kChunk;
      a[s][0] = a[s][1] = FloatBatch(0.0f);
    }
    for (std::size_t i = 0; i < kChunk; i += 2 * kFloatLanes)
      for (int s = 0; s < kStreams; ++s) {
        a[s][0] += FloatBatch::load_aligned(q[s] + i);
        a[s][1] += FloatBatch::load_aligned(q[s] + i + kFloatLanes);
      }
    FloatBatch sum(0.0f);
    for (int s = 0; s < kStreams; ++s) sum += a[s][0] + a[s][1];
    total += xsimd::hadd(sum);
  }
  return total;
}

inline constexpr int kFmaChains = 16;  // covers FMA latency x pipes, stays in registers

// FLOPs fma_chains(steps) performs on all threads (2 per lane per FMA).
inline double fma_chains_flops(long steps) {
  return 2.0 * double(kFloatLanes) * kFmaChains * double(steps) * max_threads();
}

inline float fma_chains(long steps) {
  constexpr int kChains = kFmaChains;
  float sink = 0.0f;
#pragma omp parallel reduction(+ : sink)
  {
    FloatBatch acc[kChains];
    for (int k = 0; k < kChains; ++k) acc[k] = FloatBatch(1e-3f * float(k + 1 + thread_index()));
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

#if defined(__AVX512VNNI__)
// Operations int8_dot_chains(steps) performs on all threads (2 per byte product).
inline double int8_dot_chains_ops(long steps) {
  return 2.0 * 64 * kFmaChains * double(steps) * max_threads();
}

inline int int8_dot_chains(long steps) {
  int sink = 0;
#pragma omp parallel reduction(+ : sink)
  {
    __m512i acc[kFmaChains];
    for (int k = 0; k < kFmaChains; ++k) acc[k] = _mm512_set1_epi32(k + thread_index());
    const __m512i a = _mm512_set1_epi8(3), b = _mm512_set1_epi8(-2);
    for (long s = 0; s < steps; ++s) {
#pragma GCC unroll 16
      for (int k = 0; k < kFmaChains; ++k) acc[k] = _mm512_dpbusd_epi32(acc[k], a, b);
    }
    alignas(64) int lanes[16];
    for (int k = 0; k < kFmaChains; ++k) {
      _mm512_store_si512(lanes, acc[k]);
      sink += lanes[0];
    }
  }
  return sink;
}
#endif

template <class Work>
double best_seconds(int passes, Work&& work) {
  double best = 1e30;
  for (int i = 0; i < passes; ++i) {
    const auto start = std::chrono::steady_clock::now();
    work();
    best = std::min(
        best, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  return best;
}

}  // namespace detail

// Read bandwidth in GB/s (1e9 bytes) over a buffer of `bytes` (default 256 MiB), allocated and
// first touched once, so that the probe can be repeated next to each step of a measurement.
class ReadBandwidthProbe {
 public:
  explicit ReadBandwidthProbe(std::size_t bytes = std::size_t(256) << 20)
      : floats_(std::max(kUnit, bytes / sizeof(float) / kUnit * kUnit)),
        buffer_(allocate_aligned<float>(floats_)) {  // huge pages, as the weights
    float* p = buffer_.get();
#pragma omp parallel for schedule(static)
    for (std::ptrdiff_t i = 0; i < static_cast<std::ptrdiff_t>(floats_); ++i)  // by the readers
      p[i] = static_cast<float>(i & 1023) * 1e-3f;
  }

  std::size_t bytes() const {
    return floats_ * sizeof(float);
  }
  // One pass over the buffer (the sum of its values).
  float read() const {
    return detail::sum_streams(buffer_.get(), floats_);
  }
  // The best of `passes` timed passes.
  double gbs(int passes = 4) const {
    volatile float sink = 0.0f;
    const double seconds = detail::best_seconds(passes, [&] { sink = sink + read(); });
    return double(bytes()) / seconds / 1e9;
  }

 private:
  static constexpr std::size_t kUnit = std::size_t(4) << 16;  // floats per work item
  std::size_t floats_;
  AlignedArray<float> buffer_;
};

// Peak float32 FMA throughput in GFLOP/s (2 FLOP per lane per FMA) on all threads.
inline double fma_peak_gflops(int passes = 5) {
  constexpr long kSteps = 1 << 21;
  volatile float sink = 0.0f;
  const double seconds =
      detail::best_seconds(passes, [&] { sink = sink + detail::fma_chains(kSteps); });
  return detail::fma_chains_flops(kSteps) / seconds / 1e9;
}

// Peak int8 dot-product throughput in GOP/s (2 operations per byte product) on all threads; 0
// when the build has no int8 dot-product instruction (the int8 kernel then runs a plain loop).
inline double int8_dot_peak_gops(int passes = 5) {
#if defined(__AVX512VNNI__)
  constexpr long kSteps = 1 << 21;
  volatile int sink = 0;
  const double seconds =
      detail::best_seconds(passes, [&] { sink = sink + detail::int8_dot_chains(kSteps); });
  return detail::int8_dot_chains_ops(kSteps) / seconds / 1e9;
#else
  (void)passes;
  return 0.0;
#endif
}

}  // namespace recurrent_depth::cpu
