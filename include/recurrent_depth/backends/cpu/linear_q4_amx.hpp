// Dense layers with 4-bit weights (PackedQ4Weights) on AMX int8 tiles, for prompts: x [M, K]
// float32 quantised as for every q4 kernel (xq signed, one step s_m per position,
// linear_q4.hpp), W [N, K] packed q4, y [M, N] float32.
// The integer of a group of 32 columns, I = sum xq (q - 8), is one tile product with K = 32
// (tdpbssd, signed by signed): tile A holds 16 weight rows' values q - 8 of the group (32 bytes a
// row), tile B the group's xq of 16 positions, 4 bytes of a position per 32-bit word
// (B[r][4 j + v] = position j, column 4 r + v: int8_activation_tiles). C[i][j] is then I exactly,
// for 16 rows by 16 positions; row i's scale of the group meets C's row i in an FMA on 16 float
// sums per weight row:
//   y[m][n] = s_m sum_g scale[n][g] float(I)  (scalar::linear_q4, the float sums in another order).
// Each thread takes panels of 16 weight rows (4 row tiles) and unpacks a panel's nibbles once into
// signed bytes (per block of 64 columns, 16 rows of 64 bytes: A tiles of both its groups at a
// stride of 64) and its scales into floats; then every group of 16 positions runs over it, a block
// (two groups, two accumulator tiles) at a time, and the sums are transposed once at the end.
// The next block's tile products are issued right after a block's integers are stored (into one
// of two buffers in turn), so that the tiles compute them while the vector units scale those
// integers; the tile instructions run in order, so products issued before the store delay it. A
// layer of 64 positions on an Intel Xeon: 6.5% faster than storing and scaling block by block.
#pragma once

#if defined(__AMX_TILE__) && defined(__AMX_INT8__)

#include <immintrin.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

#include "../../core/error.hpp"
#include "../../core/tensor.hpp"
#include "../../core/threads.hpp"
#include "cpu_features.hpp"
#include "linear_amx.hpp"
#include "packed_q4.hpp"
#include "simd.hpp"

namespace recurrent_depth::cpu {
inline namespace RECURRENT_DEPTH_KERNEL_NAMESPACE {

// Positions from which 4-bit layers take the tiles: huginn-mini's prompts on 2 threads of an
// Intel Xeon, against the vector kernels, ran 0.55x as fast at 4 positions, even at 6, 1.14x at
// 8, 1.65x at 12 and 1.5x at 24 (the VNNI panels there).
inline constexpr std::size_t kAmxMinPositionsQ4 = 8;

namespace detail {

inline constexpr std::size_t kQ4PanelRows = 16;                         // weight rows per panel
inline constexpr std::size_t kQ4PanelTiles = kQ4PanelRows / kTileRows;  // row tiles per panel

// The tile registers: accumulators 0-1 (16 rows x 16 positions of int32), weights 2-3 (16 rows of
// 32 bytes), activations 4-5 (8 rows of 16 positions' 4-byte words).
inline void load_q4_tile_config() {
  static constexpr AmxTileConfig kConfig{.bytes_per_row = {64, 64, 32, 32, 64, 64},
                                         .rows = {16, 16, 16, 16, 8, 8}};
  load_tile_config(kConfig);
}

// Panel p of w unpacked: row b of `values` holds, for each of the 16 rows, its 64 values q - 8 of
// block b (group 2 b, then 2 b + 1); row b of `scales` the 16 rows' scales of group 2 b, then
// those of 2 b + 1, as floats. Rows past the weights are zeros.
inline void unpack_q4_panel(const PackedQ4Weights& w, std::size_t p, Matrix<std::uint8_t>& values,
                            Matrix<float>& scales) {
  const std::size_t t0 = p * kQ4PanelTiles;
  const std::size_t count = std::min(kQ4PanelTiles, w.tile_count() - t0);
  const __m512i low_nibbles = _mm512_set1_epi8(0x0F), eight = _mm512_set1_epi8(8);
  const __m512i high_halves = _mm512_set1_epi32(std::int32_t(0xFFFF0000u));
  for (std::size_t b = 0; b < w.blocks(); ++b) {
    std::uint8_t* out = values.row(b);
    alignas(64) std::uint32_t scale_pairs[kQ4PanelRows] = {};  // row i's bf16 scales (g 0, 1)
    for (std::size_t t = 0; t < kQ4PanelTiles; ++t) {
      std::uint8_t* tile_out = out + t * kTileRows * kQ4Block;
      if (t >= count) {
        std::memset(tile_out, 0, kTileRows * kQ4Block);
        continue;
      }
      const std::uint8_t* in = w.tile(t0 + t);
      for (std::size_t r = 0; r < kTileRows; r += 2) {  // two rows' nibbles in one vector
        const __m512i packed = _mm512_loadu_si512(in + w.nibble_offset(b) + r * kQ4RowBlockBytes);
        const __m512i low = _mm512_and_si512(packed, low_nibbles);  // group 0 of rows r, r + 1
        const __m512i high = _mm512_and_si512(_mm512_srli_epi16(packed, 4), low_nibbles);
        _mm512_store_si512(tile_out + r * kQ4Block,
                           _mm512_sub_epi8(_mm512_shuffle_i64x2(low, high, 0x44), eight));
        _mm512_store_si512(tile_out + (r + 1) * kQ4Block,
                           _mm512_sub_epi8(_mm512_shuffle_i64x2(low, high, 0xEE), eight));
      }
      std::memcpy(scale_pairs + t * kTileRows, in + w.scale_offset(b), kTileRows * kQ4ScaleBytes);
    }
    const __m512i pairs = _mm512_load_si512(scale_pairs);
    _mm512_store_si512(scales.row(b), _mm512_slli_epi32(pairs, 16));
    _mm512_store_si512(scales.row(b) + kQ4PanelRows, _mm512_and_si512(pairs, high_halves));
  }
}

// y[m0 + j][n0 + i] (or +=) for the `positions` positions of the activation group whose tiles
// of block b lie at activations + b * block_stride (groups 2 b and 2 b + 1, 512 bytes apart)
// against the unpacked panel, for the rows i in mask.
inline void q4_panel_outputs(const Matrix<std::uint8_t>& values, const Matrix<float>& scales,
                             const std::uint8_t* activations, std::size_t block_stride,
                             std::span<const float> x_scales, std::size_t m0, std::size_t positions,
                             std::size_t n0, __mmask16 mask, bool add, MatrixView<float> y) {
  constexpr std::size_t kGroupTileBytes = kAmxTileBytes / 2;
  __m512 sums[kQ4PanelRows];  // row i: its sums over the 16 positions
  RECURRENT_DEPTH_UNROLL
  for (std::size_t i = 0; i < kQ4PanelRows; ++i) sums[i] = _mm512_setzero_ps();
  alignas(64) std::int32_t integers[2][2][kQ4PanelRows][kAmxPositions];  // [b % 2][group]
  // Block b's products into the accumulator tiles 0-1.
  const auto products = [&](std::size_t b) {
    const std::uint8_t* x = activations + b * block_stride;
    _tile_zero(0);
    _tile_zero(1);
    _tile_loadd(2, values.row(b), kQ4Block);
    _tile_loadd(3, values.row(b) + kQ4Group, kQ4Block);
    _tile_loadd(4, x, 64);
    _tile_loadd(5, x + kGroupTileBytes, 64);
    _tile_dpbssd(0, 2, 4);
    _tile_dpbssd(1, 3, 5);
  };
  // Block b's integers stored, then block b + 1's products issued, then b's integers scaled.
  const std::size_t blocks = values.rows();
  products(0);
  for (std::size_t b = 0; b < blocks; ++b) {
    auto& block_integers = integers[b % 2];
    _tile_stored(0, block_integers[0], 64);
    _tile_stored(1, block_integers[1], 64);
    if (b + 1 < blocks) products(b + 1);
    RECURRENT_DEPTH_UNROLL
    for (std::size_t g = 0; g < 2; ++g) {
      const float* group_scales = scales.row(b) + g * kQ4PanelRows;
      RECURRENT_DEPTH_UNROLL
      for (std::size_t i = 0; i < kQ4PanelRows; ++i)
        sums[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_load_si512(block_integers[g][i])),
                                  _mm512_set1_ps(group_scales[i]), sums[i]);
    }
  }
  __m512i rows[kQ4PanelRows];
  RECURRENT_DEPTH_UNROLL
  for (std::size_t i = 0; i < kQ4PanelRows; ++i) rows[i] = _mm512_castps_si512(sums[i]);
  store_transposed_outputs(
      rows, positions, y, m0, n0, mask, add, [&](std::size_t p, __m512i words) {
        return _mm512_mul_ps(_mm512_castsi512_ps(words), _mm512_set1_ps(x_scales[m0 + p]));
      });
}

}  // namespace detail

// y = x W^T (y += when accumulate) for 4-bit weights, from x quantised to xq (signed bytes,
// [M, w.padded_cols()], zeros past K) and x_scales (linear_q4.hpp).
inline void linear_q4_amx(const Matrix<std::uint8_t>& xq, std::span<const float> x_scales,
                          const PackedQ4Weights& w, MatrixView<float> y, bool accumulate,
                          bool threaded) {
  require(amx_tiles_permitted(), "linear: the operating system refuses this process the AMX tiles");
  const std::size_t groups = detail::position_groups(y.rows);
  const std::size_t panels = (w.tile_count() + detail::kQ4PanelTiles - 1) / detail::kQ4PanelTiles;
  thread_local Matrix<std::uint8_t> buffer;
  Matrix<std::uint8_t>& activations = buffer;  // [blocks, groups tiles], the team's
  activations.resize(w.blocks(), groups * detail::kAmxTileBytes);
#pragma omp parallel if (threaded)
  {
    const auto [b0, b1] = thread_share(w.blocks());
    for (std::size_t b = b0; b < b1; ++b)
      detail::int8_activation_tiles(xq, b, activations.row(b), 0);
#pragma omp barrier
    detail::load_q4_tile_config();
    thread_local Matrix<std::uint8_t> values;  // this thread's panel, unpacked
    thread_local Matrix<float> scales;
    values.resize(w.blocks(), detail::kQ4PanelRows * kQ4Block);
    scales.resize(w.blocks(), 2 * detail::kQ4PanelRows);
    const auto [p0, p1] = thread_share(panels);
    for (std::size_t p = p0; p < p1; ++p) {
      detail::unpack_q4_panel(w, p, values, scales);
      const std::size_t n0 = p * detail::kQ4PanelRows;
      const std::size_t outputs = std::min(detail::kQ4PanelRows, w.rows() - n0);
      const __mmask16 mask = first_lanes(outputs);
      for (std::size_t g = 0; g < groups; ++g) {
        const std::size_t m0 = g * kAmxPositions;
        detail::q4_panel_outputs(values, scales, activations.row(0) + g * detail::kAmxTileBytes,
                                 activations.view().stride, x_scales, m0,
                                 std::min(kAmxPositions, y.rows - m0), n0, mask, accumulate, y);
      }
    }
    _tile_release();
  }
}

}  // namespace RECURRENT_DEPTH_KERNEL_NAMESPACE
}  // namespace recurrent_depth::cpu

#endif
