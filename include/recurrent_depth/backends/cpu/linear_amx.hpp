// Dense layers y = x W^T on AMX tiles (Advanced Matrix Extensions), for several positions,
// with int8 weights (tdpbsud) or bf16 weights (tdpbf16ps). One tile product multiplies a tile A
// of 16 rows of 64 bytes by a tile B of 16 rows of 64 bytes, each row of B holding 16 columns of
// 4 bytes (4 int8 or 2 bf16 values along K):
//   C[i][j] += sum over rows r < 16 of B, values v of a 4-byte group: A[i][r, v] B[r][j, v]
// A is a 64-byte block of 16 weight rows: each thread copies its weight tiles, 8 at a time (32
// rows), into a panel where the 16 rows of a block lie 64 bytes apart (PackedWeights keeps 4 rows
// together). B holds that block of 16 positions' activations, with the 4-byte groups of position j
// moved into column j (a 16 x 16 transpose of 32-bit words), built once per call for the team. So
// C = W x^T: 16 weight rows by 16 positions. Two weight tiles against two groups of positions at
// a time: 4 accumulator tiles, 2 weight tiles and 2 activation tiles fill the 8 tile registers.
// Long rows go in column chunks (kAmxActivationChunkBytes), the accumulators carried between them.
//  - int8: the offset activation bytes of linear_int8.hpp; C holds the same exact integer sums
//    as vpdpbusd (signed weights by unsigned activations).
//  - bf16: each activation split in two bf16 values, x = hi + lo + e with |e| <= 2^-16 |x|
//    (kAmxBf16ActivationError); two products per block add W hi^T and W lo^T in float. A
//    non-finite activation gives NaN outputs.
// Shapes: x [M, K], W [N, K] packed, y [M, N] float32.
#pragma once

#if defined(__AMX_TILE__) && (defined(__AMX_INT8__) || defined(__AMX_BF16__))

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
#include "packed_weights.hpp"
#include "simd.hpp"
#include "tile_schedule.hpp"

namespace recurrent_depth::cpu {
inline namespace RECURRENT_DEPTH_KERNEL_NAMESPACE {

// Positions per activation tile.
inline constexpr std::size_t kAmxPositions = 16;
// Positions from which the dense kernels use the tiles: there they beat the vector kernels
// (2 threads, K and N of huginn-mini and huginn-0125: bf16 1.1x at 8 positions, 1.5x at 12; int8
// 0.8-1.1x at 8, 1.1-1.4x at 12).
inline constexpr std::size_t kAmxMinPositionsBf16 = 8;
inline constexpr std::size_t kAmxMinPositionsInt8 = 12;
// The bound on the relative error of an activation in the bf16 tile products (hi + lo).
inline constexpr double kAmxBf16ActivationError = 1.0 / 65536;
// Layers walk the columns in equal chunks whose activation tiles take at most this much, so that
// they stay in L2 while all the weight rows pass; each thread keeps its sums in a buffer between
// chunks. One chunk up to K = 3072 (bf16) or 12288 (int8) at 64 positions, 1536 or 6144 at 128.
// Against one chunk, 2 threads, 64 positions, K = 17920: 2.4x faster in bf16, 1.7x in int8. Against
// 512 KB chunks: even at 64 positions; at 128, 1.1-1.4x faster ([7168, 1056] no longer splits in
// two; [5280, 17920] and [35840, 5280], bf16 and int8); 1 MB: within noise of 768 KB.
inline constexpr std::size_t kAmxActivationChunkBytes = std::size_t(768) << 10;

namespace detail {

inline constexpr std::size_t kAmxTileBytes = 16 * 64;       // one tile register's worth
inline constexpr std::size_t kPanelTiles = 32 / kTileRows;  // weight tiles per panel (32 rows)

enum class AmxProduct { int8, bf16 };

// Groups of kAmxPositions positions (activation tiles per block and part).
inline std::size_t position_groups(std::size_t positions) {
  return (positions + kAmxPositions - 1) / kAmxPositions;
}

// The layout of the tile registers (ldtilecfg's 64-byte operand, palette 1): all 8 of 16 rows of
// 64 bytes. Accumulators 0-3, weight blocks 4-5, activation tiles 6-7.
struct alignas(64) AmxTileConfig {
  std::uint8_t palette = 1;
  std::uint8_t start_row = 0;
  std::uint8_t reserved[14] = {};
  std::uint16_t bytes_per_row[16] = {64, 64, 64, 64, 64, 64, 64, 64};
  std::uint8_t rows[16] = {16, 16, 16, 16, 16, 16, 16, 16};
};
static_assert(sizeof(AmxTileConfig) == 64);

// Loads a tile layout, which must be a constant (static constexpr). (GCC 12's _tile_loadconfig
// tells the compiler that it reads only the first 8 bytes of its operand, so the stores that build
// a layout on the stack may be dropped.)
inline void load_tile_config(const AmxTileConfig& config) {
  _tile_loadconfig(&config);
}

// Loads the layout above: all 8 tiles of 16 rows of 64 bytes.
inline void load_tile_config() {
  static constexpr AmxTileConfig kConfig{};
  load_tile_config(kConfig);
}

// The int8 activation tiles of column block b at out (one per group of 16 positions): q's
// bytes, `zero` (the offset bytes' 128 by default) past the last position.
inline void int8_activation_tiles(const Matrix<std::uint8_t>& q, std::size_t b, std::uint8_t* out,
                                  std::uint8_t zero = 0x80) {
  for (std::size_t m0 = 0; m0 < q.rows(); m0 += kAmxPositions, out += kAmxTileBytes) {
    __m512i rows[16];
    RECURRENT_DEPTH_UNROLL
    for (std::size_t j = 0; j < 16; ++j)
      rows[j] = m0 + j < q.rows() ? _mm512_loadu_si512(q.row(m0 + j) + b * 64)
                                  : _mm512_set1_epi8(char(zero));
    store_transposed(rows, out);
  }
}

// The bf16 activation tiles of column block b (32 values): x = hi + lo, hi's tiles at hi_out and
// lo's at lo_out, one per group of 16 positions; zeros past x's columns and last position.
inline void bf16_activation_tiles(ConstMatrixView<float> x, std::size_t b, std::uint8_t* hi_out,
                                  std::uint8_t* lo_out) {
  for (std::size_t m0 = 0; m0 < x.rows; m0 += kAmxPositions) {
    __m512i hi[16], lo[16];
    RECURRENT_DEPTH_UNROLL
    for (std::size_t j = 0; j < 16; ++j) {
      hi[j] = lo[j] = _mm512_setzero_si512();
      if (m0 + j >= x.rows) continue;
      __m512i high[2], rest[2];  // [first, second 16 values]
      RECURRENT_DEPTH_UNROLL
      for (std::size_t h = 0; h < 2; ++h) {
        const __m512 v = load_floats_upto(x.row(m0 + j), b * 32 + h * 16, x.cols);
        high[h] = bf16_bits(v);
        rest[h] = bf16_bits(_mm512_sub_ps(v, _mm512_castsi512_ps(_mm512_slli_epi32(high[h], 16))));
      }
      hi[j] = bf16_in_order(high[0], high[1]);
      lo[j] = bf16_in_order(rest[0], rest[1]);
    }
    store_transposed(hi, hi_out + m0 / kAmxPositions * kAmxTileBytes);
    store_transposed(lo, lo_out + m0 / kAmxPositions * kAmxTileBytes);
  }
}

// The tile products of one block: accumulator 2 i + j += weight tile 4 + i x activation tile 6 + j
// for the tiles in use. Tile registers are immediates of the instruction, hence the macro.
#define RECURRENT_DEPTH_AMX_PRODUCTS(product)      \
  product(0, 4, 6);                                \
  if constexpr (Groups > 1) product(1, 4, 7);      \
  if constexpr (WeightTiles > 1) product(2, 5, 6); \
  if constexpr (WeightTiles > 1 && Groups > 1) product(3, 5, 7)

template <AmxProduct P, int WeightTiles, int Groups>
inline void amx_products() {
  if constexpr (P == AmxProduct::int8) {
#if defined(__AMX_INT8__)
    RECURRENT_DEPTH_AMX_PRODUCTS(_tile_dpbsud);
#endif
  } else {
#if defined(__AMX_BF16__)
    RECURRENT_DEPTH_AMX_PRODUCTS(_tile_dpbf16ps);
#endif
  }
}
#undef RECURRENT_DEPTH_AMX_PRODUCTS

// Activation parts per product: int8 one, bf16 two (hi, lo).
template <AmxProduct P>
inline constexpr std::size_t kAmxParts = P == AmxProduct::int8 ? 1 : 2;

// The accumulators of a panel against two groups: [weight tile i][group j][16 rows][16 sums], in
// tile register 2 i + j.
template <class Sum>
using AmxSums = Sum[2][2][16][kAmxPositions];

// c[i][j] = start[i][j] (zero when start is null) + the sums of the panel's weight tile i against
// activation group j over the blocks. Block b of weight tile i lies at panel + b * panel_stride +
// i * kAmxTileBytes; the activation tiles of block b and part p at activations + b * block_stride
// + p * part_stride, group j one tile further each. after_block(b) runs while the products of
// block b execute.
template <AmxProduct P, int WeightTiles, int Groups, class Sum, class AfterBlock>
inline void amx_dot_tiles(const std::uint8_t* panel, std::size_t panel_stride,
                          const std::uint8_t* activations, std::size_t block_stride,
                          std::size_t part_stride, std::size_t blocks, const AmxSums<Sum>* start,
                          AmxSums<Sum>& c, const AfterBlock& after_block) {
  if (start != nullptr) {
    _tile_loadd(0, (*start)[0][0], 64);
    if constexpr (Groups > 1) _tile_loadd(1, (*start)[0][1], 64);
    if constexpr (WeightTiles > 1) _tile_loadd(2, (*start)[1][0], 64);
    if constexpr (WeightTiles > 1 && Groups > 1) _tile_loadd(3, (*start)[1][1], 64);
  } else {
    _tile_zero(0);
    if constexpr (Groups > 1) _tile_zero(1);
    if constexpr (WeightTiles > 1) _tile_zero(2);
    if constexpr (WeightTiles > 1 && Groups > 1) _tile_zero(3);
  }
  for (std::size_t b = 0; b < blocks; ++b) {
    const std::uint8_t* weights = panel + b * panel_stride;
    _tile_loadd(4, weights, 64);
    if constexpr (WeightTiles > 1) _tile_loadd(5, weights + kAmxTileBytes, 64);
    for (std::size_t p = 0; p < kAmxParts<P>; ++p) {
      const std::uint8_t* tiles = activations + b * block_stride + p * part_stride;
      _tile_loadd(6, tiles, 64);
      if constexpr (Groups > 1) _tile_loadd(7, tiles + kAmxTileBytes, 64);
      amx_products<P, WeightTiles, Groups>();
    }
    after_block(b);
  }
  _tile_stored(0, c[0][0], 64);
  if constexpr (Groups > 1) _tile_stored(1, c[0][1], 64);
  if constexpr (WeightTiles > 1) _tile_stored(2, c[1][0], 64);
  if constexpr (WeightTiles > 1 && Groups > 1) _tile_stored(3, c[1][1], 64);
}

// Copies block b of `count` (at most kPanelTiles) weight tiles from tile t0 into the panel
// [blocks, 32 rows of 64 bytes]; rows past them are zeros. Across the tiles, each prefetched
// ahead: that many memory streams in flight.
template <class W>
void copy_panel_block(const PackedWeights<W>& w, std::size_t t0, std::size_t count, std::size_t b,
                      Matrix<std::uint8_t>& panel) {
  constexpr std::size_t kTileBlock = kTileRows * 64;
  std::uint8_t* out = panel.row(b);
  for (std::size_t i = 0; i < count; ++i) {
    const std::uint8_t* in = reinterpret_cast<const std::uint8_t*>(w.tile(t0 + i)) + b * kTileBlock;
    for (std::size_t line = 0; line < kTileBlock; line += 64)
      __builtin_prefetch(in + kPrefetchBytes + line);
    std::memcpy(out + i * kTileBlock, in, kTileBlock);
  }
  std::memset(out + count * kTileBlock, 0, (kPanelTiles - count) * kTileBlock);
}

// Prefetches block b of the weight tiles of the panel from tile t0 (those of the thread's share)
// into L2, so that copying them later does not wait on memory.
template <class W>
void prefetch_panel_block(const PackedWeights<W>& w, std::size_t t0, std::size_t t1,
                          std::size_t b) {
  for (std::size_t t = t0; t < std::min(t1, t0 + kPanelTiles); ++t) {
    const char* in = reinterpret_cast<const char*>(w.tile(t)) + b * kTileRows * 64;
    for (std::size_t line = 0; line < kTileRows * 64; line += 64)
      __builtin_prefetch(in + line, 0, 2);
  }
}

// The panel of weight tiles t0, t0 + 1, ... (`count` of them) over blocks [b0, b1) against
// groups g0, g0 + 1, ..., starting from the sums in *carried when `resume`. When `suspend`,
// the sums go back to *carried; otherwise into y: y[m][n .. n + 15] = value(m, n, sums, mask)
// (or += when add) from the 16 sums of position m, for the real rows (mask) and positions.
template <AmxProduct P, int WeightTiles, int Groups, class Sum, class Value, class AfterBlock>
void amx_panel_to_outputs(const Matrix<std::uint8_t>& panel, std::size_t b0, std::size_t b1,
                          std::size_t t0, std::size_t count, std::size_t rows,
                          const Matrix<std::uint8_t>& activations, std::size_t g0,
                          AmxSums<Sum>* carried, bool resume, bool suspend, MatrixView<float> y,
                          bool add, const Value& value, const AfterBlock& after_block) {
  alignas(64) AmxSums<Sum> sums_here;
  AmxSums<Sum>& c = suspend ? *carried : sums_here;
  amx_dot_tiles<P, WeightTiles, Groups>(
      panel.row(b0), panel.view().stride, activations.row(b0) + g0 * kAmxTileBytes,
      activations.view().stride, position_groups(y.rows) * kAmxTileBytes, b1 - b0,
      resume ? carried : nullptr, c, [&](std::size_t b) { after_block(b0 + b); });
  if (suspend) return;
  const std::size_t n0 = t0 * kTileRows, real_rows = std::min(count * kTileRows, rows - n0);
  RECURRENT_DEPTH_UNROLL
  for (int i = 0; i < WeightTiles; ++i) {
    const std::size_t first = n0 + 16 * std::size_t(i);
    const std::size_t outputs = real_rows - std::min(real_rows, 16 * std::size_t(i));
    if (outputs == 0) continue;
    const __mmask16 mask = first_lanes(outputs);
    RECURRENT_DEPTH_UNROLL
    for (int j = 0; j < Groups; ++j) {
      const std::size_t m0 = (g0 + std::size_t(j)) * kAmxPositions;
      const std::size_t positions = std::min(kAmxPositions, y.rows - m0);
      // [weight row][position] -> [position][weight row]: one vector of y's row per position.
      __m512i sums[16];
      RECURRENT_DEPTH_UNROLL
      for (int r = 0; r < 16; ++r) sums[r] = _mm512_load_si512(c[i][j][r]);
      store_transposed_outputs(
          sums, positions, y, m0, first, mask, add,
          [&](std::size_t p, __m512i words) { return value(m0 + p, first, words, mask); });
    }
  }
}

// The tiles' walk on the team: activation tiles built (make_tiles(b, row of block b), parts one
// after the other) and shared; then, for each chunk of blocks (the sums carried from one chunk
// to the next, the outputs written after the last), each thread runs its weight tiles a panel at a
// time against the groups of positions, two at a time, and copies the next panel block by block
// while the tile products of the first two groups execute (two panels per thread, in turn). In
// bf16 layers of one chunk and more than one pair of groups, the panel after that is prefetched
// into L2 while the last pair executes (huginn-mini's fc and Wqkv at 64 positions: 1.06-1.15x
// faster). Left out where it was slower: a single pair of groups ([1056, 3584] at 32 positions:
// 1.3-1.5x), int8 (1.0-1.2x), and layers of 6 chunks ([5280, 17920] at 64: 1.1x); layers of 2
// chunks gained 0-8%.
template <AmxProduct P, class Sum, class W, class MakeTiles, class Value>
void amx_linear(const PackedWeights<W>& w, MatrixView<float> y, bool accumulate, bool threaded,
                const MakeTiles& make_tiles, const Value& value) {
  require(amx_tiles_permitted(), "linear: the operating system refuses this process the AMX tiles");
  const std::size_t groups = position_groups(y.rows), pairs = (groups + 1) / 2;
  const std::size_t chunk = equal_chunk(
      w.blocks(),
      std::max<std::size_t>(1, kAmxActivationChunkBytes / (kAmxParts<P> * groups * kAmxTileBytes)));
  const bool chunked = chunk < w.blocks();
  const bool prefetch_after_next = P == AmxProduct::bf16 && !chunked && pairs > 1;
  thread_local Matrix<std::uint8_t> buffer;
  Matrix<std::uint8_t>& activations = buffer;  // [blocks, parts x groups tiles], the team's
  activations.resize(w.blocks(), kAmxParts<P> * groups * kAmxTileBytes);
#pragma omp parallel if (threaded)
  {
    const auto [b0, b1] = thread_share(w.blocks());
    for (std::size_t b = b0; b < b1; ++b) make_tiles(b, activations.row(b));
#pragma omp barrier
    load_tile_config();
    thread_local Matrix<std::uint8_t> panels[2];  // this thread's
    for (Matrix<std::uint8_t>& panel : panels)
      panel.resize(w.blocks(), kPanelTiles * kTileRows * 64);
    const auto [t0, t1] = thread_share(w.tile_count());
    const auto count_from = [&](std::size_t t) {
      return t < t1 ? std::min(kPanelTiles, t1 - t) : 0;
    };
    thread_local Matrix<std::uint8_t> carried;  // this thread's sums between chunks: [panel, pair]
    if (chunked)
      carried.resize((t1 - t0 + kPanelTiles - 1) / kPanelTiles * pairs, sizeof(AmxSums<Sum>));
    for (std::size_t c0 = 0; c0 < w.blocks(); c0 += chunk) {
      const std::size_t c1 = std::min(w.blocks(), c0 + chunk);
      const bool resume = c0 > 0, suspend = c1 < w.blocks();
      for (std::size_t b = c0; b < c1 && t0 < t1; ++b)
        copy_panel_block(w, t0, count_from(t0), b, panels[0]);
      for (std::size_t t = t0, k = 0; t < t1; t += kPanelTiles, k ^= 1) {
        const std::size_t count = count_from(t), next = count_from(t + kPanelTiles);
        const Matrix<std::uint8_t>& panel = panels[k];
        const bool two_tiles = count * kTileRows > 16;
        for (std::size_t g = 0; g < groups; g += 2) {
          const bool two_groups = g + 1 < groups;
          const auto fetch_ahead = [&](std::size_t b) {
            if (g == 0 && next > 0) copy_panel_block(w, t + kPanelTiles, next, b, panels[k ^ 1]);
            if (prefetch_after_next && g + 2 >= groups)
              prefetch_panel_block(w, t + 2 * kPanelTiles, t1, b);
          };
          AmxSums<Sum>* sums = chunked ? reinterpret_cast<AmxSums<Sum>*>(
                                             carried.row((t - t0) / kPanelTiles * pairs + g / 2))
                                       : nullptr;
          const auto run = [&]<int WeightTiles, int Groups>() {
            amx_panel_to_outputs<P, WeightTiles, Groups, Sum>(panel, c0, c1, t, count, w.rows(),
                                                              activations, g, sums, resume, suspend,
                                                              y, accumulate, value, fetch_ahead);
          };
          if (two_tiles && two_groups)
            run.template operator()<2, 2>();
          else if (two_tiles)
            run.template operator()<2, 1>();
          else if (two_groups)
            run.template operator()<1, 2>();
          else
            run.template operator()<1, 1>();
        }
      }
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
      [&](std::size_t m, std::size_t n, __m512i sums, __mmask16 mask) {
        return int8_outputs(sums, w.row_sums().data() + n, w.scales().data() + n, x_scales[m],
                            mask);
      });
}
#endif

#if defined(__AMX_BF16__)
// y = x W^T (y += when accumulate) for bf16 weights.
inline void linear_bf16_amx(ConstMatrixView<float> x, const PackedWeights<bf16>& w,
                            MatrixView<float> y, bool accumulate, bool threaded) {
  using detail::AmxProduct;
  const std::size_t part = detail::position_groups(x.rows) * detail::kAmxTileBytes;
  detail::amx_linear<AmxProduct::bf16, float>(
      w, y, accumulate, threaded,
      [&](std::size_t b, std::uint8_t* tiles) {
        detail::bf16_activation_tiles(x, b, tiles, tiles + part);
      },
      [](std::size_t, std::size_t, __m512i sums, __mmask16) { return _mm512_castsi512_ps(sums); });
}
#endif

}  // namespace RECURRENT_DEPTH_KERNEL_NAMESPACE
}  // namespace recurrent_depth::cpu

#endif
