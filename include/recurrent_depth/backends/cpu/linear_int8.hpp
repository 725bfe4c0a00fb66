// Dense layers with int8 weights: y = x W^T, W = diag(scale) Q with Q int8 [N, K] packed in row
// tiles (PackedWeights<int8_t>), x [M, K] float32, y [M, N] float32.
// x is quantised once per call, per position m: s_m = max_k |x[m][k]| / 127,
// q = round(x * (1/s_m)) in [-127, 127], stored offset by 128 as unsigned bytes (VNNI multiplies
// unsigned by signed bytes). Then, with the row sums of Q,
//   y[m][n] = float(sum_k (q + 128) Q[n][k] - 128 rowsum[n]) * (s_m * scale[n]),
// whose integer sum is exact. AVX-512 VNNI computes it with vpdpbusd (64 products per
// instruction; from kInt8PanelMinPositions (24) positions on, in broadcast panels,
// linear_int8_panels.hpp); AVX2 sums the signed q Q[n][k] directly (vpmaddubsw + vpmaddwd, see
// tile_dot_int8); AMX tiles compute them from kAmxMinPositionsInt8 (12) positions on
// (linear_amx.hpp); elsewhere a plain integer loop computes the same integers, so every
// architecture gives the same result, which scalar::linear_int8 defines.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <type_traits>
#include <vector>

#include "../../core/error.hpp"
#include "../../core/tensor.hpp"
#include "../../core/threads.hpp"
#include "linear_amx.hpp"
#include "linear_int8_panels.hpp"
#include "packed_weights.hpp"
#include "simd.hpp"
#include "tile_schedule.hpp"

#if defined(__AVX2__) || defined(__AVX512VNNI__)
#include <immintrin.h>
#endif

namespace recurrent_depth::cpu {
inline namespace RECURRENT_DEPTH_KERNEL_NAMESPACE {

// Integer sums stay exact while K x 255 x 127 < 2^31.
inline constexpr std::size_t kMaxInt8Columns = 66000;

// The quantisation step of one position's activations: max |x| / 127 (1 for a zero row, NaN
// when x holds a NaN or an infinity, which then reaches the outputs). Vectorised: a maximum
// does not depend on the order of its operands.
inline float activation_scale(const float* x, std::size_t n) {
  FloatBatch largest_lanes(0.0f);
  xsimd::batch_bool<float, Arch> finite_lanes(true);
  const std::size_t whole = n - n % kFloatLanes;  // in whole batches
  for (std::size_t k = 0; k < whole; k += kFloatLanes) {
    const FloatBatch v = load_floats(x + k);
    largest_lanes = xsimd::max(largest_lanes, xsimd::abs(v));
    finite_lanes = finite_lanes && xsimd::isfinite(v);
  }
  float largest = max_lane(largest_lanes);
  bool finite = xsimd::all(finite_lanes);
  for (std::size_t k = whole; k < n; ++k) {
    largest = std::max(largest, std::abs(x[k]));
    finite = finite && std::isfinite(x[k]);
  }
  if (!finite) return std::numeric_limits<float>::quiet_NaN();
  return largest > 0.0f ? largest / 127.0f : 1.0f;
}

// One value quantised with step `scale`, offset by 128 (0 stays 128): x times the step's
// reciprocal (one multiplication per value where a division costs 8-16 times as much), rounded to
// nearest even.
inline std::uint8_t quantise_activation(float x, float scale) {
  if (!std::isfinite(scale)) return 128;
  const float inverse = 1.0f / scale;
  return static_cast<std::uint8_t>(std::clamp(std::nearbyint(x * inverse), -127.0f, 127.0f) +
                                   128.0f);
}

namespace detail {

// x [M, K] -> q [M, padded] offset bytes (128 after K) and one scale per position; positions
// split over the threads when there are many (a prompt).
inline void quantise_activations(ConstMatrixView<float> x, std::size_t padded,
                                 Matrix<std::uint8_t>& q, std::vector<float>& scales) {
  q.resize(x.rows, padded);
  scales.resize(x.rows);
  const auto positions = static_cast<std::ptrdiff_t>(x.rows);
#pragma omp parallel for schedule(static) if (x.rows >= 8 && x.rows * x.cols >= (1u << 16))
  for (std::ptrdiff_t position = 0; position < positions; ++position) {
    const auto m = static_cast<std::size_t>(position);
    const float* row = x.row(m);
    const float scale = scales[m] = activation_scale(row, x.cols);
    std::uint8_t* out = q.row(m);
    std::size_t k = 0;
    if (std::isfinite(scale)) {  // as quantise_activation, kFloatLanes values at a time
      const float inverse = 1.0f / scale;
      const FloatBatch times(inverse), low(-127.0f), high(127.0f), offset(128.0f);
#if defined(__AVX512F__)
      if constexpr (std::is_base_of_v<xsimd::avx512f, Arch>) {
        // Rounded to nearest even (the default rounding mode, as nearbyint), clamped, offset and
        // narrowed in registers.
        const __m512i low_int = _mm512_set1_epi32(-127), high_int = _mm512_set1_epi32(127);
        for (; k + 16 <= x.cols; k += 16) {
          const __m512i v = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(row + k), times));
          const __m512i clamped = _mm512_min_epi32(_mm512_max_epi32(v, low_int), high_int);
          _mm_storeu_si128(reinterpret_cast<__m128i*>(out + k),
                           _mm512_cvtepi32_epi8(_mm512_add_epi32(clamped, _mm512_set1_epi32(128))));
        }
      }
#endif
      alignas(64) std::int32_t lanes[kFloatLanes];
      for (; k + kFloatLanes <= x.cols; k += kFloatLanes) {
        const FloatBatch v =
            xsimd::clip(xsimd::nearbyint(load_floats(row + k) * times), low, high) + offset;
        xsimd::batch_cast<std::int32_t>(v).store_aligned(lanes);
        for (std::size_t i = 0; i < kFloatLanes; ++i) out[k + i] = std::uint8_t(lanes[i]);
      }
    }
    for (; k < x.cols; ++k) out[k] = quantise_activation(row[k], scale);
    std::fill(out + x.cols, out + padded, std::uint8_t(128));
  }
}

inline constexpr std::size_t kInt8Block = PackedWeights<std::int8_t>::kBlock;

#if defined(__AVX512VNNI__)
// out[r] = the sum of the 16 lanes of v[r], for four vectors at once. (The zero-masked forms
// of the shuffles: GCC 12 warns about the undefined pass-through of the plain ones and of the
// casts.)
inline void sum_lanes_of_four(const __m512i (&v)[4], std::int32_t (&out)[4]) {
  constexpr __mmask16 all = 0xFFFF;
  constexpr __mmask8 all64 = 0xFF;
  const __m512i ab = _mm512_add_epi32(_mm512_maskz_unpacklo_epi32(all, v[0], v[1]),
                                      _mm512_maskz_unpackhi_epi32(all, v[0], v[1]));
  const __m512i cd = _mm512_add_epi32(_mm512_maskz_unpacklo_epi32(all, v[2], v[3]),
                                      _mm512_maskz_unpackhi_epi32(all, v[2], v[3]));
  __m512i abcd = _mm512_add_epi32(_mm512_maskz_unpacklo_epi64(all64, ab, cd),
                                  _mm512_maskz_unpackhi_epi64(all64, ab, cd));  // a b c d per lane
  abcd = _mm512_add_epi32(abcd, _mm512_maskz_shuffle_i32x4(all, abcd, abcd, 0x4E));
  abcd = _mm512_add_epi32(abcd, _mm512_maskz_shuffle_i32x4(all, abcd, abcd, 0xB1));
  alignas(64) std::int32_t lanes[16];
  _mm512_store_si512(lanes, abcd);
  std::copy_n(lanes, 4, out);
}
#endif

#if defined(__AVX2__) && !defined(__AVX512VNNI__)
// AVX2 sums the products of signed activations (q - 128) and weights: the tile kernel's sums
// then carry no offset.
inline constexpr std::int32_t kInt8SumOffset = 0;

// The sum of the 8 lanes of v.
inline std::int32_t sum_lanes(__m256i v) {
  const __m128i half = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  const __m128i quarter = _mm_add_epi32(half, _mm_shuffle_epi32(half, 0x4E));
  return _mm_cvtsi128_si32(_mm_add_epi32(quarter, _mm_shuffle_epi32(quarter, 0xB1)));
}
#else
// The sums of vpdpbusd and of the plain loop are those of the offset bytes q.
inline constexpr std::int32_t kInt8SumOffset = 128;
#endif

// sums[m][i * kTileRows + r] = sum_k (q[m][k] - 128 + kInt8SumOffset) Q[r][k] (q offset bytes)
// for the rows r of Tiles tiles read side by side.
template <int Positions, int Tiles>
inline void tile_dot_int8(const std::uint8_t* const* q, const std::int8_t* const* tiles,
                          std::size_t blocks, std::int32_t (&sums)[Positions][Tiles * kTileRows]) {
  constexpr std::size_t kRows = Tiles * kTileRows;
#if defined(__AVX512VNNI__)
  __m512i acc[Positions][kRows];
  RECURRENT_DEPTH_UNROLL
  for (int m = 0; m < Positions; ++m) {
    RECURRENT_DEPTH_UNROLL
    for (std::size_t r = 0; r < kRows; ++r) acc[m][r] = _mm512_setzero_si512();
  }
  for (std::size_t b = 0; b < blocks; ++b) {
    __m512i w[kRows];
    RECURRENT_DEPTH_UNROLL
    for (int i = 0; i < Tiles; ++i) {
      const std::int8_t* block = tiles[i] + b * kTileRows * kInt8Block;
      for (std::size_t line = 0; line < kTileRows * 64; line += 64)
        __builtin_prefetch(block + kPrefetchBytes + line);
      RECURRENT_DEPTH_UNROLL
      for (std::size_t r = 0; r < kTileRows; ++r)
        w[i * kTileRows + r] = _mm512_load_si512(block + r * kInt8Block);
    }
    RECURRENT_DEPTH_UNROLL
    for (int m = 0; m < Positions; ++m) {
      const __m512i xv = _mm512_load_si512(q[m] + b * kInt8Block);
      RECURRENT_DEPTH_UNROLL
      for (std::size_t r = 0; r < kRows; ++r) acc[m][r] = dot_bytes_add(acc[m][r], xv, w[r]);
    }
  }
  RECURRENT_DEPTH_UNROLL
  for (int m = 0; m < Positions; ++m) {
    RECURRENT_DEPTH_UNROLL
    for (int i = 0; i < Tiles; ++i)
      sum_lanes_of_four(*reinterpret_cast<const __m512i(*)[4]>(acc[m] + i * 4),
                        *reinterpret_cast<std::int32_t(*)[4]>(sums[m] + i * 4));
  }
#elif defined(__AVX2__)
  // vpmaddubsw multiplies unsigned by signed bytes into 16-bit pair sums that saturate: exact
  // only while a pair stays within 32767. So x returns to its signed value (q - 128, at most 127
  // in size) and trades signs with w (vpsignb / vpabsb): |w| * (x signed like w) = x w, pairs at
  // most 2 * 127 * 127 = 32258; vpmaddwd with ones widens them to 32-bit sums.
  const __m256i offset = _mm256_set1_epi8(char(0x80)), ones = _mm256_set1_epi16(1);
  __m256i acc[Positions][kRows];
  RECURRENT_DEPTH_UNROLL
  for (int m = 0; m < Positions; ++m) {
    RECURRENT_DEPTH_UNROLL
    for (std::size_t r = 0; r < kRows; ++r) acc[m][r] = _mm256_setzero_si256();
  }
  for (std::size_t b = 0; b < blocks; ++b) {
    for (int i = 0; i < Tiles; ++i) {
      for (std::size_t line = 0; line < kTileRows * 64; line += 64)
        __builtin_prefetch(tiles[i] + b * kTileRows * kInt8Block + kPrefetchBytes + line);
    }
    for (std::size_t half = 0; half < kInt8Block; half += 32) {
      __m256i w[kRows], w_size[kRows];
      RECURRENT_DEPTH_UNROLL
      for (std::size_t r = 0; r < kRows; ++r) {
        w[r] = _mm256_load_si256(reinterpret_cast<const __m256i*>(
            tiles[r / kTileRows] + (b * kTileRows + r % kTileRows) * kInt8Block + half));
        w_size[r] = _mm256_abs_epi8(w[r]);
      }
      RECURRENT_DEPTH_UNROLL
      for (int m = 0; m < Positions; ++m) {
        const __m256i x = _mm256_xor_si256(
            _mm256_load_si256(reinterpret_cast<const __m256i*>(q[m] + b * kInt8Block + half)),
            offset);
        RECURRENT_DEPTH_UNROLL
        for (std::size_t r = 0; r < kRows; ++r) {
          const __m256i pairs = _mm256_maddubs_epi16(w_size[r], _mm256_sign_epi8(x, w[r]));
          acc[m][r] = _mm256_add_epi32(acc[m][r], _mm256_madd_epi16(pairs, ones));
        }
      }
    }
  }
  RECURRENT_DEPTH_UNROLL
  for (int m = 0; m < Positions; ++m) {
    RECURRENT_DEPTH_UNROLL
    for (std::size_t r = 0; r < kRows; ++r) sums[m][r] = sum_lanes(acc[m][r]);
  }
#else
  for (int m = 0; m < Positions; ++m) {
    for (std::size_t row = 0; row < kRows; ++row) {
      const std::size_t i = row / kTileRows, r = row % kTileRows;
      std::int32_t sum = 0;
      for (std::size_t b = 0; b < blocks; ++b) {
        const std::int8_t* w = tiles[i] + (b * kTileRows + r) * kInt8Block;
        const std::uint8_t* x = q[m] + b * kInt8Block;
        for (std::size_t k = 0; k < kInt8Block; ++k) sum += std::int32_t(x[k]) * std::int32_t(w[k]);
      }
      sums[m][row] = sum;
    }
  }
#endif
}

// The int8 kernel for run_tiles: quantised x against packed weights into y (all columns at
// once: the integer sums must not be split).
struct Int8TileKernel {
  const Matrix<std::uint8_t>& q;
  std::span<const float> x_scales;
  const PackedWeights<std::int8_t>& w;
  MatrixView<float> y;

  template <int Positions, int Tiles>
  void run(const std::size_t (&t)[Tiles], std::size_t m0, std::size_t, std::size_t,
           bool add) const {
    const std::uint8_t* x_rows[Positions];
    for (int m = 0; m < Positions; ++m) x_rows[m] = q.row(m0 + m);
    const std::int8_t* tiles[Tiles];
    for (int i = 0; i < Tiles; ++i) tiles[i] = w.tile(t[i]);
    std::int32_t sums[Positions][Tiles * kTileRows];
    tile_dot_int8<Positions, Tiles>(x_rows, tiles, w.blocks(), sums);
    store_tile_outputs<Positions>(
        y, t, w.rows(), m0, add, [&](int m, std::size_t j, std::size_t n) {
          const std::int32_t exact = sums[m][j] - kInt8SumOffset * w.row_sums()[n];
          return float(exact) * (x_scales[m0 + m] * w.scales()[n]);
        });
  }
};

}  // namespace detail

// y = x W^T (y += x W^T when accumulate) for int8 weights; see the top of this file.
inline void linear_int8(ConstMatrixView<float> x, const PackedWeights<std::int8_t>& w,
                        MatrixView<float> y, bool accumulate) {
  require(w.cols() < kMaxInt8Columns, "linear: int8 weights with ", w.cols(),
          " columns exceed the exact integer range (at most ", kMaxInt8Columns, ")");
  thread_local Matrix<std::uint8_t> quantised;
  thread_local std::vector<float> scales;
  Matrix<std::uint8_t>& q = quantised;  // the caller's buffers, shared by the team
  std::vector<float>& x_scales = scales;
  detail::quantise_activations(x, w.padded_cols(), q, x_scales);
  const bool threaded = worth_threads(x.rows, w.rows(), w.cols());
#if defined(__AMX_TILE__) && defined(__AMX_INT8__)
  static_assert(detail::kInt8SumOffset == 128, "the AMX kernel sums the offset bytes");
  if (x.rows >= kAmxMinPositionsInt8)
    return linear_int8_amx(q, x_scales, w, y, accumulate, threaded);
#endif
#if defined(__AVX512VNNI__)
  if (x.rows >= kInt8PanelMinPositions)
    return linear_int8_panels(q, x_scales, w, y, accumulate, threaded);
#endif
  detail::Int8TileKernel kernel{q, x_scales, w, y};
  run_tiles_on_threads(kernel, w.tile_count(), x.rows, w.blocks(), w.blocks(), accumulate,
                       threaded);
}

}  // namespace RECURRENT_DEPTH_KERNEL_NAMESPACE
}  // namespace recurrent_depth::cpu
