// Dense layers y = x W^T on the CPU: x [positions, in] float32, W [out, in] packed in row tiles
// (PackedWeights: float, bf16, or int8 with a scale per row), y [positions, out] float32.
// One kernel serves decode (one position) and prefill (many); tile_schedule.hpp says how the
// tiles are walked (columns in chunks of at most 32 KB of tile when more than 4 positions share
// them); from kGemmMinPositions (32) positions on, float and bf16 weights go to the register-tiled
// GEMM of linear_gemm.hpp instead. Float and bf16 weights are widened in registers and meet float
// x; int8 weights meet x quantised to 8 bits (linear_int8.hpp). With AMX, bf16 weights meet x split
// in two bf16 parts on the tiles from kAmxMinPositionsBf16 (8) positions on (linear_amx.hpp); the
// x86_64_v4_bf16 table's prompts round x to bf16 for vdpbf16ps (linear_gemm_bf16_dot.hpp).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "../../core/error.hpp"
#include "../../core/tensor.hpp"
#include "linear_amx.hpp"
#include "linear_gemm.hpp"
#include "linear_gemm_bf16_dot.hpp"
#include "linear_int8.hpp"
#include "packed_weights.hpp"
#include "simd.hpp"
#include "tile_schedule.hpp"

namespace recurrent_depth::cpu {
inline namespace RECURRENT_DEPTH_KERNEL_NAMESPACE {

namespace detail {

// Widens one row's 64-byte block of weights into kBatches float batches; x is read in the
// matching layout (prepare_x). For bf16 on AVX-512 the block is widened by a shift (even
// elements) and a mask (odd elements) of one load, and x comes de-interleaved to match.
template <class W, class A = Arch>
struct BlockLoader {
  static constexpr std::size_t kBatches = PackedWeights<W>::kBlock / kFloatLanes;
  static constexpr bool kDeinterleavedX = false;
  // Float batch j of the block at p.
  static FloatBatch load(const W* p, std::size_t j) { return load_floats(p + j * kFloatLanes); }
};

#if defined(__AVX512F__)
template <class A>
requires std::is_base_of_v<xsimd::avx512f, A>
struct BlockLoader<bf16, A> {
  static constexpr std::size_t kBatches = 2;
  static constexpr bool kDeinterleavedX = true;
  static FloatBatch load(const bf16* p, std::size_t j) {
    const __m512i v = _mm512_load_si512(p);
    return FloatBatch(_mm512_castsi512_ps(j == 0 ? _mm512_slli_epi32(v, 16)
                                                 : _mm512_and_si512(v, _mm512_set1_epi32(-65536))));
  }
};
#endif

// Lane i of the result: the sum of the lanes of v[i], for kFloatLanes batches v. A transposing
// reduction: on AVX-512, 45 instructions where 16 horizontal sums take about 130 (own code with
// zero-masked shuffles: GCC 12 warns about the undefined pass-through of the plain ones, which
// xsimd::haddp uses there).
inline FloatBatch sum_lanes_of_batches(const FloatBatch* v) {
#if defined(__AVX512F__)
  if constexpr (std::is_base_of_v<xsimd::avx512f, Arch>) {
    constexpr __mmask16 all = 0xFFFF;
    constexpr __mmask8 all64 = 0xFF;
    // Pairs (a, b): per 128-bit quarter [a0 + a2, b0 + b2, a1 + a3, b1 + b3].
    __m512 pairs[8];
    RECURRENT_DEPTH_UNROLL
    for (int k = 0; k < 8; ++k)
      pairs[k] = _mm512_add_ps(_mm512_maskz_unpacklo_ps(all, v[2 * k], v[2 * k + 1]),
                               _mm512_maskz_unpackhi_ps(all, v[2 * k], v[2 * k + 1]));
    // Fours: per quarter, the partial sums of v[4k], ..., v[4k + 3] over that quarter's lanes.
    __m512 fours[4];
    RECURRENT_DEPTH_UNROLL
    for (int k = 0; k < 4; ++k) {
      const __m512d a = _mm512_castps_pd(pairs[2 * k]), b = _mm512_castps_pd(pairs[2 * k + 1]);
      fours[k] = _mm512_add_ps(_mm512_castpd_ps(_mm512_maskz_unpacklo_pd(all64, a, b)),
                               _mm512_castpd_ps(_mm512_maskz_unpackhi_pd(all64, a, b)));
    }
    // Quarters: [a.q0 + a.q2, a.q1 + a.q3, b.q0 + b.q2, b.q1 + b.q3], then quarter j = fours[j].
    const auto fold = [](__m512 a, __m512 b) {
      return _mm512_add_ps(_mm512_maskz_shuffle_f32x4(all, a, b, 0x44),
                           _mm512_maskz_shuffle_f32x4(all, a, b, 0xEE));
    };
    const __m512 low = fold(fours[0], fours[1]), high = fold(fours[2], fours[3]);
    return FloatBatch(_mm512_add_ps(_mm512_maskz_shuffle_f32x4(all, low, high, 0x88),
                                    _mm512_maskz_shuffle_f32x4(all, low, high, 0xDD)));
  } else
#endif
  {
    return xsimd::haddp(v);
  }
}

// x [M, K] copied into `out` [M, padded] with zeros after K, each 32-element block
// de-interleaved (16 even elements, then 16 odd ones) when the loader expects it.
template <class W>
void prepare_x(ConstMatrixView<float> x, std::size_t padded, Matrix<float>& out) {
  out.resize(x.rows, padded);
  for (std::size_t m = 0; m < x.rows; ++m) {
    float* row = out.row(m);
    std::copy_n(x.row(m), x.cols, row);
    std::fill(row + x.cols, row + padded, 0.0f);
    if constexpr (BlockLoader<W>::kDeinterleavedX) {
      float block[32];
      for (std::size_t k = 0; k < padded; k += 32) {
        for (std::size_t i = 0; i < 16; ++i) {
          block[i] = row[k + 2 * i];
          block[16 + i] = row[k + 2 * i + 1];
        }
        std::copy_n(block, 32, row + k);
      }
    }
  }
}

// sums[m][i * kTileRows + r] = sum over blocks [b0, b1) of x[m] . w[r] for the rows r of
// Tiles tiles read side by side and Positions positions; xb[m] is x[m] prepared by prepare_x.
template <int Positions, int Tiles, class W>
inline void tile_dot(const float* const* xb, const W* const* tiles, std::size_t b0, std::size_t b1,
                     float (&sums)[Positions][Tiles * kTileRows]) {
  using Loader = BlockLoader<W>;
  constexpr std::size_t kBlock = PackedWeights<W>::kBlock, kBatches = Loader::kBatches;
  constexpr std::size_t kRows = Tiles * kTileRows;
  FloatBatch acc[Positions][kRows];
  RECURRENT_DEPTH_UNROLL
  for (int m = 0; m < Positions; ++m) {
    RECURRENT_DEPTH_UNROLL
    for (std::size_t r = 0; r < kRows; ++r) acc[m][r] = FloatBatch(0.0f);
  }
  for (std::size_t b = b0; b < b1; ++b) {
    RECURRENT_DEPTH_UNROLL
    for (int i = 0; i < Tiles; ++i) {
      for (std::size_t line = 0; line < kTileRows * 64; line += 64)
        __builtin_prefetch(reinterpret_cast<const char*>(tiles[i] + b * kTileRows * kBlock) +
                           kPrefetchBytes + line);
    }
    // One float batch of the block at a time: x's batches of all positions in registers, each
    // weight batch loaded once and met by all positions (every load feeds Positions FMAs).
    for (std::size_t j = 0; j < kBatches; ++j) {
      FloatBatch xv[Positions];
      RECURRENT_DEPTH_UNROLL
      for (int m = 0; m < Positions; ++m)
        xv[m] = FloatBatch::load_aligned(xb[m] + b * kBlock + j * kFloatLanes);
      RECURRENT_DEPTH_UNROLL
      for (std::size_t r = 0; r < kRows; ++r) {
        const W* row = tiles[r / kTileRows] + (b * kTileRows + r % kTileRows) * kBlock;
        const FloatBatch w = Loader::load(row, j);
        RECURRENT_DEPTH_UNROLL
        for (int m = 0; m < Positions; ++m) acc[m][r] = xsimd::fma(xv[m], w, acc[m][r]);
      }
    }
  }
  // The horizontal sums, kFloatLanes accumulators at a time when they come in whole batches.
  constexpr std::size_t kSums = Positions * kRows;
  if constexpr (kSums % kFloatLanes == 0) {
    RECURRENT_DEPTH_UNROLL
    for (std::size_t c = 0; c < kSums; c += kFloatLanes)
      sum_lanes_of_batches(&acc[0][0] + c).store_unaligned(&sums[0][0] + c);
  } else {
    RECURRENT_DEPTH_UNROLL
    for (int m = 0; m < Positions; ++m) {
      RECURRENT_DEPTH_UNROLL
      for (std::size_t r = 0; r < kRows; ++r) sums[m][r] = xsimd::hadd(acc[m][r]);
    }
  }
}

// The float and bf16 kernel for run_tiles: prepared x against packed weights into y.
template <class W>
struct FloatTileKernel {
  const Matrix<float>& xb;
  const PackedWeights<W>& w;
  MatrixView<float> y;

  template <int Positions, int Tiles>
  void run(const std::size_t (&t)[Tiles], std::size_t m0, std::size_t b0, std::size_t b1,
           bool add) const {
    const float* x_rows[Positions];
    for (int m = 0; m < Positions; ++m) x_rows[m] = xb.row(m0 + m);
    const W* tiles[Tiles];
    for (int i = 0; i < Tiles; ++i) tiles[i] = w.tile(t[i]);
    float sums[Positions][Tiles * kTileRows];
    tile_dot<Positions, Tiles>(x_rows, tiles, b0, b1, sums);
    store_tile_outputs<Positions>(y, t, w.rows(), m0, add,
                                  [&](int m, std::size_t j, std::size_t) { return sums[m][j]; });
  }
};

}  // namespace detail

// y = x W^T, or y += x W^T when accumulate. Shapes: x [M, K], w [N, K], y [M, N].
template <class W>
void linear(ConstMatrixView<float> x, const PackedWeights<W>& w, MatrixView<float> y,
            bool accumulate = false) {
  require(x.cols == w.cols() && y.rows == x.rows && y.cols == w.rows(), "linear: shapes x [",
          x.rows, ", ", x.cols, "], w [", w.rows(), ", ", w.cols(), "], y [", y.rows, ", ", y.cols,
          "] do not match");
  if constexpr (PackedWeights<W>::kScaled) {
    linear_int8(x, w, y, accumulate);
  } else {
    const bool threaded = worth_threads(x.rows, w.rows(), w.cols());
#if defined(__AMX_TILE__) && defined(__AMX_BF16__)
    if constexpr (std::is_same_v<W, bf16>)
      if (x.rows >= kAmxMinPositionsBf16) return linear_bf16_amx(x, w, y, accumulate, threaded);
#endif
#if defined(RECURRENT_DEPTH_BF16_DOT_PROMPTS)
    if constexpr (std::is_same_v<W, bf16>)
      if (x.rows >= kGemmMinPositions) return linear_gemm_bf16_dot(x, w, y, accumulate, threaded);
#endif
    if (x.rows >= kGemmMinPositions) return linear_gemm(x, w, y, accumulate, threaded);
    thread_local Matrix<float> prepared;
    Matrix<float>& xb = prepared;  // the caller's copy of x in the loaders' layout, shared
    detail::prepare_x<W>(x, w.padded_cols(), xb);
    detail::FloatTileKernel<W> kernel{xb, w, y};
    constexpr std::size_t kChunkBlocks = 32768 / (kTileRows * 64);  // 32 KB of tile
    run_tiles_on_threads(kernel, w.tile_count(), x.rows, w.blocks(), kChunkBlocks, accumulate,
                         threaded);
  }
}

}  // namespace RECURRENT_DEPTH_KERNEL_NAMESPACE
}  // namespace recurrent_depth::cpu
