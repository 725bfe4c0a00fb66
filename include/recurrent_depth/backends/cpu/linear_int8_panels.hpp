// int8 layers of several positions on AVX-512 VNNI with the activations broadcast (the kernel of
// linear_int8.hpp from kInt8PanelMinPositions positions, where the CPU has no AMX tiles for them).
// Each thread copies 16 of its 4-row weight tiles (a panel of 64 rows), a chunk of columns at a
// time, into the order [4-byte groups of the chunk][64 rows][4 bytes], with 16 x 16 transposes of
// 32-bit words; then every position meets the chunk, kPanelPositions at a time: for each 4-byte
// group of K, the 4 vectors of that group of 16 rows each take the position's 4 bytes broadcast
// into all lanes (vpdpbusd). Each accumulator then holds 16 outputs, so no horizontal sums follow,
// and the panel is copied once for all positions; the sums go to a buffer between chunks. While
// the positions pass, the weights of the next chunk are prefetched into L2, a line at a time
// between the products ([7168, 1056] at 64 positions: 1.03-1.09x; end to end 1.02-1.06x). The sums
// are the exact integers of the other int8 kernels, and the outputs the same float formula on them.
// Shapes: q [M, padded K] offset bytes, x_scales [M], W [N, K] packed, y [M, N] float32.
#pragma once

#if defined(__AVX512VNNI__)

#include <immintrin.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <utility>

#include "../../core/tensor.hpp"
#include "../../core/threads.hpp"
#include "packed_weights.hpp"
#include "simd.hpp"
#include "tile_schedule.hpp"

namespace recurrent_depth::cpu {
inline namespace RECURRENT_DEPTH_KERNEL_NAMESPACE {

// Positions from which int8 layers take the panels: below, the panel copy costs more than the
// horizontal sums it saves (2 threads, [7168, 1056]: 16 positions even, 24 1.16x, 64 1.37x;
// [1056, 3584]: even up to 64; huginn-0125's widths at 64: 1.06-1.19x).
inline constexpr std::size_t kInt8PanelMinPositions = 24;

namespace detail {

inline constexpr std::size_t kPanelRowTiles = 16;        // 4-row tiles per panel: 64 rows
inline constexpr std::size_t kPanelRowGroups = 4;        // groups of 16 rows per panel
inline constexpr std::size_t kPanelGroupBytes = 4 * 64;  // one 4-byte group of K for 64 rows
inline constexpr int kPanelPositions = 6;                // 6 x 4 accumulators
// Columns per panel chunk, in 64-column blocks: a chunk of the panel (32 KB) stays in L1 while
// all positions pass; each position's sums are carried from one chunk to the next. (4, 6 or 8
// blocks: within 5% of each other; one chunk for the whole row: 5-15% slower at 16-32 positions.)
inline constexpr std::size_t kPanelChunkBlocks = 8;

// Blocks [b0, b1) of the panel of tiles t0 .. t0 + count - 1 (count <= 16; rows past them
// zero): group g of the chunk's columns at panel + g * kPanelGroupBytes, 16 rows' 4 bytes per
// 64-byte vector.
inline void interleave_panel(const PackedWeights<std::int8_t>& w, std::size_t t0, std::size_t count,
                             std::size_t b0, std::size_t b1, std::uint8_t* panel) {
  RECURRENT_DEPTH_UNROLL
  for (std::size_t group = 0; group < kPanelRowGroups; ++group)
    for (std::size_t b = b0; b < b1; ++b) {
      __m512i rows[16];
      RECURRENT_DEPTH_UNROLL
      for (std::size_t r = 0; r < 16; ++r) {
        const std::size_t tile = group * 4 + r / kTileRows;
        rows[r] = tile < count
                      ? _mm512_load_si512(w.tile(t0 + tile) + (b * kTileRows + r % kTileRows) * 64)
                      : _mm512_setzero_si512();
      }
      store_transposed(rows, panel + ((b - b0) * 16 * kPanelRowGroups + group) * 64,
                       kPanelGroupBytes);
    }
}

// The lines of the weights a thread copies after blocks [.., b1) of the panel from tile t
// (chunks of `chunk` blocks, block_bytes per tile and block): the same tiles' next columns, or
// the next panel's first; nothing past the thread's last tile t1. The copy finds them in L2.
template <class Weights>
TileLinesPrefetch<Weights> next_panel_lines(const Weights& w, std::size_t block_bytes,
                                            std::size_t t, std::size_t b1, std::size_t t1,
                                            std::size_t chunk) {
  const std::size_t first = b1 < w.blocks() ? t : t + kPanelRowTiles;
  const std::size_t b0 = b1 < w.blocks() ? b1 : 0;
  if (first >= t1) return {};
  return {w,     block_bytes,
          first, std::min(kPanelRowTiles, t1 - first),
          b0,    std::min(w.blocks(), b0 + chunk)};
}

// run.template operator()<Run>(m0) for each whole run of Run positions from 0, then
// run.template operator()<R>(m0) once for the R < Run positions left (a template argument too).
template <int Run, class Body>
void for_position_runs(std::size_t positions, Body&& run) {
  std::size_t m0 = 0;
  for (; m0 + Run <= positions; m0 += Run) run.template operator()<Run>(m0);
  [&]<int... P>(std::integer_sequence<int, P...>) {
    ((positions - m0 == std::size_t(P + 1) ? run.template operator()<P + 1>(m0) : void()), ...);
  }
  (std::make_integer_sequence<int, Run - 1>());
}

// sums[p][j] += the products of 4-byte group k of a panel chunk (rows 16 j .. 16 j + 15) with
// position p's 4 bytes at x[p] + 4 k broadcast; the panel is vpdpbusd's unsigned operand when
// PanelUnsigned (q4's values), else x is (the int8 panels' offset bytes).
template <bool PanelUnsigned, int Positions>
inline void panel_word_sums(const std::uint8_t* panel, std::size_t k,
                            const std::uint8_t* const (&x)[Positions],
                            __m512i (&sums)[Positions][kPanelRowGroups]) {
  const std::uint8_t* rows = panel + k * kPanelGroupBytes;
  __m512i w[kPanelRowGroups];
  RECURRENT_DEPTH_UNROLL
  for (std::size_t j = 0; j < kPanelRowGroups; ++j) w[j] = _mm512_load_si512(rows + j * 64);
  RECURRENT_DEPTH_UNROLL
  for (int p = 0; p < Positions; ++p) {
    std::int32_t bytes;
    std::memcpy(&bytes, x[p] + k * 4, 4);
    const __m512i broadcast = _mm512_set1_epi32(bytes);
    RECURRENT_DEPTH_UNROLL
    for (std::size_t j = 0; j < kPanelRowGroups; ++j)
      sums[p][j] = PanelUnsigned ? dot_bytes_add(sums[p][j], w[j], broadcast)
                                 : dot_bytes_add(sums[p][j], broadcast, w[j]);
  }
}

// acc[p][g] += the sums of position m0 + p against rows 16 g .. 16 g + 15 of a panel chunk of
// `groups` 4-byte groups from group k0 of the columns; a step of `prefetch` per group.
template <int Positions>
inline void panel_sums(const std::uint8_t* panel, std::size_t k0, std::size_t groups,
                       const Matrix<std::uint8_t>& q, std::size_t m0,
                       __m512i (&acc)[Positions][kPanelRowGroups],
                       TileLinesPrefetch<PackedWeights<std::int8_t>>& prefetch) {
  const std::uint8_t* x[Positions];
  for (int p = 0; p < Positions; ++p) x[p] = q.row(m0 + p) + k0 * 4;
  auto lines = prefetch;  // a copy, its counters in registers: not stored at every step
  for (std::size_t k = 0; k < groups; ++k) {
    lines.step();
    panel_word_sums</*PanelUnsigned=*/false>(panel, k, x, acc);
  }
  prefetch = lines;
}

}  // namespace detail

// y = x W^T (y += when accumulate) for int8 weights, from x quantised to q and x_scales
// (linear_int8.hpp).
inline void linear_int8_panels(const Matrix<std::uint8_t>& q, std::span<const float> x_scales,
                               const PackedWeights<std::int8_t>& w, MatrixView<float> y,
                               bool accumulate, bool threaded) {
  using namespace detail;
  const std::size_t chunk = equal_chunk(w.blocks(), kPanelChunkBlocks);
  const std::size_t position_runs = (y.rows + kPanelPositions - 1) / kPanelPositions;
#pragma omp parallel if (threaded)
  {
    thread_local Matrix<std::uint8_t> panel_buffer;
    thread_local Matrix<std::int32_t> carried_buffer;
    Matrix<std::uint8_t>& panel = panel_buffer;      // this thread's: [groups, 64 rows x 4 bytes]
    Matrix<std::int32_t>& carried = carried_buffer;  // this thread's sums between chunks
    panel.resize(chunk * 16, kPanelGroupBytes);
    carried.resize(chunk < w.blocks() ? y.rows : 0, kPanelRowGroups * 16);
    const auto [t0, t1] = thread_share(w.tile_count());
    for (std::size_t t = t0; t < t1; t += kPanelRowTiles) {
      const std::size_t count = std::min(kPanelRowTiles, t1 - t);
      const std::size_t n0 = t * kTileRows, real_rows = std::min(count * kTileRows, w.rows() - n0);
      for (std::size_t b0 = 0; b0 < w.blocks(); b0 += chunk) {
        const std::size_t b1 = std::min(w.blocks(), b0 + chunk);
        interleave_panel(w, t, count, b0, b1, panel.row(0));
        auto prefetch = next_panel_lines(w, kTileRows * 64, t, b1, t1, chunk);
        prefetch.space_over((b1 - b0) * 16 * position_runs);
        const auto run = [&]<int Positions>(std::size_t m0) {
          __m512i acc[Positions][kPanelRowGroups];
          RECURRENT_DEPTH_UNROLL
          for (int p = 0; p < Positions; ++p) {
            RECURRENT_DEPTH_UNROLL
            for (std::size_t g = 0; g < kPanelRowGroups; ++g)
              acc[p][g] =
                  b0 > 0 ? _mm512_load_si512(carried.row(m0 + p) + g * 16) : _mm512_setzero_si512();
          }
          panel_sums<Positions>(panel.row(0), b0 * 16, (b1 - b0) * 16, q, m0, acc, prefetch);
          if (b1 < w.blocks()) {
            RECURRENT_DEPTH_UNROLL
            for (int p = 0; p < Positions; ++p) {
              RECURRENT_DEPTH_UNROLL
              for (std::size_t g = 0; g < kPanelRowGroups; ++g)
                _mm512_store_si512(carried.row(m0 + p) + g * 16, acc[p][g]);
            }
            return;
          }
          RECURRENT_DEPTH_UNROLL
          for (std::size_t g = 0; g < kPanelRowGroups; ++g) {
            if (g * 16 >= real_rows) break;
            const std::size_t n = n0 + g * 16;
            const std::size_t outputs = std::min<std::size_t>(16, real_rows - g * 16);
            const __mmask16 mask = __mmask16((1u << outputs) - 1);
            RECURRENT_DEPTH_UNROLL
            for (int p = 0; p < Positions; ++p) {
              store_outputs(y.row(m0 + p) + n,
                            int8_outputs(acc[p][g], w.row_sums().data() + n, w.scales().data() + n,
                                         x_scales[m0 + p], mask),
                            mask, accumulate);
            }
          }
        };
        for_position_runs<kPanelPositions>(y.rows, run);
      }
    }
  }
}

}  // namespace RECURRENT_DEPTH_KERNEL_NAMESPACE
}  // namespace recurrent_depth::cpu

#endif
