// Dense layers y = x W^T on AMX tiles (Advanced Matrix Extensions), for 16 positions or more,
// with int8 weights (tdpbsud) or bf16 weights (tdpbf16ps). One tile product multiplies a tile A
// of up to 16 rows of 64 bytes by a tile B of 16 rows of 64 bytes, each row of B holding 16
// columns of 4 bytes (4 int8 or 2 bf16 values along K):
//   C[i][j] += sum over rows r < 16 of B, values v of a 4-byte group: A[i][r, v] B[r][j, v]
// A is a 64-byte block of one 4-row weight tile, read in place from PackedWeights (its rows lie
// 64 bytes apart); B holds that block of 16 positions' activations, with the 4-byte groups of
// position j moved into column j (a 16 x 16 transpose of 32-bit words). So C = W x^T: 4 weight
// rows by 16 positions.
//  - int8: the offset activation bytes of linear_int8.hpp; C holds the same exact integer sums
//    as vpdpbusd (signed weights by unsigned activations).
//  - bf16: each activation split in two bf16 values, x = hi + lo + e with |e| <= 2^-16 |x|
//    (kAmxBf16ActivationError); two products per block add W hi^T and W lo^T in float. A
//    non-finite activation gives NaN outputs.
// Each thread takes its share of the weight tiles two at a time against two groups of positions
// at a time: 4 accumulator tiles, 2 weight tiles and 2 activation tiles fill the 8 tile registers.
// Shapes: x [M, K], W [N, K] packed, y [M, N] float32.
#pragma once

#if defined(__AMX_TILE__) && (defined(__AMX_INT8__) || defined(__AMX_BF16__))

#include <immintrin.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>

#include "../../core/error.hpp"
#include "../../core/tensor.hpp"
#include "../../core/threads.hpp"
#include "cpu_features.hpp"
#include "packed_weights.hpp"
#include "tile_schedule.hpp"

namespace recurrent_depth::cpu {
inline namespace RECURRENT_DEPTH_KERNEL_NAMESPACE {

// Positions from which the dense kernels use the tiles.
inline constexpr std::size_t kAmxPositions = 16;
// The bound on the relative error of an activation in the bf16 tile products (hi + lo).
inline constexpr double kAmxBf16ActivationError = 1.0 / 65536;

namespace detail {

inline constexpr std::size_t kAmxTileBytes = 16 * 64;           // one activation tile
inline constexpr std::size_t kAmxWeightBlock = kTileRows * 64;  // one block of a weight tile

enum class AmxProduct { int8, bf16 };

// The layout of the tile registers (ldtilecfg's 64-byte operand, palette 1): accumulators 0-3
// (weight_rows rows of 16 32-bit sums), weight blocks 4-5 (weight_rows rows of 64 bytes),
// activation tiles 6-7 (16 rows of 64 bytes).
struct alignas(64) AmxTileConfig {
  explicit AmxTileConfig(std::uint8_t weight_rows) {
    for (int t = 0; t < 8; ++t) {
      bytes_per_row[t] = 64;
      rows[t] = t < 6 ? weight_rows : 16;
    }
  }
  std::uint8_t palette = 1;
  std::uint8_t start_row = 0;
  std::uint8_t reserved[14] = {};
  std::uint16_t bytes_per_row[16] = {};
  std::uint8_t rows[16] = {};
};
static_assert(sizeof(AmxTileConfig) == 64);

// Stores the transpose of 16 rows of 16 32-bit words: tile row r = word r of each input row.
// Unpacks pair the words, then the 64-bit halves, of neighbouring rows; shuffles of 128-bit
// quarters finish. (Zero-masked forms: GCC 12 warns about the plain ones' pass-through.)
inline void store_transposed(const __m512i (&rows)[16], std::uint8_t* tile) {
  constexpr __mmask16 all = 0xFFFF;
  constexpr __mmask8 all64 = 0xFF;
  __m512i a[16], b[16];
  for (int i = 0; i < 16; i += 2) {
    a[i] = _mm512_maskz_unpacklo_epi32(all, rows[i], rows[i + 1]);
    a[i + 1] = _mm512_maskz_unpackhi_epi32(all, rows[i], rows[i + 1]);
  }
  // b[4 i + c], quarter q: word 4 q + c of rows 4 i .. 4 i + 3.
  for (int i = 0; i < 16; i += 4) {
    b[i] = _mm512_maskz_unpacklo_epi64(all64, a[i], a[i + 2]);
    b[i + 1] = _mm512_maskz_unpackhi_epi64(all64, a[i], a[i + 2]);
    b[i + 2] = _mm512_maskz_unpacklo_epi64(all64, a[i + 1], a[i + 3]);
    b[i + 3] = _mm512_maskz_unpackhi_epi64(all64, a[i + 1], a[i + 3]);
  }
  for (int c = 0; c < 4; ++c) {  // word 4 q + c of all rows: quarter q of b[c], ..., b[12 + c]
    const __m512i s0 = _mm512_maskz_shuffle_i32x4(all, b[c], b[4 + c], 0x44);
    const __m512i s1 = _mm512_maskz_shuffle_i32x4(all, b[c], b[4 + c], 0xEE);
    const __m512i s2 = _mm512_maskz_shuffle_i32x4(all, b[8 + c], b[12 + c], 0x44);
    const __m512i s3 = _mm512_maskz_shuffle_i32x4(all, b[8 + c], b[12 + c], 0xEE);
    _mm512_storeu_si512(tile + (0 + c) * 64, _mm512_maskz_shuffle_i32x4(all, s0, s2, 0x88));
    _mm512_storeu_si512(tile + (4 + c) * 64, _mm512_maskz_shuffle_i32x4(all, s0, s2, 0xDD));
    _mm512_storeu_si512(tile + (8 + c) * 64, _mm512_maskz_shuffle_i32x4(all, s1, s3, 0x88));
    _mm512_storeu_si512(tile + (12 + c) * 64, _mm512_maskz_shuffle_i32x4(all, s1, s3, 0xDD));
  }
}

// The int8 activation tiles of column block b at out (one per group of 16 positions): q's
// offset bytes, 128 (the offset zero) past the last position.
inline void int8_activation_tiles(const Matrix<std::uint8_t>& q, std::size_t b, std::uint8_t* out) {
  for (std::size_t m0 = 0; m0 < q.rows(); m0 += kAmxPositions, out += kAmxTileBytes) {
    __m512i rows[16];
    for (std::size_t j = 0; j < 16; ++j)
      rows[j] = m0 + j < q.rows() ? _mm512_loadu_si512(q.row(m0 + j) + b * 64)
                                  : _mm512_set1_epi8(char(0x80));
    store_transposed(rows, out);
  }
}

// 16 floats rounded to bf16 (to nearest, ties to even) in the low halves of 32-bit lanes.
inline __m512i bf16_bits(__m512 v) {
  const __m512i u = _mm512_castps_si512(v);
  const __m512i odd = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
  return _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(odd, _mm512_set1_epi32(0x7FFF))),
                           16);
}

// The bf16 activation tiles of column block b (32 values): x = hi + lo, hi's tiles at hi_out and
// lo's at lo_out, one per group of 16 positions; zeros past x's columns and last position.
inline void bf16_activation_tiles(ConstMatrixView<float> x, std::size_t b, std::uint8_t* hi_out,
                                  std::uint8_t* lo_out) {
  for (std::size_t m0 = 0; m0 < x.rows; m0 += kAmxPositions) {
    __m512i hi[16], lo[16];
    for (std::size_t j = 0; j < 16; ++j) {
      hi[j] = lo[j] = _mm512_setzero_si512();
      if (m0 + j >= x.rows) continue;
      __m256i halves[2][2];  // [hi, lo][first, second 16 values]
      for (std::size_t h = 0; h < 2; ++h) {
        const std::size_t k = b * 32 + h * 16, n = k < x.cols ? std::min<std::size_t>(16, x.cols - k) : 0;
        const __m512 v = _mm512_maskz_loadu_ps(__mmask16((1u << n) - 1), x.row(m0 + j) + k);
        const __m512i high = bf16_bits(v);
        const __m512 rest = _mm512_sub_ps(v, _mm512_castsi512_ps(_mm512_slli_epi32(high, 16)));
        halves[0][h] = _mm512_cvtepi32_epi16(high);
        halves[1][h] = _mm512_cvtepi32_epi16(bf16_bits(rest));
      }
      hi[j] = _mm512_inserti64x4(_mm512_castsi256_si512(halves[0][0]), halves[0][1], 1);
      lo[j] = _mm512_inserti64x4(_mm512_castsi256_si512(halves[1][0]), halves[1][1], 1);
    }
    store_transposed(hi, hi_out + m0 / kAmxPositions * kAmxTileBytes);
    store_transposed(lo, lo_out + m0 / kAmxPositions * kAmxTileBytes);
  }
}

// The tile products of one block: accumulator 2 i + j += weight tile 4 + i x activation tile 6 + j
// (tile registers are immediates).
template <AmxProduct P, int WeightTiles, int Groups>
inline void amx_products() {
  if constexpr (P == AmxProduct::int8) {
#if defined(__AMX_INT8__)
    _tile_dpbsud(0, 4, 6);
    if constexpr (Groups > 1) _tile_dpbsud(1, 4, 7);
    if constexpr (WeightTiles > 1) _tile_dpbsud(2, 5, 6);
    if constexpr (WeightTiles > 1 && Groups > 1) _tile_dpbsud(3, 5, 7);
#endif
  } else {
#if defined(__AMX_BF16__)
    _tile_dpbf16ps(0, 4, 6);
    if constexpr (Groups > 1) _tile_dpbf16ps(1, 4, 7);
    if constexpr (WeightTiles > 1) _tile_dpbf16ps(2, 5, 6);
    if constexpr (WeightTiles > 1 && Groups > 1) _tile_dpbf16ps(3, 5, 7);
#endif
  }
}

// Activation parts per product: int8 one, bf16 two (hi, lo).
template <AmxProduct P>
inline constexpr std::size_t kAmxParts = P == AmxProduct::int8 ? 1 : 2;

// c[i][j] = the sums of weight tile w[i] against activation group j over all blocks; the tiles of
// block b and part p lie at activations + b * block_stride + p * part_stride + j * kAmxTileBytes.
template <AmxProduct P, int WeightTiles, int Groups, class Sum>
inline void amx_dot_tiles(const std::uint8_t* const (&w)[WeightTiles],
                          const std::uint8_t* activations, std::size_t block_stride,
                          std::size_t part_stride, std::size_t blocks,
                          Sum (&c)[WeightTiles][Groups][kTileRows][kAmxPositions]) {
  _tile_zero(0);
  if constexpr (Groups > 1) _tile_zero(1);
  if constexpr (WeightTiles > 1) _tile_zero(2);
  if constexpr (WeightTiles > 1 && Groups > 1) _tile_zero(3);
  for (std::size_t b = 0; b < blocks; ++b) {
    const std::size_t offset = b * kAmxWeightBlock;
    __builtin_prefetch(w[0] + offset + kPrefetchBytes);
    _tile_loadd(4, w[0] + offset, 64);
    if constexpr (WeightTiles > 1) {
      __builtin_prefetch(w[1] + offset + kPrefetchBytes);
      _tile_loadd(5, w[1] + offset, 64);
    }
    for (std::size_t p = 0; p < kAmxParts<P>; ++p) {
      const std::uint8_t* tiles = activations + b * block_stride + p * part_stride;
      _tile_loadd(6, tiles, 64);
      if constexpr (Groups > 1) _tile_loadd(7, tiles + kAmxTileBytes, 64);
      amx_products<P, WeightTiles, Groups>();
    }
  }
  _tile_stored(0, c[0][0], 64);
  if constexpr (Groups > 1) _tile_stored(1, c[0][Groups - 1], 64);
  if constexpr (WeightTiles > 1) _tile_stored(2, c[WeightTiles - 1][0], 64);
  if constexpr (WeightTiles > 1 && Groups > 1) _tile_stored(3, c[WeightTiles - 1][Groups - 1], 64);
}

// The sums of weight tiles t[i] against groups g0, g0 + 1, ... into y: y[m][n] = value(m, n, sum)
// (or += when add), for the real rows and positions.
template <AmxProduct P, int WeightTiles, int Groups, class W, class Sum, class Value>
void amx_tiles_to_outputs(const PackedWeights<W>& w, const std::size_t (&t)[WeightTiles],
                          const Matrix<std::uint8_t>& activations, std::size_t g0,
                          MatrixView<float> y, bool add, const Value& value) {
  const std::uint8_t* tiles[WeightTiles];
  for (int i = 0; i < WeightTiles; ++i) tiles[i] = reinterpret_cast<const std::uint8_t*>(w.tile(t[i]));
  const std::size_t groups = (y.rows + kAmxPositions - 1) / kAmxPositions;
  alignas(64) Sum c[WeightTiles][Groups][kTileRows][kAmxPositions];
  amx_dot_tiles<P, WeightTiles, Groups>(tiles, activations.row(0) + g0 * kAmxTileBytes,
                                        activations.view().stride, groups * kAmxTileBytes,
                                        w.blocks(), c);
  for (int i = 0; i < WeightTiles; ++i) {
    const std::size_t n0 = t[i] * kTileRows, count = std::min(kTileRows, w.rows() - n0);
    for (int j = 0; j < Groups; ++j) {
      const std::size_t m0 = (g0 + std::size_t(j)) * kAmxPositions;
      const std::size_t positions = std::min(kAmxPositions, y.rows - m0);
      for (std::size_t r = 0; r < count; ++r)
        for (std::size_t p = 0; p < positions; ++p) {
          const float v = value(m0 + p, n0 + r, c[i][j][r][p]);
          float& out = y.row(m0 + p)[n0 + r];
          out = add ? out + v : v;
        }
    }
  }
}

// The tiles' walk on the team: activation tiles built (make_tiles(b, row of block b), parts one
// after the other) and shared, then each thread's weight tiles two at a time against two groups.
template <AmxProduct P, class Sum, class W, class MakeTiles, class Value>
void amx_linear(const PackedWeights<W>& w, MatrixView<float> y, bool accumulate, bool threaded,
                const MakeTiles& make_tiles, const Value& value) {
  require(amx_tiles_permitted(), "linear: the operating system refuses this process the AMX tiles");
  const std::size_t groups = (y.rows + kAmxPositions - 1) / kAmxPositions;
  thread_local Matrix<std::uint8_t> buffer;
  Matrix<std::uint8_t>& activations = buffer;  // [blocks, parts x groups tiles], the team's
  activations.resize(w.blocks(), kAmxParts<P> * groups * kAmxTileBytes);
#pragma omp parallel if (threaded)
  {
    const auto [b0, b1] = thread_share(w.blocks());
    for (std::size_t b = b0; b < b1; ++b) make_tiles(b, activations.row(b));
#pragma omp barrier
    const AmxTileConfig config(kTileRows);
    _tile_loadconfig(&config);
    const auto [t0, t1] = thread_share(w.tile_count());
    for (std::size_t t = t0; t < t1; t += 2)
      for (std::size_t g = 0; g < groups; g += 2) {
        const bool two_tiles = t + 1 < t1, two_groups = g + 1 < groups;
        if (two_tiles && two_groups)
          amx_tiles_to_outputs<P, 2, 2, W, Sum>(w, {t, t + 1}, activations, g, y, accumulate, value);
        else if (two_tiles)
          amx_tiles_to_outputs<P, 2, 1, W, Sum>(w, {t, t + 1}, activations, g, y, accumulate, value);
        else if (two_groups)
          amx_tiles_to_outputs<P, 1, 2, W, Sum>(w, {t}, activations, g, y, accumulate, value);
        else
          amx_tiles_to_outputs<P, 1, 1, W, Sum>(w, {t}, activations, g, y, accumulate, value);
      }
    _tile_release();
  }
}

}  // namespace detail

#if defined(__AMX_INT8__)
// y = x W^T (y += when accumulate) for int8 weights, from x quantised to q and x_scales
// (linear_int8.hpp).
inline void linear_int8_amx(const Matrix<std::uint8_t>& q, std::span<const float> x_scales,
                            const PackedWeights<std::int8_t>& w, MatrixView<float> y,
                            bool accumulate, bool threaded) {
  using detail::AmxProduct;
  detail::amx_linear<AmxProduct::int8, std::int32_t>(
      w, y, accumulate, threaded,
      [&](std::size_t b, std::uint8_t* tiles) { detail::int8_activation_tiles(q, b, tiles); },
      [&](std::size_t m, std::size_t n, std::int32_t sum) {
        return float(sum - 128 * w.row_sums()[n]) * (x_scales[m] * w.scales()[n]);
      });
}
#endif

#if defined(__AMX_BF16__)
// y = x W^T (y += when accumulate) for bf16 weights.
inline void linear_bf16_amx(ConstMatrixView<float> x, const PackedWeights<bf16>& w,
                            MatrixView<float> y, bool accumulate, bool threaded) {
  using detail::AmxProduct;
  const std::size_t part = (x.rows + kAmxPositions - 1) / kAmxPositions * detail::kAmxTileBytes;
  detail::amx_linear<AmxProduct::bf16, float>(
      w, y, accumulate, threaded,
      [&](std::size_t b, std::uint8_t* tiles) {
        detail::bf16_activation_tiles(x, b, tiles, tiles + part);
      },
      [](std::size_t, std::size_t, float sum) { return sum; });
}
#endif

}  // namespace RECURRENT_DEPTH_KERNEL_NAMESPACE
}  // namespace recurrent_depth::cpu

#endif
