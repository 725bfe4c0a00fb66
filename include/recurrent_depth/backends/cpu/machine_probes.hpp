// The work behind the machine's measured limits (machine_limits.hpp), compiled with the kernels'
// flags so that it runs the instructions they run:
//   sum_streams      sums a float array with all OpenMP threads, in one of several read patterns
//                    (1 to 4 streams per thread, with or without software prefetch)
//   fma_peak         independent register-resident FMA chains on every thread, in the SIMD batch
//                    the kernels use (xsimd's default architecture for the compile flags)
//   int8_dot_peak    the same with AVX-512 VNNI's vpdpbusd (64 multiply-adds of bytes per
//                    instruction); only where the build has it
//   bf16_vector_dot_peak  the same with AVX-512 BF16's vdpbf16ps (16 lanes, each adding the
//                    products of a pair of bf16 values); in every AVX-512 build, 0 where the CPU
//                    lacks it. The kernels do not use it: it is quoted beside the FMA peak, and
//                    a bf16 prompt's vector peak is the larger of the two
//   amx_tile_peak    products of whole AMX tiles (tdpbsud: 16384 byte products; tdpbf16ps:
//                    8192 bf16 pairs); the AMX table's int8 and bf16 peaks (kernel_table.hpp)
// Each peak is timed per thread, best pass of each thread, summed over the team
// (team_peak_rate): the rate the units reach while the thread runs, on a machine shared with
// others. tests/test_machine_peaks.cpp checks each against a differently written loop.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>

#include "../../core/threads.hpp"
#include "cpu_features.hpp"
#include "linear_amx.hpp"
#include "simd.hpp"

namespace recurrent_depth::cpu {

// How sum_streams reads: streams (1 to kMaxReadStreams) chunks at once per thread, each
// prefetched ahead or not. Which pattern reads fastest depends on the machine (and its moods).
struct ReadPattern {
  int streams = 4;
  bool prefetch = false;
};
inline constexpr int kMaxReadStreams = 4;
// Floats per unit of work of every pattern (12 chunks of 2^16: a multiple of 1, 2, 3 and 4).
inline constexpr std::size_t kReadUnit = std::size_t(12) << 16;

}  // namespace recurrent_depth::cpu

namespace recurrent_depth::cpu {
inline namespace RECURRENT_DEPTH_KERNEL_NAMESPACE {

namespace detail {

// Sums n floats (n a multiple of kReadUnit) in the given pattern: each work item reads
// pattern.streams chunks of 2^16 floats at once, each prefetched 2 KB ahead when asked.
template <int Streams, bool Prefetch>
float sum_streams_in(const float* p, std::size_t n) {
  constexpr std::size_t kChunk = 1 << 16;
  const auto items = static_cast<std::ptrdiff_t>(n / (kChunk * Streams));
  float total = 0.0f;
#pragma omp parallel for schedule(static) reduction(+ : total)
  for (std::ptrdiff_t c = 0; c < items; ++c) {
    const float* q[Streams];
    FloatBatch a[Streams][2];
    for (int s = 0; s < Streams; ++s) {
      q[s] = p + (static_cast<std::size_t>(c) * Streams + s) * kChunk;
      a[s][0] = a[s][1] = FloatBatch(0.0f);
    }
    for (std::size_t i = 0; i < kChunk; i += 2 * kFloatLanes)
      for (int s = 0; s < Streams; ++s) {
        if constexpr (Prefetch) __builtin_prefetch(q[s] + i + 512);
        a[s][0] += FloatBatch::load_aligned(q[s] + i);
        a[s][1] += FloatBatch::load_aligned(q[s] + i + kFloatLanes);
      }
    FloatBatch sum(0.0f);
    for (int s = 0; s < Streams; ++s) sum += a[s][0] + a[s][1];
    total += xsimd::hadd(sum);
  }
  return total;
}

inline float sum_streams(const float* p, std::size_t n, ReadPattern pattern) {
  using Sum = float (*)(const float*, std::size_t);
  static constexpr Sum kSums[2][kMaxReadStreams] = {
      {&sum_streams_in<1, false>, &sum_streams_in<2, false>, &sum_streams_in<3, false>,
       &sum_streams_in<4, false>},
      {&sum_streams_in<1, true>, &sum_streams_in<2, true>, &sum_streams_in<3, true>,
       &sum_streams_in<4, true>}};
  const int streams = std::clamp(pattern.streams, 1, kMaxReadStreams);
  return kSums[pattern.prefetch ? 1 : 0][streams - 1](p, n);
}

// Independent chains: enough to cover FMA latency x pipes (4 x 2 on the CPUs measured), few enough
// to stay in registers with the two operands (16 on AVX2 would spill: measured 25% low).
inline constexpr int kFmaChains = kVectorRegisters == 32 ? 16 : 12;
inline constexpr int kDotChains = 16;  // AVX-512 only
// Steps of the chains per timed pass: about 0.2-0.5 ms, short enough that some passes run
// without being preempted on a shared machine, long enough for the clock.
inline constexpr long kProbeSteps = 1 << 15;

// The throughput of the whole team in 1e9 operations per second: every thread runs
// chains(steps) `passes` times (all threads together, a barrier before each) and times each of its
// passes on its own; the rate is the sum over the threads of ops_per_step x steps / that thread's
// fastest pass. steps is read anew from memory for every pass, and the result kept, so that the
// compiler can neither hoist a pass out of the loop nor drop it. A thread that the system (or
// another program) preempts during a pass only loses that pass, where timing the team as a whole
// would lose it for every thread.
template <class Sink>
double team_peak_rate(int passes, long steps, double ops_per_step, Sink (*chains)(long)) {
  double rate = 0.0;
#pragma omp parallel reduction(+ : rate)
  {
    double fastest = 1e30;
    for (int i = 0; i < passes; ++i) {
#pragma omp barrier
      const auto start = std::chrono::steady_clock::now();
      volatile long opaque_steps = steps;
      volatile Sink sink = chains(opaque_steps);
      (void)sink;
      fastest = std::min(
          fastest, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    }
    rate += ops_per_step * double(steps) / fastest / 1e9;
  }
  return rate;
}

// kFmaChains independent FMA chains of `steps` steps on this thread; returns their sum.
inline float fma_chains(long steps) {
  FloatBatch acc[kFmaChains];
  for (int k = 0; k < kFmaChains; ++k) acc[k] = FloatBatch(1e-3f * float(k + 1 + thread_index()));
  const FloatBatch a(0.999999f), b(1e-7f);
  for (long s = 0; s < steps; ++s) {
#pragma GCC unroll 16
    for (int k = 0; k < kFmaChains; ++k) acc[k] = xsimd::fma(acc[k], a, b);
  }
  FloatBatch total(0.0f);
  for (int k = 0; k < kFmaChains; ++k) total += acc[k];
  return xsimd::hadd(total);
}

// GFLOP/s of the FMA chains on the team (2 per lane per FMA).
inline double fma_peak(int passes) {
  return team_peak_rate(passes, kProbeSteps, 2.0 * double(kFloatLanes) * kFmaChains, &fma_chains);
}

#if defined(__AMX_TILE__) && (defined(__AMX_INT8__) || defined(__AMX_BF16__))
// Products of whole 16 x 64-byte tiles on this thread, 4 independent accumulators per step;
// returns a value that depends on the sums.
template <AmxProduct P>
inline int amx_tile_chains(long steps) {
  alignas(64) std::uint8_t a[16 * 64], b[16 * 64];
  alignas(64) std::int32_t c[16 * 16];
  std::fill_n(a, 16 * 64, std::uint8_t(0x3F));  // a small bf16 or int8 value either way
  std::fill_n(b, 16 * 64, std::uint8_t(3 + thread_index()));
  load_tile_config();
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
  _tile_loadd(4, a, 64);
  _tile_loadd(5, a, 64);
  _tile_loadd(6, b, 64);
  _tile_loadd(7, b, 64);
  for (long s = 0; s < steps; ++s) amx_products<P, 2, 2>();
  _tile_stored(3, c, 64);
  _tile_release();
  return c[0];
}

// G-operations/s of the tile products on the team: 2 per product of a pair of values (64 int8
// or 32 bf16 pairs per row and column of a tile), 4 tile products per step.
template <AmxProduct P>
inline double amx_tile_peak(int passes) {
  require(amx_tiles_permitted(), "machine probe: the operating system refuses the AMX tiles");
  constexpr long kSteps = kProbeSteps / 16;  // a tile product takes 16 cycles or more
  const double pairs = P == AmxProduct::int8 ? 64.0 : 32.0;
  return team_peak_rate(passes, kSteps, 2.0 * 16 * 16 * pairs * 4, &amx_tile_chains<P>);
}
#endif

#if defined(__AVX512VNNI__)
// kDotChains independent vpdpbusd chains on this thread (64 byte products per instruction).
inline int int8_dot_chains(long steps) {
  __m512i acc[kDotChains];
  for (int k = 0; k < kDotChains; ++k) acc[k] = _mm512_set1_epi32(k + thread_index());
  const __m512i a = _mm512_set1_epi8(3), b = _mm512_set1_epi8(-2);
  for (long s = 0; s < steps; ++s) {
#pragma GCC unroll 16
    for (int k = 0; k < kDotChains; ++k) acc[k] = dot_bytes_add(acc[k], a, b);
  }
  __m512i total = acc[0];
  for (int k = 1; k < kDotChains; ++k) total = _mm512_add_epi32(total, acc[k]);
  return _mm512_cvtsi512_si32(total);  // lane 0: depends on the chains
}

// GOP/s of vpdpbusd on the team (2 per byte product).
inline double int8_dot_peak(int passes) {
  return team_peak_rate(passes, kProbeSteps, 2.0 * 64 * kDotChains, &int8_dot_chains);
}
#endif

#if defined(__AVX512F__)
// AVX-512 BF16's vector dot products (vdpbf16ps: 16 lanes, each adding the products of a pair
// of bf16 values): compiled for that extension alone, so that every AVX-512 table can probe it
// where the CPU has it (the kernels do not use it: the FMAs on float activations are faster on
// the CPUs measured, and exact).
__attribute__((target("avx512bf16"))) inline float bf16_vector_dot_chains(long steps) {
  __m512 acc[kDotChains];
  for (int k = 0; k < kDotChains; ++k) acc[k] = _mm512_set1_ps(1e-3f * float(k + thread_index()));
  const __m512bh a = _mm512_cvtne2ps_pbh(_mm512_set1_ps(1e-3f), _mm512_set1_ps(2e-3f));
  const __m512bh b = _mm512_cvtne2ps_pbh(_mm512_set1_ps(-1e-3f), _mm512_set1_ps(3e-3f));
  for (long s = 0; s < steps; ++s) {
#pragma GCC unroll 16
    for (int k = 0; k < kDotChains; ++k) acc[k] = _mm512_dpbf16_ps(acc[k], a, b);
  }
  __m512 total = acc[0];
  for (int k = 1; k < kDotChains; ++k) total = _mm512_add_ps(total, acc[k]);
  return _mm512_cvtss_f32(total);  // lane 0: depends on the chains
}

// GFLOP/s of vdpbf16ps on the team (2 per product of a pair, 2 pairs per lane); 0 where the CPU
// lacks AVX-512 BF16.
inline double bf16_vector_dot_peak(int passes) {
  if (!missing_cpu_features(kAvx512bf16).empty()) return 0.0;
  return team_peak_rate(passes, kProbeSteps, 2.0 * 2 * 16 * kDotChains, &bf16_vector_dot_chains);
}
#endif

}  // namespace detail

}  // namespace RECURRENT_DEPTH_KERNEL_NAMESPACE
}  // namespace recurrent_depth::cpu
