// 4-bit layers of several positions on AVX-512 VNNI with the activations broadcast (the kernel of
// linear_q4.hpp from kQ4PanelMinPositions positions): the int8 panels' scheme
// (linear_int8_panels.hpp) with the nibbles unpacked and a scale per group of 32 columns.
// Each thread unpacks 16 of its 4-row q4 tiles (a panel of 64 rows), a chunk of columns at a
// time: the values q (0..15) as bytes in the order [4-column words][64 rows][4 bytes] (16 x 16
// transposes of 32-bit words), and the scales as floats, [groups of the chunk][64 rows]. Then
// every position meets the chunk, kQ4PanelPositions at a time: per group of 32 columns, the
// integer sums of 16 rows per vector start at -8 S (S: the position's sum of xq over the group)
// and take the 8 words of the group with the position's 4 bytes of xq broadcast (vpdpbusd, q the
// unsigned operand), which leaves I = sum xq (q - 8) exact; converted to float they meet the
// group's scales in an FMA. The float sums go to a buffer between chunks; at the end the output
// is s_m times them, the formula of linear_q4.hpp with the float sums in another order.
// Shapes: q [M, padded K] signed bytes, x_scales [M], group_offsets [M, groups] (-8 S),
// W [N, K] packed (packed_q4.hpp), y [M, N] float32.
#pragma once

#if defined(__AVX512VNNI__)

#include <immintrin.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <utility>

#include "../../core/tensor.hpp"
#include "../../core/threads.hpp"
#include "linear_int8_panels.hpp"
#include "packed_q4.hpp"
#include "simd.hpp"
#include "tile_schedule.hpp"

namespace recurrent_depth::cpu {
inline namespace RECURRENT_DEPTH_KERNEL_NAMESPACE {

// Positions from which 4-bit layers take the panels.
inline constexpr std::size_t kQ4PanelMinPositions = 24;

namespace detail {

// 3 positions: 12 integer and 12 float accumulators, 4 weight vectors and a broadcast in the
// 32 registers.
inline constexpr int kQ4PanelPositions = 3;
inline constexpr std::size_t kQ4GroupWords = kQ4Group / 4;  // 4-column words per scale group

// Blocks [b0, b1) of the panel of tiles t0 .. t0 + count - 1 (count <= 16; rows past them
// zero): word k of the chunk's columns at panel + k * kPanelGroupBytes (16 rows' 4 values per
// 64-byte vector), group g's scales at scales + g * 64.
inline void unpack_q4_panel(const PackedQ4Weights& w, std::size_t t0, std::size_t count,
                            std::size_t b0, std::size_t b1, std::uint8_t* panel, float* scales) {
  const __m512i low_nibbles = _mm512_set1_epi8(0x0F);
  RECURRENT_DEPTH_UNROLL
  for (std::size_t group = 0; group < kPanelRowGroups; ++group)
    for (std::size_t b = b0; b < b1; ++b) {
      __m512i rows[16];
      RECURRENT_DEPTH_UNROLL
      for (std::size_t r = 0; r < 16; ++r) {
        const std::size_t tile = group * 4 + r / kTileRows;
        if (tile >= count) {
          rows[r] = _mm512_setzero_si512();
          continue;
        }
        // The row's 32 bytes in both halves; the high half shifted to its high nibbles: the
        // block's 64 values in the order of the columns.
        const __m512i packed = _mm512_maskz_broadcast_i64x4(
            0xFF,
            _mm256_load_si256(reinterpret_cast<const __m256i*>(
                w.tile(t0 + tile) + w.nibble_offset(b) + (r % kTileRows) * kQ4RowBlockBytes)));
        rows[r] =
            _mm512_and_si512(_mm512_mask_srli_epi16(packed, 0xFFFF0000u, packed, 4), low_nibbles);
      }
      store_transposed(rows, panel + ((b - b0) * 16 * kPanelRowGroups + group) * 64,
                       kPanelGroupBytes);
    }
  for (std::size_t g = 2 * b0; g < 2 * b1; ++g) {
    for (std::size_t n = 0; n < kPanelRowGroups * 16; ++n)
      scales[(g - 2 * b0) * 64 + n] = n / kTileRows < count ? w.scale(t0 * kTileRows + n, g) : 0.0f;
  }
}

// acc[p][j] += the scaled sums of position m0 + p against rows 16 j .. 16 j + 15 of a panel
// chunk of `groups` scale groups from group g0 of the columns; a step of `prefetch` per word.
template <int Positions>
inline void q4_panel_sums(const std::uint8_t* panel, const float* scales, std::size_t g0,
                          std::size_t groups, const Matrix<std::uint8_t>& q,
                          const Matrix<std::int32_t>& group_offsets, std::size_t m0,
                          __m512 (&acc)[Positions][kPanelRowGroups],
                          TileLinesPrefetch<PackedQ4Weights>& prefetch) {
  const std::uint8_t* x[Positions];
  for (int p = 0; p < Positions; ++p) x[p] = q.row(m0 + p) + g0 * kQ4Group;
  auto lines = prefetch;  // a copy, its counters in registers: not stored at every step
  for (std::size_t g = 0; g < groups; ++g) {
    __m512i sums[Positions][kPanelRowGroups];
    RECURRENT_DEPTH_UNROLL
    for (int p = 0; p < Positions; ++p) {
      RECURRENT_DEPTH_UNROLL
      for (std::size_t j = 0; j < kPanelRowGroups; ++j)
        sums[p][j] = _mm512_set1_epi32(group_offsets(m0 + p, g0 + g));
    }
    RECURRENT_DEPTH_UNROLL
    for (std::size_t word = 0; word < kQ4GroupWords; ++word) {
      lines.step();
      panel_word_sums</*PanelUnsigned=*/true>(panel, g * kQ4GroupWords + word, x, sums);
    }
    RECURRENT_DEPTH_UNROLL
    for (std::size_t j = 0; j < kPanelRowGroups; ++j) {
      const __m512 d = _mm512_load_ps(scales + g * 64 + j * 16);
      RECURRENT_DEPTH_UNROLL
      for (int p = 0; p < Positions; ++p)
        acc[p][j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sums[p][j]), d, acc[p][j]);
    }
  }
  prefetch = lines;
}

}  // namespace detail

// y = x W^T (y += when accumulate) for 4-bit weights, from x quantised (linear_q4.hpp).
inline void linear_q4_panels(const Matrix<std::uint8_t>& q, std::span<const float> x_scales,
                             const Matrix<std::int32_t>& group_offsets, const PackedQ4Weights& w,
                             MatrixView<float> y, bool accumulate, bool threaded) {
  using namespace detail;
  // Chunks on whole chunks of the tiles' layout, so that their bytes are contiguous.
  const std::size_t chunk = (equal_chunk(w.blocks(), kPanelChunkBlocks) + kQ4ChunkBlocks - 1) /
                            kQ4ChunkBlocks * kQ4ChunkBlocks;
  const std::size_t position_runs = (y.rows + kQ4PanelPositions - 1) / kQ4PanelPositions;
#pragma omp parallel if (threaded)
  {
    thread_local Matrix<std::uint8_t> panel_buffer;
    thread_local Matrix<float> scale_buffer, carried_buffer;
    Matrix<std::uint8_t>& panel = panel_buffer;  // this thread's: [words, 64 rows x 4 bytes]
    Matrix<float>& scales = scale_buffer;        // this thread's: [groups, 64 rows]
    Matrix<float>& carried = carried_buffer;     // this thread's sums between chunks
    panel.resize(chunk * 16, kPanelGroupBytes);
    scales.resize(chunk * 2, kPanelRowGroups * 16);
    carried.resize(chunk < w.blocks() ? y.rows : 0, kPanelRowGroups * 16);
    const auto [t0, t1] = thread_share(w.tile_count());
    for (std::size_t t = t0; t < t1; t += kPanelRowTiles) {
      const std::size_t count = std::min(kPanelRowTiles, t1 - t);
      const std::size_t n0 = t * kTileRows, real_rows = std::min(count * kTileRows, w.rows() - n0);
      for (std::size_t b0 = 0; b0 < w.blocks(); b0 += chunk) {
        const std::size_t b1 = std::min(w.blocks(), b0 + chunk);
        unpack_q4_panel(w, t, count, b0, b1, panel.row(0), scales.row(0));
        auto prefetch = next_panel_lines(w, kQ4TileBlockBytes, t, b1, t1, chunk);
        prefetch.space_over((b1 - b0) * 16 * position_runs);
        const auto run = [&]<int Positions>(std::size_t m0) {
          __m512 acc[Positions][kPanelRowGroups];
          RECURRENT_DEPTH_UNROLL
          for (int p = 0; p < Positions; ++p) {
            RECURRENT_DEPTH_UNROLL
            for (std::size_t j = 0; j < kPanelRowGroups; ++j)
              acc[p][j] =
                  b0 > 0 ? _mm512_load_ps(carried.row(m0 + p) + j * 16) : _mm512_setzero_ps();
          }
          q4_panel_sums<Positions>(panel.row(0), scales.row(0), 2 * b0, 2 * (b1 - b0), q,
                                   group_offsets, m0, acc, prefetch);
          if (b1 < w.blocks()) {
            RECURRENT_DEPTH_UNROLL
            for (int p = 0; p < Positions; ++p) {
              RECURRENT_DEPTH_UNROLL
              for (std::size_t j = 0; j < kPanelRowGroups; ++j)
                _mm512_store_ps(carried.row(m0 + p) + j * 16, acc[p][j]);
            }
            return;
          }
          RECURRENT_DEPTH_UNROLL
          for (std::size_t j = 0; j < kPanelRowGroups; ++j) {
            if (j * 16 >= real_rows) break;
            const std::size_t outputs = std::min<std::size_t>(16, real_rows - j * 16);
            const __mmask16 mask = __mmask16((1u << outputs) - 1);
            RECURRENT_DEPTH_UNROLL
            for (int p = 0; p < Positions; ++p)
              store_outputs(y.row(m0 + p) + n0 + j * 16,
                            _mm512_mul_ps(acc[p][j], _mm512_set1_ps(x_scales[m0 + p])), mask,
                            accumulate);
          }
        };
        for_position_runs<kQ4PanelPositions>(y.rows, run);
      }
    }
  }
}

}  // namespace RECURRENT_DEPTH_KERNEL_NAMESPACE
}  // namespace recurrent_depth::cpu

#endif
