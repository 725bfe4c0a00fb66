// Dense layers with 4-bit weights: y = x W^T, W [N, K] packed in row tiles with a bf16 scale per
// group of 32 columns (PackedQ4Weights, packed_q4.hpp), x [M, K] float32, y [M, N] float32.
// x is quantised once per call and position as for int8 (linear_int8.hpp: s_m = max |x| / 127,
// rounded to nearest even) and kept signed, xq in [-127, 127]. For row n and group g the integer
//   I = sum_{k in g} xq[k] (q[n][k] - 8) = sum_{k in g} q[n][k] xq[k] - 8 S[m][g],
// S the group's sum of xq (once per position, not per row), is exact, and
//   y[m][n] = s_m * sum_g scale[n][g] float(I)   (float sums, in any order).
// AVX-512 VNNI, per 64-column block and row: the 32 bytes of nibbles, loaded into both halves of a
// vector and masked with 0x0F (low half) and 0xF0 (high half: the high nibbles stay in place, 16
// times their value), are the unsigned operand of vpdpbusd against xq; each 32-bit lane starts at
// its share of -8 S (-S in lanes 0-7, -16 S in lanes 8-15, precomputed per position), so lanes 0-7
// sum to the block's first I and lanes 8-15 to 16 times its second (exact: below 2^24). Converted
// to float they meet the scales, permuted into their lanes, in an FMA; the factor 16 leaves once,
// before the horizontal sums. AVX2: vpmaddubsw of q by xq (pairs at most 2 * 15 * 127, no
// saturation) and vpmaddwd, one group per vector. Elsewhere plain loops. scalar::linear_q4 defines
// the result. Prompts run the same kernel over groups of positions (tile_schedule.hpp), which
// share each unpacked weight vector; on AVX-512 VNNI, from kQ4PanelMinPositions positions, the
// broadcast panels of linear_q4_panels.hpp instead, and with AMX, from kAmxMinPositionsQ4, the
// tiles of linear_q4_amx.hpp.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "../../core/error.hpp"
#include "../../core/tensor.hpp"
#include "linear.hpp"
#include "linear_int8.hpp"
#include "linear_q4_amx.hpp"
#include "linear_q4_panels.hpp"
#include "packed_q4.hpp"
#include "simd.hpp"
#include "tile_schedule.hpp"

#if defined(__AVX2__) || defined(__AVX512VNNI__)
#include <immintrin.h>
#endif

namespace recurrent_depth::cpu {
inline namespace RECURRENT_DEPTH_KERNEL_NAMESPACE {

namespace detail {

// The factor of the high nibbles' sums in the kernels' lanes (see the top of this file).
#if defined(__AVX512VNNI__)
inline constexpr std::int32_t kQ4HighNibbleFactor = 16;
#else
inline constexpr std::int32_t kQ4HighNibbleFactor = 1;
#endif
inline constexpr std::size_t kQ4Lanes = 16;  // 32-bit lanes per block in lane_offsets

// The activations of one call: xq [M, padded] as bytes of the signed values (0 after K), the step
// s_m of each position, and the per-position sums that the chosen kernel starts from (Q4Sums):
// the vector kernels' starting lanes per block (-S of the block's first group in lanes 0-7,
// -kQ4HighNibbleFactor S of its second in lanes 8-15), or the panels' -8 S per group
// (linear_q4_panels.hpp); the AMX tiles take neither.
struct Q4Activations {
  Matrix<std::uint8_t> q;
  std::vector<float> scales;
  Matrix<std::int32_t> lane_offsets;   // [M, blocks * kQ4Lanes] with Q4Sums::lanes
  Matrix<std::int32_t> group_offsets;  // [M, groups] with Q4Sums::groups
};

enum class Q4Sums { lanes, groups, none };

inline void quantise_q4_activations(ConstMatrixView<float> x, std::size_t blocks, Q4Sums sums,
                                    Q4Activations& a) {
  quantise_activations(x, blocks * kQ4Block, a.q, a.scales);  // offset by 128
  if (sums == Q4Sums::lanes) a.lane_offsets.resize(x.rows, blocks * kQ4Lanes);
  if (sums == Q4Sums::groups) a.group_offsets.resize(x.rows, blocks * 2);
  for (std::size_t m = 0; m < x.rows; ++m) {
    std::uint8_t* row = a.q.row(m);
    for (std::size_t g = 0; g < 2 * blocks && sums != Q4Sums::none; ++g) {
      // S from the offset bytes: their sum less 128 per value (a loop of unsigned bytes that
      // compilers vectorise).
      std::int32_t offset_sum = 0;
      for (std::size_t k = 0; k < kQ4Group; ++k) offset_sum += row[g * kQ4Group + k];
      const std::int32_t sum = offset_sum - 128 * std::int32_t(kQ4Group);
      if (sums == Q4Sums::groups) {
        a.group_offsets(m, g) = -8 * sum;
      } else {
        const std::int32_t lane = -(g % 2 ? kQ4HighNibbleFactor : 1) * sum;
        std::fill_n(a.lane_offsets.row(m) + (g / 2) * kQ4Lanes + (g % 2) * 8, 8, lane);
      }
    }
    for (std::size_t k = 0; k < blocks * kQ4Block; ++k)
      row[k] ^= 0x80;  // q - 128, two's complement
  }
}

// Prefetches the lines of a tile stream kPrefetchBytes ahead of a block's nibbles: over the
// blocks of a chunk, all its lines.
inline void prefetch_q4_block(const std::uint8_t* tile, std::size_t nibble_offset) {
  for (std::size_t line = 0; line < 3 * 64; line += 64)  // a block is 2.25 lines on average
    __builtin_prefetch(tile + nibble_offset + kPrefetchBytes + line);
}

// sums[m][i * kTileRows + r] = sum over blocks [b0, b1) and their groups g of
// scale[g] float(I[g]) for positions m0 .. m0 + Positions - 1 and the rows r of Tiles tiles.
template <int Positions, int Tiles>
inline void tile_dot_q4(const Q4Activations& a, std::size_t m0, const PackedQ4Weights& w,
                        const std::uint8_t* const* tiles, std::size_t b0, std::size_t b1,
                        float (&sums)[Positions][Tiles * kTileRows]) {
  constexpr std::size_t kRows = Tiles * kTileRows;
#if defined(__AVX512VNNI__)
  // (Blends and zero-masked forms throughout: GCC 12 warns about the undefined pass-through of
  // the plain inserts, broadcasts, permutes and conversions.)
  constexpr __mmask16 all = 0xFFFF, high_half = 0xFF00;
  const __m512i nibble_mask =
      _mm512_mask_blend_epi64(0xF0, _mm512_set1_epi8(0x0F), _mm512_set1_epi8(char(0xF0)));
  __m512i scale_index[kTileRows];  // lanes 0-7: row r's first scale, 8-15: its second
  RECURRENT_DEPTH_UNROLL
  for (std::size_t r = 0; r < kTileRows; ++r)
    scale_index[r] = _mm512_mask_blend_epi32(high_half, _mm512_set1_epi32(int(2 * r)),
                                             _mm512_set1_epi32(int(2 * r + 1)));
  __m512 acc[Positions][kRows];
  RECURRENT_DEPTH_UNROLL
  for (int m = 0; m < Positions; ++m) {
    RECURRENT_DEPTH_UNROLL
    for (std::size_t r = 0; r < kRows; ++r) acc[m][r] = _mm512_setzero_ps();
  }
  for (std::size_t b = b0; b < b1; ++b) {
    const std::size_t nibbles = w.nibble_offset(b), scales = w.scale_offset(b);
    __m512i xv[Positions], start[Positions];
    RECURRENT_DEPTH_UNROLL
    for (int m = 0; m < Positions; ++m) {
      xv[m] = _mm512_load_si512(a.q.row(m0 + m) + b * kQ4Block);
      start[m] = _mm512_load_si512(a.lane_offsets.row(m0 + m) + b * kQ4Lanes);
    }
    RECURRENT_DEPTH_UNROLL
    for (int i = 0; i < Tiles; ++i) {
      prefetch_q4_block(tiles[i], nibbles);
      const __m128i bf16_scales =
          _mm_loadu_si128(reinterpret_cast<const __m128i*>(tiles[i] + scales));
      const __m512i widened =
          _mm512_maskz_cvtepu16_epi32(0xFF, _mm256_zextsi128_si256(bf16_scales));
      const __m512 tile_scales = _mm512_castsi512_ps(_mm512_maskz_slli_epi32(0xFF, widened, 16));
      RECURRENT_DEPTH_UNROLL
      for (std::size_t r = 0; r < kTileRows; ++r) {
        const __m512i packed = _mm512_maskz_broadcast_i64x4(
            0xFF, _mm256_load_si256(
                      reinterpret_cast<const __m256i*>(tiles[i] + nibbles + r * kQ4RowBlockBytes)));
        const __m512i q = _mm512_and_si512(packed, nibble_mask);
        const __m512 d = _mm512_maskz_permutexvar_ps(all, scale_index[r], tile_scales);
        RECURRENT_DEPTH_UNROLL
        for (int m = 0; m < Positions; ++m) {
          __m512& sum = acc[m][i * kTileRows + r];
          const __m512i group = dot_bytes_add(start[m], q, xv[m]);
          sum = _mm512_fmadd_ps(_mm512_maskz_cvtepi32_ps(all, group), d, sum);
        }
      }
    }
  }
  const __m512 unshift =
      _mm512_mask_blend_ps(high_half, _mm512_set1_ps(1.0f), _mm512_set1_ps(1.0f / 16));
  // The horizontal sums, kFloatLanes accumulators at a time (zeros after the last).
  constexpr std::size_t kSums = Positions * kRows;
  constexpr std::size_t kPadded = (kSums + kFloatLanes - 1) / kFloatLanes * kFloatLanes;
  FloatBatch lanes[kPadded];
  RECURRENT_DEPTH_UNROLL
  for (std::size_t s = kSums; s < kPadded; ++s) lanes[s] = FloatBatch(0.0f);
  RECURRENT_DEPTH_UNROLL
  for (int m = 0; m < Positions; ++m) {
    RECURRENT_DEPTH_UNROLL
    for (std::size_t r = 0; r < kRows; ++r)
      lanes[m * kRows + r] = FloatBatch(_mm512_mul_ps(acc[m][r], unshift));
  }
  float flat[kPadded];
  RECURRENT_DEPTH_UNROLL
  for (std::size_t c = 0; c < kPadded; c += kFloatLanes)
    sum_lanes_of_batches(lanes + c).store_unaligned(flat + c);
  RECURRENT_DEPTH_UNROLL
  for (int m = 0; m < Positions; ++m) {
    RECURRENT_DEPTH_UNROLL
    for (std::size_t r = 0; r < kRows; ++r) sums[m][r] = flat[m * kRows + r];
  }
#elif defined(__AVX2__)
  const __m256i low_nibbles = _mm256_set1_epi8(0x0F), ones = _mm256_set1_epi16(1);
  __m256 acc[Positions * kRows];
  for (auto& v : acc) v = _mm256_setzero_ps();
  for (std::size_t b = b0; b < b1; ++b) {
    const std::size_t nibbles = w.nibble_offset(b), scales = w.scale_offset(b);
    RECURRENT_DEPTH_UNROLL
    for (int i = 0; i < Tiles; ++i) {
      prefetch_q4_block(tiles[i], nibbles);
      const __m128i bf16_scales =
          _mm_loadu_si128(reinterpret_cast<const __m128i*>(tiles[i] + scales));
      const __m256 tile_scales =
          _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(bf16_scales), 16));
      RECURRENT_DEPTH_UNROLL
      for (std::size_t r = 0; r < kTileRows; ++r) {
        const __m256i packed = _mm256_load_si256(
            reinterpret_cast<const __m256i*>(tiles[i] + nibbles + r * kQ4RowBlockBytes));
        const __m256i q[2] = {_mm256_and_si256(packed, low_nibbles),
                              _mm256_and_si256(_mm256_srli_epi16(packed, 4), low_nibbles)};
        RECURRENT_DEPTH_UNROLL
        for (int half = 0; half < 2; ++half) {
          const __m256 d =
              _mm256_permutevar8x32_ps(tile_scales, _mm256_set1_epi32(int(2 * r) + half));
          RECURRENT_DEPTH_UNROLL
          for (int m = 0; m < Positions; ++m) {
            const __m256i x = _mm256_load_si256(
                reinterpret_cast<const __m256i*>(a.q.row(m0 + m) + b * kQ4Block + half * kQ4Group));
            const __m256i start = _mm256_load_si256(reinterpret_cast<const __m256i*>(
                a.lane_offsets.row(m0 + m) + b * kQ4Lanes + half * 8));
            const __m256i group =
                _mm256_add_epi32(start, _mm256_madd_epi16(_mm256_maddubs_epi16(q[half], x), ones));
            __m256& sum = acc[m * kRows + i * kTileRows + r];
            sum = _mm256_fmadd_ps(_mm256_cvtepi32_ps(group), d, sum);
          }
        }
      }
    }
  }
  RECURRENT_DEPTH_UNROLL
  for (int m = 0; m < Positions; ++m) {
    RECURRENT_DEPTH_UNROLL
    for (std::size_t r = 0; r < kRows; ++r) {
      const __m256 v = acc[m * kRows + r];
      __m128 half = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
      half = _mm_add_ps(half, _mm_movehl_ps(half, half));
      sums[m][r] = _mm_cvtss_f32(_mm_add_ss(half, _mm_movehdup_ps(half)));
    }
  }
#else
  for (int m = 0; m < Positions; ++m) {
    for (std::size_t row = 0; row < kRows; ++row) {
      const std::uint8_t* tile = tiles[row / kTileRows];
      const std::size_t r = row % kTileRows;
      const auto* x = reinterpret_cast<const std::int8_t*>(a.q.row(m0 + m));
      float sum = 0.0f;
      for (std::size_t b = b0; b < b1; ++b) {
        const std::uint8_t* packed = tile + w.nibble_offset(b) + r * kQ4RowBlockBytes;
        const auto* scales = reinterpret_cast<const bf16*>(tile + w.scale_offset(b)) + 2 * r;
        for (std::size_t half = 0; half < 2; ++half) {
          std::int32_t group = 0;
          for (std::size_t k = 0; k < kQ4Group; ++k) {
            const int q = half ? packed[k] >> 4 : packed[k] & 0x0F;
            group += std::int32_t(x[b * kQ4Block + half * kQ4Group + k]) * (q - 8);
          }
          sum += to_float(scales[half]) * float(group);
        }
      }
      sums[m][row] = sum;
    }
  }
#endif
}

// The q4 kernel for run_tiles: quantised x against packed 4-bit weights into y.
struct Q4TileKernel {
  const Q4Activations& a;
  const PackedQ4Weights& w;
  MatrixView<float> y;

  template <int Positions, int Tiles>
  void run(const std::size_t (&t)[Tiles], std::size_t m0, std::size_t b0, std::size_t b1,
           bool add) const {
    const std::uint8_t* tiles[Tiles];
    for (int i = 0; i < Tiles; ++i) tiles[i] = w.tile(t[i]);
    float sums[Positions][Tiles * kTileRows];
    tile_dot_q4<Positions, Tiles>(a, m0, w, tiles, b0, b1, sums);
    store_tile_outputs<Positions>(y, t, w.rows(), m0, add, [&](int m, std::size_t j, std::size_t) {
      return sums[m][j] * a.scales[m0 + m];
    });
  }
};

}  // namespace detail

// y = x W^T (y += x W^T when accumulate) for 4-bit weights; see the top of this file.
inline void linear_q4(ConstMatrixView<float> x, const PackedQ4Weights& w, MatrixView<float> y,
                      bool accumulate = false) {
  require(x.cols == w.cols() && y.rows == x.rows && y.cols == w.rows(), "linear: shapes x [",
          x.rows, ", ", x.cols, "], w [", w.rows(), ", ", w.cols(), "] (q4), y [", y.rows, ", ",
          y.cols, "] do not match");
  thread_local detail::Q4Activations activations;
  detail::Q4Activations& a = activations;  // the caller's buffers, shared by the team
  using detail::Q4Sums;
  const bool threaded = worth_threads(x.rows, w.rows(), w.cols());
#if defined(__AMX_TILE__) && defined(__AMX_INT8__)
  if (x.rows >= kAmxMinPositionsQ4) {
    detail::quantise_q4_activations(x, w.blocks(), Q4Sums::none, a);
    return linear_q4_amx(a.q, a.scales, w, y, accumulate, threaded);
  }
#endif
#if defined(__AVX512VNNI__)
  if (x.rows >= kQ4PanelMinPositions) {
    detail::quantise_q4_activations(x, w.blocks(), Q4Sums::groups, a);
    return linear_q4_panels(a.q, a.scales, a.group_offsets, w, y, accumulate, threaded);
  }
#endif
  detail::quantise_q4_activations(x, w.blocks(), Q4Sums::lanes, a);
  detail::Q4TileKernel kernel{a, w, y};
  run_tiles_on_threads(kernel, w.tile_count(), x.rows, w.blocks(), w.blocks(), accumulate,
                       threaded);
}

}  // namespace RECURRENT_DEPTH_KERNEL_NAMESPACE
}  // namespace recurrent_depth::cpu
