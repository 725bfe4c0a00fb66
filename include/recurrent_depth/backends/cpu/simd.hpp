// SIMD vocabulary of the CPU kernels: the architecture chosen at compile time (xsimd's best for
// the compiler flags), float batches, and loading bf16 and int8 weights as float batches (xsimd
// has no bf16 type and no int8 -> float widening, so these loads use intrinsics behind the same
// architecture tags, with a portable fallback).
//
// Everything that depends on the compile flags (this file and the kernels that include it) lives
// in the inline namespace recurrent_depth::cpu::RECURRENT_DEPTH_KERNEL_NAMESPACE, `compiled` unless
// a translation unit names another: kernel variants built with other flags in the same program
// (kernel_variant.hpp) then define different functions, never two versions of the same one.
#pragma once

#include <xsimd/xsimd.hpp>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "../../core/dtype.hpp"

#if defined(__AVX2__) || defined(__AVX512F__)
#include <immintrin.h>
#endif

#ifndef RECURRENT_DEPTH_KERNEL_NAMESPACE
#define RECURRENT_DEPTH_KERNEL_NAMESPACE compiled
#endif

// Before a loop of a kernel whose count is fixed at compile time (a register tile's rows,
// positions or vectors): unrolled completely at every optimisation level, so that the arrays it
// indexes stay in registers. GCC 12 at -O2 (the RelWithDebInfo flags a program's own kernel table
// gets) keeps such loops as loops and the accumulators then live in memory.
#define RECURRENT_DEPTH_UNROLL _Pragma("GCC unroll 32")

namespace recurrent_depth::cpu {
inline namespace RECURRENT_DEPTH_KERNEL_NAMESPACE {

#if defined(__AVX512F__)
// 16 outputs of the int8 kernels (linear_int8.hpp) from their sums over offset bytes, for the
// lanes in mask: float(sums - 128 row_sums) * (x_scale * scales).
inline __m512 int8_outputs(__m512i sums, const std::int32_t* row_sums, const float* scales,
                           float x_scale, __mmask16 mask) {
  const __m512i offsets = _mm512_slli_epi32(_mm512_maskz_loadu_epi32(mask, row_sums), 7);
  return _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(sums, offsets)),
                       _mm512_mul_ps(_mm512_set1_ps(x_scale), _mm512_maskz_loadu_ps(mask, scales)));
}

// The mask of the first min(n, 16) lanes.
inline __mmask16 first_lanes(std::size_t n) {
  return n >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << n) - 1);
}

// The lanes in mask of v written to out, or added to what is there when add.
inline void store_outputs(float* out, __m512 v, __mmask16 mask, bool add) {
  if (add) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mask, out));
  _mm512_mask_storeu_ps(out, mask, v);
}
#endif

#if defined(__AVX512F__)
// 16 floats rounded to bf16 as to_bf16 does (to nearest, ties to even; NaN stays a quiet NaN)
// in the low halves of 32-bit lanes.
inline __m512i bf16_bits(__m512 v) {
  const __m512i u = _mm512_castps_si512(v);
  const __m512i odd = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
  const __m512i rounded =
      _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(odd, _mm512_set1_epi32(0x7FFF))), 16);
  const __mmask16 nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
  return _mm512_mask_or_epi32(rounded, nan, _mm512_srli_epi32(u, 16), _mm512_set1_epi32(0x40));
}

// The bf16 values of two bf16_bits results, first's then second's: 32 in order, or 16 pairs of
// neighbours in 32-bit lanes (low half first).
inline __m512i bf16_in_order(__m512i first, __m512i second) {
  return _mm512_inserti64x4(_mm512_castsi256_si512(_mm512_cvtepi32_epi16(first)),
                            _mm512_cvtepi32_epi16(second), 1);
}

// Columns [k, k + 16) of a row of `cols` floats, zeros past its end.
inline __m512 load_floats_upto(const float* row, std::size_t k, std::size_t cols) {
  const std::size_t n = k < cols ? std::min<std::size_t>(16, cols - k) : 0;
  return _mm512_maskz_loadu_ps(__mmask16((1u << n) - 1), row + k);
}
#endif

#if defined(__AVX512VNNI__)
// acc + the sums of the 4 products of unsigned bytes u by signed bytes s in each 32-bit lane
// (vpdpbusd). GCC 12's intrinsic does not tie the accumulator to the result, so in a loop of
// them it copies every accumulator to another register and back at each step (twice the
// instructions of the loop, measured on the int8 kernels); the asm form names it as both.
inline __m512i dot_bytes_add(__m512i acc, __m512i u, __m512i s) {
#if defined(__GNUC__) && !defined(__clang__)
  asm("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(u), "vm"(s));
  return acc;
#else
  return _mm512_dpbusd_epi32(acc, u, s);
#endif
}
#endif

#if defined(__AVX512BF16__)
// acc + in each 32-bit lane the products of the bf16 pairs of a and b (vdpbf16ps: a.lo b.lo +
// a.hi b.hi, each product exact in float). In asm for the reason of dot_bytes_add.
inline __m512 dot_bf16_pairs_add(__m512 acc, __m512i a, __m512i b) {
#if defined(__GNUC__) && !defined(__clang__)
  asm("vdpbf16ps %2, %1, %0" : "+v"(acc) : "v"(a), "vm"(b));
  return acc;
#else
  return _mm512_dpbf16_ps(acc, __m512bh(a), __m512bh(b));
#endif
}
#endif

#if defined(__AVX512F__)
// Stores the transpose of 16 rows of 16 32-bit words: output row r (at out + r * row_bytes) =
// word r of each input row.
// Unpacks pair the words, then the 64-bit halves, of neighbouring rows; shuffles of 128-bit
// quarters finish. (Zero-masked forms: GCC 12 warns about the plain ones' pass-through.)
inline void store_transposed(const __m512i (&rows)[16], std::uint8_t* out,
                             std::size_t row_bytes = 64) {
  constexpr __mmask16 all = 0xFFFF;
  constexpr __mmask8 all64 = 0xFF;
  __m512i a[16], b[16];
  RECURRENT_DEPTH_UNROLL
  for (int i = 0; i < 16; i += 2) {
    a[i] = _mm512_maskz_unpacklo_epi32(all, rows[i], rows[i + 1]);
    a[i + 1] = _mm512_maskz_unpackhi_epi32(all, rows[i], rows[i + 1]);
  }
  // b[4 i + c], quarter q: word 4 q + c of rows 4 i .. 4 i + 3.
  RECURRENT_DEPTH_UNROLL
  for (int i = 0; i < 16; i += 4) {
    b[i] = _mm512_maskz_unpacklo_epi64(all64, a[i], a[i + 2]);
    b[i + 1] = _mm512_maskz_unpackhi_epi64(all64, a[i], a[i + 2]);
    b[i + 2] = _mm512_maskz_unpacklo_epi64(all64, a[i + 1], a[i + 3]);
    b[i + 3] = _mm512_maskz_unpackhi_epi64(all64, a[i + 1], a[i + 3]);
  }
  RECURRENT_DEPTH_UNROLL
  for (int c = 0; c < 4; ++c) {  // word 4 q + c of all rows: quarter q of b[c], ..., b[12 + c]
    const __m512i s0 = _mm512_maskz_shuffle_i32x4(all, b[c], b[4 + c], 0x44);
    const __m512i s1 = _mm512_maskz_shuffle_i32x4(all, b[c], b[4 + c], 0xEE);
    const __m512i s2 = _mm512_maskz_shuffle_i32x4(all, b[8 + c], b[12 + c], 0x44);
    const __m512i s3 = _mm512_maskz_shuffle_i32x4(all, b[8 + c], b[12 + c], 0xEE);
    _mm512_storeu_si512(out + (0 + c) * row_bytes, _mm512_maskz_shuffle_i32x4(all, s0, s2, 0x88));
    _mm512_storeu_si512(out + (4 + c) * row_bytes, _mm512_maskz_shuffle_i32x4(all, s0, s2, 0xDD));
    _mm512_storeu_si512(out + (8 + c) * row_bytes, _mm512_maskz_shuffle_i32x4(all, s1, s3, 0x88));
    _mm512_storeu_si512(out + (12 + c) * row_bytes, _mm512_maskz_shuffle_i32x4(all, s1, s3, 0xDD));
  }
}
#endif

using Arch = xsimd::default_arch;
using FloatBatch = xsimd::batch<float, Arch>;
inline constexpr std::size_t kFloatLanes = FloatBatch::size;
// Vector registers the kernels' register tiles may fill: 32 with AVX-512, 16 with AVX2 or SSE.
inline constexpr int kVectorRegisters = std::is_base_of_v<xsimd::avx512f, Arch> ? 32 : 16;

// The largest of v's lanes (xsimd 8 has no horizontal maximum).
inline float max_lane(FloatBatch v) {
  alignas(64) float lanes[kFloatLanes];
  v.store_aligned(lanes);
  float largest = lanes[0];
  for (std::size_t i = 1; i < kFloatLanes; ++i) largest = largest < lanes[i] ? lanes[i] : largest;
  return largest;
}

template <class A = Arch>
inline xsimd::batch<float, A> load_floats(const float* p) {
  return xsimd::batch<float, A>::load_unaligned(p);
}

// Loads batch-size bf16 values, widened exactly to float (a 16-bit left shift).
template <class A = Arch>
inline xsimd::batch<float, A> load_floats(const bf16* p) {
  using Batch = xsimd::batch<float, A>;
#if defined(__AVX512F__)
  if constexpr (std::is_base_of_v<xsimd::avx512f, A>) {
    const __m256i halves = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    return Batch(_mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(halves), 16)));
  } else
#endif
#if defined(__AVX2__)
      if constexpr (std::is_base_of_v<xsimd::avx2, A>) {
    const __m128i halves = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    return Batch(_mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(halves), 16)));
  } else
#endif
  {
    alignas(64) std::array<float, Batch::size> widened;
    for (std::size_t i = 0; i < Batch::size; ++i) widened[i] = to_float(p[i]);
    return Batch::load_aligned(widened.data());
  }
}

// Loads batch-size int8 values, converted exactly to float.
template <class A = Arch>
inline xsimd::batch<float, A> load_floats(const std::int8_t* p) {
  using Batch = xsimd::batch<float, A>;
#if defined(__AVX512F__)
  if constexpr (std::is_base_of_v<xsimd::avx512f, A>) {
    const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    return Batch(_mm512_cvtepi32_ps(_mm512_maskz_cvtepi8_epi32(__mmask16(0xFFFF), bytes)));
  } else
#endif
#if defined(__AVX2__)
      if constexpr (std::is_base_of_v<xsimd::avx2, A>) {
    const __m128i bytes = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p));
    return Batch(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(bytes)));
  } else
#endif
  {
    alignas(64) std::array<float, Batch::size> widened;
    for (std::size_t i = 0; i < Batch::size; ++i) widened[i] = float(p[i]);
    return Batch::load_aligned(widened.data());
  }
}

}  // namespace RECURRENT_DEPTH_KERNEL_NAMESPACE
}  // namespace recurrent_depth::cpu
