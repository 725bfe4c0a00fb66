// The work behind the machine's measured limits (machine_limits.hpp), compiled with the kernels'
// flags so that it runs the instructions they run:
//   sum_streams      sums a float array with all OpenMP threads, several streams per thread
//   fma_chains       independent register-resident FMA chains on all threads, in the SIMD batch
//                    the kernels use (xsimd's default architecture for the compile flags)
//   int8_dot_chains  the same with the int8 kernel's instruction (AVX-512 VNNI vpdpbusd, 64
//                    multiply-adds of bytes per instruction); only where the build has it
#pragma once

#include <cstddef>

#include "../../core/threads.hpp"
#include "simd.hpp"

namespace recurrent_depth::cpu {
inline namespace RECURRENT_DEPTH_KERNEL_NAMESPACE {

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

}  // namespace detail

}  // namespace RECURRENT_DEPTH_KERNEL_NAMESPACE
}  // namespace recurrent_depth::cpu
