// Dense layers y = x W^T for many positions with bf16 weights on AVX-512 BF16's dot products
// (vdpbf16ps), the activations rounded to bf16: a relative error of at most 2^-8 per value
// (kBf16DotActivationError), for twice the products per instruction of the FMAs. Only the kernel
// table built for it (x86_64_v4_bf16, chosen by name: the default tables keep x in float) takes
// it, from kGemmMinPositions positions. x [M, K] float32, W [N, K] bf16 in PackedWeights' row
// tiles, y [M, N] float32.
// The register tile and the walk of linear_gemm.hpp (12 weight rows by 32 positions of float
// sums, groups of row tiles over chunks of K, the next group's lines prefetched between the
// products), with each step a pair of columns:
//  - x^T is packed once per call by blocks of kGemmPositions positions as bf16 pairs (round to
//    nearest even), xt[block][k / 2][p] = (x[p][k], x[p][k + 1]) in one 32-bit lane;
//  - each row's pair (W[n][k], W[n][k + 1]) is broadcast straight from the packed tiles (no
//    widening), and vdpbf16ps adds both products to the lane's sum.
#pragma once

#if defined(RECURRENT_DEPTH_BF16_DOT_PROMPTS) && !defined(__AVX512BF16__)
#error "RECURRENT_DEPTH_BF16_DOT_PROMPTS needs AVX-512 BF16 (-mavx512bf16)"
#endif

#if defined(__AVX512BF16__)

#include <immintrin.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "../../core/dtype.hpp"
#include "../../core/tensor.hpp"
#include "linear_gemm.hpp"
#include "packed_weights.hpp"
#include "simd.hpp"

namespace recurrent_depth::cpu {
inline namespace RECURRENT_DEPTH_KERNEL_NAMESPACE {

// The bound on the relative error of an activation rounded to bf16.
inline constexpr double kBf16DotActivationError = 1.0 / 256;  // 8 significant bits

namespace detail {

inline constexpr std::size_t kBf16Block = PackedWeights<bf16>::kBlock;  // 32 columns, 16 pairs

// x [M, K] -> xt [blocks, pairs * kGemmPositions] as bf16 pairs (see the top of this file),
// pairs = padded / 2; zeros past K and past M.
inline void pack_bf16_pairs(ConstMatrixView<float> x, std::size_t padded,
                            Matrix<std::uint32_t>& xt) {
  const auto blocks = static_cast<std::ptrdiff_t>(xt.rows());
#pragma omp for schedule(static)
  for (std::ptrdiff_t b = 0; b < blocks; ++b) {
    const std::size_t m0 = static_cast<std::size_t>(b) * kGemmPositions;
    // Pairs [j, j + 16) of a row: its columns [2 j, 2 j + 32) rounded, in order.
    const auto pairs = [&](const float* row, std::size_t j) {
      return bf16_in_order(bf16_bits(load_floats_upto(row, 2 * j, x.cols)),
                           bf16_bits(load_floats_upto(row, 2 * j + 16, x.cols)));
    };
    transpose_position_block(x, m0, std::min(kGemmPositions, x.rows - m0), padded / 2, pairs,
                             xt.row(static_cast<std::size_t>(b)));
  }
}

// sums[r][p] = sum over blocks [b0, b1) of the rows of RowTiles tiles (from `tiles`) against the
// positions of one block of xt (at the pair of column b0 * kBf16Block); a step of `prefetch` per
// pair.
template <std::size_t RowTiles, class Prefetch>
inline void bf16_dot_register_tile(const bf16* const* tiles, std::size_t b0, std::size_t b1,
                                   const std::uint32_t* xt, Prefetch& prefetch,
                                   float (&sums)[kGemmRows][kGemmPositions]) {
  constexpr std::size_t kRows = RowTiles * kTileRows, kBatches = kGemmPositionBatches;
  __m512 acc[kRows][kBatches];
  RECURRENT_DEPTH_UNROLL
  for (std::size_t r = 0; r < kRows; ++r) {
    RECURRENT_DEPTH_UNROLL
    for (std::size_t j = 0; j < kBatches; ++j) acc[r][j] = _mm512_setzero_ps();
  }
  auto lines = prefetch;  // a copy, its counters in registers: not stored at every step
  for (std::size_t b = b0; b < b1; ++b) {
    const bf16* block[RowTiles];
    for (std::size_t i = 0; i < RowTiles; ++i) block[i] = tiles[i] + b * kTileRows * kBf16Block;
    const std::uint32_t* x_block = xt + (b - b0) * (kBf16Block / 2) * kGemmPositions;
#pragma GCC unroll 16
    for (std::size_t pair = 0; pair < kBf16Block / 2; ++pair) {
      lines.step();
      __m512i xv[kBatches];
      RECURRENT_DEPTH_UNROLL
      for (std::size_t j = 0; j < kBatches; ++j)
        xv[j] = _mm512_load_si512(x_block + pair * kGemmPositions + j * 16);
      RECURRENT_DEPTH_UNROLL
      for (std::size_t r = 0; r < kRows; ++r) {
        std::int32_t w;
        std::memcpy(&w, block[r / kTileRows] + (r % kTileRows) * kBf16Block + 2 * pair, 4);
        const __m512i broadcast = _mm512_set1_epi32(w);
        RECURRENT_DEPTH_UNROLL
        for (std::size_t j = 0; j < kBatches; ++j)
          acc[r][j] = dot_bf16_pairs_add(acc[r][j], broadcast, xv[j]);
      }
    }
  }
  RECURRENT_DEPTH_UNROLL
  for (std::size_t r = 0; r < kRows; ++r) {
    RECURRENT_DEPTH_UNROLL
    for (std::size_t j = 0; j < kBatches; ++j) _mm512_store_ps(&sums[r][j * 16], acc[r][j]);
  }
  prefetch = lines;
}

// One group of `tiles` row tiles from `first` against every position block, columns [k0, k1).
template <class Prefetch>
void bf16_dot_row_group(const PackedWeights<bf16>& w, const Matrix<std::uint32_t>& xt,
                        std::size_t positions, std::size_t first, std::size_t tiles, std::size_t k0,
                        std::size_t k1, bool add, Prefetch& prefetch, MatrixView<float> y) {
  const std::size_t b0 = k0 / kBf16Block, b1 = (k1 + kBf16Block - 1) / kBf16Block;
  const std::size_t n0 = first * kTileRows;
  const std::size_t real_rows = std::min(tiles * kTileRows, w.rows() - n0);
  prefetch_gemm_outputs(y, positions, n0, real_rows);
  prefetch.space_over((b1 - b0) * kBf16Block / 2 * xt.rows());
  const bf16* group[kGemmRowTiles];
  for (std::size_t i = 0; i < tiles; ++i) group[i] = w.tile(first + i);
  alignas(64) float sums[kGemmRows][kGemmPositions];
  for (std::size_t block = 0; block < xt.rows(); ++block) {
    const std::uint32_t* x_chunk = xt.row(block) + b0 * (kBf16Block / 2) * kGemmPositions;
    with_row_tiles(tiles, [&]<std::size_t RowTiles>() {
      bf16_dot_register_tile<RowTiles>(group, b0, b1, x_chunk, prefetch, sums);
    });
    const std::size_t m0 = block * kGemmPositions;
    store_gemm_tile(sums, real_rows, std::min(kGemmPositions, positions - m0), n0, m0, add, y);
  }
}

}  // namespace detail

// y = x W^T, or y += x W^T when accumulate, x rounded to bf16; the team (when threaded) shares
// the row groups.
inline void linear_gemm_bf16_dot(ConstMatrixView<float> x, const PackedWeights<bf16>& w,
                                 MatrixView<float> y, bool accumulate, bool threaded) {
  thread_local Matrix<std::uint32_t> packed_positions;
  Matrix<std::uint32_t>& xt = packed_positions;  // the caller's, shared by the team
  xt.resize((x.rows + kGemmPositions - 1) / kGemmPositions, w.padded_cols() / 2 * kGemmPositions);
#pragma omp parallel if (threaded)
  {
    detail::pack_bf16_pairs(x, w.padded_cols(), xt);  // ends on the team's barrier
    // x^T holds a bf16 per column and position.
    detail::walk_gemm_groups(w, x.cols, xt.rows() * kGemmPositions * sizeof(bf16), accumulate,
                             [&](std::size_t first, std::size_t tiles, std::size_t k0,
                                 std::size_t k1, bool add, auto& prefetch) {
                               detail::bf16_dot_row_group(w, xt, x.rows, first, tiles, k0, k1, add,
                                                          prefetch, y);
                             });
  }
}

}  // namespace RECURRENT_DEPTH_KERNEL_NAMESPACE
}  // namespace recurrent_depth::cpu

#endif
