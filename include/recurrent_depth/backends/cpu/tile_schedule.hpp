// How the linear kernels (linear.hpp, linear_int8.hpp) walk the row tiles of PackedWeights.
// Threads split the tiles evenly; each thread then runs, over its share [t0, t1):
//  - groups of 4 positions against groups of kTileGroup tiles: the 4 positions' x stays in L1
//    while the group's tiles (in L2 after the first positions) pass it (prefill; 16 tiles: +5-8%
//    over one tile at a time at huginn-mini shapes, bf16 and int8);
//  - each remaining position against kStreams tiles side by side, one from each part of the
//    share: that many memory streams in flight, which one core needs to approach the memory
//    bandwidth (decode at huginn-mini shapes on this Zen 5 machine: 2 streams +30-45% over one,
//    3 streams +5-15% over 2 and 4 no better than 3);
//  - with more than 4 positions, optionally the columns in equal chunks of at most chunk_blocks
//    blocks, so that a tile's chunk stays in L1 and x's chunk in L2 while all positions pass.
// A kernel provides run<Positions, Tiles>(tiles, first_position, block_begin, block_end, add),
// which adds (add) or writes the outputs of those positions and tiles.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "../../core/tensor.hpp"
#include "../../core/threads.hpp"
#include "packed_weights.hpp"
#include "simd.hpp"

namespace recurrent_depth::cpu {
inline namespace RECURRENT_DEPTH_KERNEL_NAMESPACE {

inline constexpr int kTilePositions = 4;
// The kernels prefetch weights this far ahead of their loads in a tile's stream.
inline constexpr std::size_t kPrefetchBytes = 2048;
inline constexpr int kStreams = 3;
inline constexpr std::size_t kTileGroup = 16;

// Whether a dense layer of `positions` x [rows, cols] is worth the OpenMP team (below, starting
// the threads costs more than they save).
inline bool worth_threads(std::size_t positions, std::size_t rows, std::size_t cols) {
  return positions * rows * cols >= (std::size_t(1) << 18);
}

// The size of the equal chunks that split `count` into as few as hold at most `most` each.
inline std::size_t equal_chunk(std::size_t count, std::size_t most) {
  const std::size_t chunks = std::max<std::size_t>(1, (count + most - 1) / most);
  return (count + chunks - 1) / chunks;
}

// The kernels' last step: y[m0 + m][n] = value(m, j, n), or += when add, for the Positions
// positions and the real rows n of the tiles t (j: the row's index among the tiles' rows,
// i * kTileRows + r); padding rows past `rows` are skipped.
template <int Positions, int Tiles, class Value>
void store_tile_outputs(MatrixView<float> y, const std::size_t (&t)[Tiles], std::size_t rows,
                        std::size_t m0, bool add, Value&& value) {
  for (int i = 0; i < Tiles; ++i) {
    const std::size_t n0 = t[i] * kTileRows, count = std::min(kTileRows, rows - n0);
    for (int m = 0; m < Positions; ++m) {
      float* out = y.row(m0 + m) + n0;
      for (std::size_t r = 0; r < count; ++r) {
        const float v = value(m, i * kTileRows + r, n0 + r);
        out[r] = add ? out[r] + v : v;
      }
    }
  }
}

#if defined(__AVX512F__)
// The kernels' last step where a vector holds one output row's sums for 16 positions: rows[i]
// lane p is row n0 + i at position m0 + p. One 16 x 16 transpose, then for each p < positions
// y[m0 + p][n0 + i] = value(p, words)[i] (or += when add) for the rows i in mask, words being
// position p's 16 sums as they lie in rows (32-bit words).
template <class Value>
void store_transposed_outputs(const __m512i (&rows)[16], std::size_t positions, MatrixView<float> y,
                              std::size_t m0, std::size_t n0, __mmask16 mask, bool add,
                              Value&& value) {
  alignas(64) std::uint8_t by_position[16 * 64];
  store_transposed(rows, by_position);
  // Kept a loop: unrolled, its 16 row addresses take the registers of the kernel around it.
#pragma GCC unroll 1
  for (std::size_t p = 0; p < positions; ++p)
    store_outputs(y.row(m0 + p) + n0, value(p, _mm512_load_si512(by_position + p * 64)), mask, add);
}
#endif

// The lines of blocks [b0, b1) of `tiles` row tiles from `first` (block_bytes bytes per tile
// and block, blocks contiguous in a tile), prefetched into L2 one at a time between a kernel's
// products: a whole burst of prefetches fills the core's line fill buffers and stalls it. A kernel
// spreads them with space_over(steps) once and step() at each of its steps.
template <class Weights>
struct TileLinesPrefetch {
  const Weights* w = nullptr;
  std::size_t first = 0, offset = 0, tile_lines = 0, tiles = 0;
  std::size_t tile = 0, line = 0;        // the next line: line `line` of tile first + tile
  std::size_t every = 1, countdown = 1;  // a line every `every` steps, the next in `countdown`

  TileLinesPrefetch() = default;
  TileLinesPrefetch(const Weights& weights, std::size_t block_bytes, std::size_t first_tile,
                    std::size_t tile_count, std::size_t b0, std::size_t b1)
      : w(&weights),
        first(first_tile),
        offset(b0 * block_bytes),
        tile_lines(((b1 - b0) * block_bytes + 63) / 64),
        tiles(tile_lines > 0 ? tile_count : 0) {}

  // The lines spread evenly over the next `steps` steps, one at the end of every `every` (the
  // first at step 1 instead measured 7% slower in the bf16 dot GEMM on an Intel Xeon).
  void space_over(std::size_t steps) {
    every = std::max<std::size_t>(1, steps / std::max<std::size_t>(1, tiles * tile_lines));
    countdown = every;
  }

  // One step of a kernel: a line every `every` steps (a countdown, not a division: this runs in
  // the kernels' innermost loops).
  void step() {
    if (--countdown == 0) {
      countdown = every;
      next();
    }
  }

  // The next line, now (counters, not a division by tile_lines).
  void next() {
    if (tile >= tiles) return;
    __builtin_prefetch(reinterpret_cast<const char*>(w->tile(first + tile)) + offset + line * 64, 0,
                       2);
    if (++line == tile_lines) {
      line = 0;
      ++tile;
    }
  }
};

template <class Kernel>
void run_tiles(Kernel& kernel, std::size_t positions, std::size_t blocks, std::size_t chunk_blocks,
               std::size_t t0, std::size_t t1, bool accumulate) {
  // Equal chunks of at most chunk_blocks (each chunk costs a reduction per output).
  const std::size_t chunk =
      positions > std::size_t(kTilePositions) ? equal_chunk(blocks, chunk_blocks) : blocks;
  const std::size_t part = (t1 - t0) / kStreams;  // tiles per stream
  for (std::size_t b0 = 0; b0 < blocks; b0 += chunk) {
    const std::size_t b1 = std::min(blocks, b0 + chunk);
    const bool add = accumulate || b0 > 0;
    const std::size_t grouped = positions / kTilePositions * kTilePositions;
    for (std::size_t g = t0; g < t1; g += kTileGroup)
      for (std::size_t m = 0; m < grouped; m += kTilePositions)
        for (std::size_t t = g; t < std::min(t1, g + kTileGroup); ++t)
          kernel.template run<kTilePositions, 1>({t}, m, b0, b1, add);
    for (std::size_t m = grouped; m < positions; ++m) {
      for (std::size_t i = 0; i < part; ++i) {
        std::size_t tiles[kStreams];
        for (int s = 0; s < kStreams; ++s) tiles[s] = t0 + std::size_t(s) * part + i;
        kernel.template run<1, kStreams>(tiles, m, b0, b1, add);
      }
      for (std::size_t t = t0 + kStreams * part; t < t1; ++t)
        kernel.template run<1, 1>({t}, m, b0, b1, add);
    }
  }
}

// Runs the kernel over all tiles on the OpenMP team (when `threaded`), each thread its share.
template <class Kernel>
void run_tiles_on_threads(Kernel& kernel, std::size_t tiles, std::size_t positions,
                          std::size_t blocks, std::size_t chunk_blocks, bool accumulate,
                          bool threaded) {
#pragma omp parallel if (threaded)
  {
    const auto [t0, t1] = thread_share(tiles);
    run_tiles(kernel, positions, blocks, chunk_blocks, t0, t1, accumulate);
  }
}

}  // namespace RECURRENT_DEPTH_KERNEL_NAMESPACE
}  // namespace recurrent_depth::cpu
