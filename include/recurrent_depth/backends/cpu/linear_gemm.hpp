// Dense layers y = x W^T for many positions (a prompt) with float or bf16 weights, on the FMA
// units: x [M, K] float32, W [N, K] in PackedWeights' row tiles, y [M, N] float32.
// A register tile holds kGemmRows weight rows by kGemmPositions positions of sums, the positions
// along the SIMD lanes: each step k loads the kGemmPositionBatches batches of x^T[k] and meets
// them with each row's W[n][k] broadcast from memory (on AVX-512, 12 rows by 32 positions: 24
// accumulators, 2 loads and 12 broadcasts for 24 FMAs, so the FMAs bound the loop).
//  - x^T is packed once per call for the team, by blocks of kGemmPositions positions padded with
//    zeros: xt[block][k][p] = x[block * kGemmPositions + p][k].
//  - Each thread takes a share of the groups of kGemmRowTiles row tiles and walks K in chunks
//    (at most kGemmChunkColumns, and x^T's chunk of all position blocks within
//    kGemmPositionChunkBytes, so that it stays in L2). Within a chunk, kGemmWidenColumns columns
//    at a time, it widens the group's rows to float (bf16 weights: a 16-bit shift; the rows then
//    lie kWidenedRowFloats floats apart, in L1) and passes every position block over them,
//    carrying each block's sums in a small buffer from one piece of columns to the next.
//    Meanwhile the rows it widens next are prefetched into L2, a line every few steps of the
//    products, so that memory and the FMAs overlap. The lines of y that the group writes are
//    requested at its start; on AVX-512 the sums leave by 16 x 16 transposes and masked stores.
//  - The weights keep the one layout that decode streams: no second copy of a model.
// Activations stay float32: the sums are those of scalar::linear up to the order of additions.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "../../core/aligned_memory.hpp"
#include "../../core/tensor.hpp"
#include "../../core/threads.hpp"
#include "packed_weights.hpp"
#include "simd.hpp"
#include "tile_schedule.hpp"

namespace recurrent_depth::cpu {
inline namespace RECURRENT_DEPTH_KERNEL_NAMESPACE {

// The register tile: 32 vector registers (AVX-512) hold 3 row tiles by 2 batches of positions;
// 16 (AVX2, SSE) hold 1 row tile by 3 batches.
inline constexpr bool kWideRegisterFile = kVectorRegisters == 32;
inline constexpr std::size_t kGemmRowTiles = kWideRegisterFile ? 3 : 1;
inline constexpr std::size_t kGemmPositionBatches = kWideRegisterFile ? 2 : 3;
inline constexpr std::size_t kGemmRows = kGemmRowTiles * kTileRows;
inline constexpr std::size_t kGemmPositions = kGemmPositionBatches * kFloatLanes;
// Columns per chunk of K at most.
inline constexpr std::size_t kGemmChunkColumns = 2048;
// Columns widened at a time: a group's widened rows take 13 KB on AVX-512 and stay in L1 (96 KB
// of them, a whole chunk, went to L2: the widening cost twice as much, bound by the stores).
inline constexpr std::size_t kGemmWidenColumns = 256;
// The widened rows lie this many floats apart, a constant, so that the register tile addresses
// them from one pointer (a pointer per row spilled general registers: 2-5% slower prompts); one
// batch past the widened columns, so that the rows start on different sets of the L1 cache.
inline constexpr std::size_t kWidenedRowFloats = kGemmWidenColumns + kFloatLanes;
// x^T's chunk of all position blocks at most (half the 1 MB L2 of Zen 5; 2 MB on recent Xeons).
inline constexpr std::size_t kGemmPositionChunkBytes = 512 * 1024;
// Positions from which linear() takes this kernel rather than the tile kernel (linear.hpp).
inline constexpr std::size_t kGemmMinPositions = 32;

namespace detail {

// The columns of x^T that a step of the register tile loads, per position block: K rounded up
// to whole 16 x 16 transposes on AVX-512.
inline std::size_t packed_position_columns(std::size_t cols) {
  return kWideRegisterFile ? (cols + 15) / 16 * 16 : cols;
}

#if defined(__AVX512F__)
// out[j * kGemmPositions + p] = word j of position m0 + p's row for j < words (a multiple of
// 16) and p < kGemmPositions, zero words for p >= count; words(row, j) gives words [j, j + 16)
// of a row (16 x 16 transposes of 32-bit words).
template <class Words>
void transpose_position_block(ConstMatrixView<float> x, std::size_t m0, std::size_t count,
                              std::size_t words, Words&& row_words, std::uint32_t* out) {
  for (std::size_t j = 0; j < words; j += 16)
    for (std::size_t g = 0; g < kGemmPositions; g += 16) {
      __m512i rows[16];
      RECURRENT_DEPTH_UNROLL
      for (std::size_t i = 0; i < 16; ++i)
        rows[i] = g + i < count ? row_words(x.row(m0 + g + i), j) : _mm512_setzero_si512();
      store_transposed(rows, reinterpret_cast<std::uint8_t*>(out + j * kGemmPositions + g),
                       kGemmPositions * sizeof(std::uint32_t));
    }
}
#endif

// x [M, K] -> xt [blocks, packed_position_columns(K) * kGemmPositions]: row `block` holds x^T
// of its positions, k-major, zeros past M (and past K).
inline void pack_positions(ConstMatrixView<float> x, MatrixView<float> xt) {
  const auto blocks = static_cast<std::ptrdiff_t>(xt.rows);
#pragma omp for schedule(static)
  for (std::ptrdiff_t b = 0; b < blocks; ++b) {
    float* out = xt.row(static_cast<std::size_t>(b));
    const std::size_t m0 = static_cast<std::size_t>(b) * kGemmPositions;
    const std::size_t count = std::min(kGemmPositions, x.rows - m0);
#if defined(__AVX512F__)
    transpose_position_block(
        x, m0, count, packed_position_columns(x.cols),
        [&](const float* row, std::size_t j) {
          return _mm512_castps_si512(load_floats_upto(row, j, x.cols));
        },
        reinterpret_cast<std::uint32_t*>(out));
#else
    for (std::size_t p = 0; p < count; ++p) {
      const float* row = x.row(m0 + p);
      for (std::size_t k = 0; k < x.cols; ++k) out[k * kGemmPositions + p] = row[k];
    }
    for (std::size_t p = count; p < kGemmPositions; ++p)
      for (std::size_t k = 0; k < x.cols; ++k) out[k * kGemmPositions + p] = 0.0f;
#endif
  }
}

// rows(j, c) = W[row j of the tiles from `first`][k0 + c] as float, c < columns (k0 and the
// chunk on whole blocks of the format; the tiles' padding past K reads as zeros), read in the
// tiles' order of memory.
template <class W>
void widen_rows(const PackedWeights<W>& w, std::size_t first, std::size_t tiles, std::size_t k0,
                std::size_t columns, MatrixView<float> rows) {
  constexpr std::size_t kBlock = PackedWeights<W>::kBlock;
  const std::size_t b0 = k0 / kBlock, b1 = (k0 + columns + kBlock - 1) / kBlock;
  for (std::size_t i = 0; i < tiles; ++i) {
    const W* tile = w.tile(first + i);
    for (std::size_t b = b0; b < b1; ++b) {
      for (std::size_t slot = 0; slot < kTileRows; ++slot) {
        const std::size_t offset = (b * kTileRows + slot) * kBlock;
        float* out = rows.row(i * kTileRows + slot) + (b - b0) * kBlock;
        for (std::size_t c = 0; c < kBlock; c += kFloatLanes)
          load_floats(tile + offset + c).store_aligned(out + c);
      }
    }
  }
}

// The sums of a register tile: kGemmRows rows by kGemmPositions positions.
using GemmTileSums = float[kGemmRows][kGemmPositions];

// Row `block` of a matrix of kGemmRows * kGemmPositions columns (64-byte aligned rows) as sums.
inline GemmTileSums& tile_sums(MatrixView<float> sums, std::size_t block) {
  return *reinterpret_cast<GemmTileSums*>(sums.row(block));
}

// sums[r][p] = (resume ? sums[r][p] : 0) + sum over k < columns of
// rows[r * kWidenedRowFloats + k] xt[k][p], for the RowTiles tiles' rows; a step of `prefetch`
// per step of k.
template <std::size_t RowTiles, class Prefetch>
inline void gemm_register_tile(const float* rows, const float* xt, std::size_t columns,
                               Prefetch& prefetch, bool resume, GemmTileSums& sums) {
  constexpr std::size_t kRows = RowTiles * kTileRows, kBatches = kGemmPositionBatches;
  FloatBatch acc[kRows][kBatches];
  RECURRENT_DEPTH_UNROLL
  for (std::size_t r = 0; r < kRows; ++r) {
    RECURRENT_DEPTH_UNROLL
    for (std::size_t b = 0; b < kBatches; ++b)
      acc[r][b] = resume ? FloatBatch::load_aligned(&sums[r][b * kFloatLanes]) : FloatBatch(0.0f);
  }
  auto lines = prefetch;  // a copy, its counters in registers: not stored at every step
  // Two steps of k per pass of the loop: 5% faster GEMMs on an Intel Xeon (AVX-512).
#pragma GCC unroll 2
  for (std::size_t k = 0; k < columns; ++k) {
    lines.step();
    FloatBatch xv[kBatches];
    RECURRENT_DEPTH_UNROLL
    for (std::size_t b = 0; b < kBatches; ++b)
      xv[b] = FloatBatch::load_aligned(xt + k * kGemmPositions + b * kFloatLanes);
    RECURRENT_DEPTH_UNROLL
    for (std::size_t r = 0; r < kRows; ++r) {
      const FloatBatch w(rows[r * kWidenedRowFloats + k]);
      RECURRENT_DEPTH_UNROLL
      for (std::size_t b = 0; b < kBatches; ++b) acc[r][b] = xsimd::fma(w, xv[b], acc[r][b]);
    }
  }
  RECURRENT_DEPTH_UNROLL
  for (std::size_t r = 0; r < kRows; ++r) {
    RECURRENT_DEPTH_UNROLL
    for (std::size_t b = 0; b < kBatches; ++b) acc[r][b].store_aligned(&sums[r][b * kFloatLanes]);
  }
  prefetch = lines;
}

// y[m0 + p][n0 + r] = (or +=) sums[r][p] for the real positions and rows.
inline void store_gemm_tile(const float (&sums)[kGemmRows][kGemmPositions], std::size_t rows,
                            std::size_t positions, std::size_t n0, std::size_t m0, bool add,
                            MatrixView<float> y) {
#if defined(__AVX512F__)
  static_assert(kGemmRows <= 16 && kGemmPositions % 16 == 0);
  // 16 positions at a time, rows past kGemmRows zero.
  for (std::size_t p0 = 0; p0 < positions; p0 += 16) {
    __m512i columns[16];
    RECURRENT_DEPTH_UNROLL
    for (std::size_t r = 0; r < 16; ++r)
      columns[r] = r < kGemmRows ? _mm512_load_si512(&sums[r][p0]) : _mm512_setzero_si512();
    store_transposed_outputs(columns, std::min<std::size_t>(16, positions - p0), y, m0 + p0, n0,
                             first_lanes(rows), add,
                             [](std::size_t, __m512i words) { return _mm512_castsi512_ps(words); });
  }
#else
  for (std::size_t p = 0; p < positions; ++p) {
    float* out = y.row(m0 + p) + n0;
    for (std::size_t r = 0; r < rows; ++r) out[r] = add ? out[r] + sums[r][p] : sums[r][p];
  }
#endif
}

// The lines of y[m][n0, n0 + rows) for the positions m < positions, requested for writing
// before a row group's products, so that its stores at the end find them in the cache: each
// position's row of y is a stream of its own, which the hardware prefetchers do not follow (the
// stores missed: 3-4% of a one-thread GEMM of 64 positions on an Intel Xeon).
inline void prefetch_gemm_outputs(MatrixView<float> y, std::size_t positions, std::size_t n0,
                                  std::size_t rows) {
  for (std::size_t m = 0; m < positions; ++m) {
    __builtin_prefetch(y.row(m) + n0, 1, 3);
    __builtin_prefetch(y.row(m) + n0 + rows - 1, 1, 3);
  }
}

// body.template operator()<RowTiles>() with RowTiles = tiles (at most kGemmRowTiles).
template <class Body>
inline void with_row_tiles(std::size_t tiles, Body&& body) {
  if (tiles == kGemmRowTiles)
    body.template operator()<kGemmRowTiles>();
  else if constexpr (kGemmRowTiles > 2)
    tiles == 2 ? body.template operator()<2>() : body.template operator()<1>();
  else
    body.template operator()<1>();
}

// One group of `tiles` row tiles from `first` against every position block, columns [k0, k1),
// with the lines of `prefetch` spread over its products; `widened` holds kGemmRows rows of
// kWidenedRowFloats floats, `sums` a register tile's sums per position block (tile_sums).
template <class W>
void gemm_row_group(const PackedWeights<W>& w, ConstMatrixView<float> xt, std::size_t positions,
                    std::size_t first, std::size_t tiles, std::size_t k0, std::size_t k1, bool add,
                    TileLinesPrefetch<PackedWeights<W>>& prefetch, float* widened,
                    MatrixView<float> sums, MatrixView<float> y) {
  prefetch.space_over((k1 - k0) * xt.rows);
  const std::size_t n0 = first * kTileRows;
  const std::size_t real_rows = std::min(tiles * kTileRows, w.rows() - n0);
  prefetch_gemm_outputs(y, positions, n0, real_rows);
  // Equal pieces of at most kGemmWidenColumns, on whole blocks of 32 columns.
  const std::size_t piece = (equal_chunk(k1 - k0, kGemmWidenColumns) + 31) / 32 * 32;
  for (std::size_t c0 = k0; c0 < k1; c0 += piece) {
    const std::size_t c1 = std::min(k1, c0 + piece);
    widen_rows(w, first, tiles, c0, c1 - c0,
               MatrixView<float>(widened, kGemmRows, kGemmWidenColumns, kWidenedRowFloats));
    for (std::size_t block = 0; block < xt.rows; ++block)
      with_row_tiles(tiles, [&]<std::size_t RowTiles>() {
        gemm_register_tile<RowTiles>(widened, xt.row(block) + c0 * kGemmPositions, c1 - c0,
                                     prefetch, c0 > k0, tile_sums(sums, block));
      });
  }
  for (std::size_t block = 0; block < xt.rows; ++block) {
    const std::size_t m0 = block * kGemmPositions;
    store_gemm_tile(tile_sums(sums, block), real_rows, std::min(kGemmPositions, positions - m0), n0,
                    m0, add, y);
  }
}

// One thread's walk of a GEMM over W (K = cols columns; x^T takes column_bytes per column of K,
// all position blocks together): for each chunk of K (equal chunks on whole blocks of 32
// columns, every format's block dividing 32, x^T's chunk within kGemmPositionChunkBytes) and
// each group of kGemmRowTiles row tiles in the thread's share, group(first_tile, tiles, k0, k1,
// add, prefetch), prefetch holding the lines of the group that follows (the next group's chunk,
// or the first group's next chunk).
template <class W, class Group>
void walk_gemm_groups(const PackedWeights<W>& w, std::size_t cols, std::size_t column_bytes,
                      bool accumulate, Group&& group) {
  constexpr std::size_t kBlock = PackedWeights<W>::kBlock, kTileBlockBytes = kTileRows * 64;
  const std::size_t most =
      std::clamp<std::size_t>(kGemmPositionChunkBytes / column_bytes, 256, kGemmChunkColumns);
  const std::size_t step = (equal_chunk(cols, most) + 31) / 32 * 32;
  const std::size_t groups = (w.tile_count() + kGemmRowTiles - 1) / kGemmRowTiles;
  const auto [g0, g1] = thread_share(groups);
  for (std::size_t k0 = 0; k0 < cols; k0 += step) {
    const std::size_t k1 = std::min(cols, k0 + step);
    for (std::size_t g = g0; g < g1; ++g) {
      const std::size_t first = g * kGemmRowTiles;
      const std::size_t tiles = std::min(kGemmRowTiles, w.tile_count() - first);
      const std::size_t next = g + 1 < g1 ? g + 1 : g0, next_k0 = g + 1 < g1 ? k0 : k1;
      TileLinesPrefetch<PackedWeights<W>> prefetch;
      if (next_k0 < cols)
        prefetch = {w,
                    kTileBlockBytes,
                    next * kGemmRowTiles,
                    std::min(kGemmRowTiles, w.tile_count() - next * kGemmRowTiles),
                    next_k0 / kBlock,
                    (std::min(cols, next_k0 + step) + kBlock - 1) / kBlock};
      group(first, tiles, k0, k1, accumulate || k0 > 0, prefetch);
    }
  }
}

}  // namespace detail

// y = x W^T, or y += x W^T when accumulate; the team (when threaded) shares the row groups.
template <class W>
void linear_gemm(ConstMatrixView<float> x, const PackedWeights<W>& w, MatrixView<float> y,
                 bool accumulate, bool threaded) {
  thread_local Matrix<float> packed_positions;
  Matrix<float>& xt = packed_positions;  // the caller's, shared by the team
  xt.resize((x.rows + kGemmPositions - 1) / kGemmPositions,
            detail::packed_position_columns(x.cols) * kGemmPositions);
#pragma omp parallel if (threaded)
  {
    detail::pack_positions(x, xt);  // ends on the team's barrier
    thread_local const AlignedArray<float> widened =
        allocate_aligned<float>(kGemmRows * kWidenedRowFloats);
    thread_local Matrix<float> block_sums;  // a register tile's sums per position block
    block_sums.resize(xt.rows(), kGemmRows * kGemmPositions);
    detail::walk_gemm_groups(w, x.cols, xt.rows() * kGemmPositions * sizeof(float), accumulate,
                             [&](std::size_t first, std::size_t tiles, std::size_t k0,
                                 std::size_t k1, bool add, auto& prefetch) {
                               detail::gemm_row_group(w, xt, x.rows, first, tiles, k0, k1, add,
                                                      prefetch, widened.get(), block_sums.view(),
                                                      y);
                             });
  }
}

}  // namespace RECURRENT_DEPTH_KERNEL_NAMESPACE
}  // namespace recurrent_depth::cpu
