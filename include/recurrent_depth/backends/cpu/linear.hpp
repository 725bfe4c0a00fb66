// Dense layers y = x W^T on the CPU: x [positions, in] float32, W [out, in] stored as float, bf16
// or int8 with a float scale per row (PackedWeights), y [positions, out] float32. One kernel
// serves decode (one position) and prefill (many): a tile of 4 weight rows is loaded once per 4
// positions and kept in cache while all positions stream past it; threads split the weight rows.
// Weights are widened to float in registers; int8 rows are scaled once, after the dot product.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <type_traits>
#include <vector>

#include "../../core/error.hpp"
#include "../../core/tensor.hpp"
#include "simd.hpp"

namespace recurrent_depth::cpu {

// A weight matrix [out, in] in storage type W, rows 64-byte aligned; for int8 also the scale of
// each row (w = scale * stored), symmetric: scale = max |w| / 127.
template <class W>
struct PackedWeights {
  static constexpr bool kScaled = std::is_same_v<W, std::int8_t>;
  Matrix<W> values;
  std::vector<float> row_scales;  // int8 only

  std::size_t rows() const { return values.rows(); }
  std::size_t cols() const { return values.cols(); }
  std::size_t bytes() const { return rows() * cols() * sizeof(W) + row_scales.size() * sizeof(float); }
  ConstMatrixView<W> view() const { return values.view(); }
  std::span<const float> scales() const { return row_scales; }

  // From row-major float or bf16 values [rows, cols].
  template <class Source>
  static PackedWeights from_rows(std::span<const Source> source, std::size_t rows, std::size_t cols) {
    PackedWeights packed;
    packed.values.resize(rows, cols);
    for (std::size_t r = 0; r < rows; ++r) {
      const std::span<const Source> row = source.subspan(r * cols, cols);
      if constexpr (kScaled) packed.row_scales.push_back(quantise_row(row, packed.values.row(r)));
      else
        for (std::size_t c = 0; c < cols; ++c) packed.values(r, c) = convert(row[c]);
    }
    return packed;
  }

 private:
  static W convert(float v) {
    if constexpr (std::is_same_v<W, float>) return v;
    else return to_bf16(v);
  }
  static W convert(bf16 v) {
    if constexpr (std::is_same_v<W, float>) return to_float(v);
    else return v;
  }
  static float widen(float v) { return v; }
  static float widen(bf16 v) { return to_float(v); }

  // Rounds a row to the nearest multiple of its scale; returns the scale (1 for a zero row).
  template <class Source>
  static float quantise_row(std::span<const Source> row, std::int8_t* out) {
    float largest = 0.0f;
    for (Source v : row) largest = std::max(largest, std::abs(widen(v)));
    const float scale = largest > 0.0f ? largest / 127.0f : 1.0f;
    for (std::size_t c = 0; c < row.size(); ++c)
      out[c] = static_cast<std::int8_t>(std::clamp(std::nearbyint(widen(row[c]) / scale), -127.0f, 127.0f));
    return scale;
  }
};

namespace detail {

// out[m][n] (+)= sum_k x[m][k] * w[n][k] for Positions x Rows outputs held in registers.
template <int Positions, int Rows, class W>
inline void linear_tile(const float* const* x, const W* const* w, const float* scales,
                        std::size_t k_count, float* const* out, std::size_t out_step,
                        bool accumulate) {
  FloatBatch acc[Positions][Rows];
  for (int m = 0; m < Positions; ++m)
    for (int n = 0; n < Rows; ++n) acc[m][n] = FloatBatch(0.0f);
  std::size_t k = 0;
  for (; k + kFloatLanes <= k_count; k += kFloatLanes) {
    FloatBatch wv[Rows];
    for (int n = 0; n < Rows; ++n) wv[n] = load_floats(w[n] + k);
    for (int m = 0; m < Positions; ++m) {
      const FloatBatch xv = load_floats(x[m] + k);
      for (int n = 0; n < Rows; ++n) acc[m][n] = xsimd::fma(xv, wv[n], acc[m][n]);
    }
  }
  for (int m = 0; m < Positions; ++m) {
    for (int n = 0; n < Rows; ++n) {
      float sum = xsimd::hadd(acc[m][n]);
      for (std::size_t kk = k; kk < k_count; ++kk) sum += x[m][kk] * load_scalar(w[n] + kk);
      if (scales) sum *= scales[n];
      float& target = out[m][n * out_step];
      target = accumulate ? target + sum : sum;
    }
  }
}

template <int Rows, class W>
inline void linear_row_tile(ConstMatrixView<float> x, ConstMatrixView<W> w,
                            std::span<const float> row_scales, std::size_t n0, MatrixView<float> y,
                            bool accumulate) {
  const float* scales = row_scales.empty() ? nullptr : row_scales.data() + n0;
  const W* w_rows[Rows];
  for (int n = 0; n < Rows; ++n) w_rows[n] = w.row(n0 + n);
  std::size_t m = 0;
  constexpr int kPositions = 4;
  for (; m + kPositions <= x.rows; m += kPositions) {
    const float* x_rows[kPositions];
    float* y_rows[kPositions];
    for (int i = 0; i < kPositions; ++i) {
      x_rows[i] = x.row(m + i);
      y_rows[i] = y.row(m + i) + n0;
    }
    linear_tile<kPositions, Rows>(x_rows, w_rows, scales, x.cols, y_rows, 1, accumulate);
  }
  for (; m < x.rows; ++m) {
    const float* x_row = x.row(m);
    float* y_row = y.row(m) + n0;
    linear_tile<1, Rows>(&x_row, w_rows, scales, x.cols, &y_row, 1, accumulate);
  }
}

}  // namespace detail

// y = x W^T, or y += x W^T when accumulate. Shapes: x [M, K], w [N, K], y [M, N]; row_scales
// [N] multiplies each output column (int8 weights) or is empty.
template <class W>
void linear(ConstMatrixView<float> x, ConstMatrixView<W> w, MatrixView<float> y,
            bool accumulate = false, std::span<const float> row_scales = {}) {
  require(x.cols == w.cols && y.rows == x.rows && y.cols == w.rows, "linear: shapes x [", x.rows,
          ", ", x.cols, "], w [", w.rows, ", ", w.cols, "], y [", y.rows, ", ", y.cols,
          "] do not match");
  require(row_scales.empty() || row_scales.size() == w.rows, "linear: ", row_scales.size(),
          " row scales for ", w.rows, " weight rows");
  constexpr std::size_t kRows = 4;
  const std::ptrdiff_t tiles = static_cast<std::ptrdiff_t>(w.rows / kRows);
  const bool threaded = x.rows * w.rows * w.cols >= (1u << 18);  // below: threads cost more
#pragma omp parallel for schedule(static) if (threaded)
  for (std::ptrdiff_t t = 0; t < tiles; ++t)
    detail::linear_row_tile<kRows>(x, w, row_scales, static_cast<std::size_t>(t) * kRows, y,
                                   accumulate);
  for (std::size_t n = static_cast<std::size_t>(tiles) * kRows; n < w.rows; ++n)
    detail::linear_row_tile<1>(x, w, row_scales, n, y, accumulate);
}

template <class W>
void linear(ConstMatrixView<float> x, const PackedWeights<W>& w, MatrixView<float> y,
            bool accumulate = false) {
  linear(x, w.view(), y, accumulate, w.scales());
}

}  // namespace recurrent_depth::cpu
