// Row-wise kernels of the CPU backend over [positions, features] float32 matrices: RMSNorm (with
// a fused residual add), the SiLU gate, RoPE on adjacent pairs with the q/k bias, scaled rows.
// Rows are independent; threads split rows when there are enough of them.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>

#include "../../core/tensor.hpp"
#include "packed_weights.hpp"
#include "simd.hpp"

namespace recurrent_depth::cpu {
inline namespace RECURRENT_DEPTH_KERNEL_NAMESPACE {

namespace detail {

inline float sum_of_squares(const float* x, std::size_t n) {
  FloatBatch acc(0.0f);
  std::size_t i = 0;
  for (; i + kFloatLanes <= n; i += kFloatLanes) {
    const FloatBatch v = load_floats(x + i);
    acc = xsimd::fma(v, v, acc);
  }
  float sum = xsimd::hadd(acc);
  for (; i < n; ++i) sum += x[i] * x[i];
  return sum;
}

// out = in * scale * weight (elementwise); out may alias in.
inline void scale_by_weight(const float* in, float scale, const float* weight, float* out,
                            std::size_t n) {
  const FloatBatch s(scale);
  std::size_t i = 0;
  for (; i + kFloatLanes <= n; i += kFloatLanes)
    (load_floats(in + i) * s * load_floats(weight + i)).store_unaligned(out + i);
  for (; i < n; ++i) out[i] = in[i] * scale * weight[i];
}

inline bool worth_threading(std::size_t rows, std::size_t cols) {
  return rows * cols >= 32768;
}

}  // namespace detail

// out[r] = in[r] / sqrt(mean(in[r]^2) + eps) * weight; out may alias in.
inline void rms_norm(ConstMatrixView<float> in, std::span<const float> weight, float eps,
                     MatrixView<float> out) {
  const std::ptrdiff_t rows = static_cast<std::ptrdiff_t>(in.rows);
#pragma omp parallel for if (detail::worth_threading(in.rows, in.cols))
  for (std::ptrdiff_t r = 0; r < rows; ++r) {
    const float* x = in.row(r);
    const float mean = detail::sum_of_squares(x, in.cols) / static_cast<float>(in.cols);
    detail::scale_by_weight(x, 1.0f / std::sqrt(mean + eps), weight.data(), out.row(r), in.cols);
  }
}

// x = rms_norm(x + delta): the residual add of a sandwich block followed by its outer norm.
inline void add_rms_norm(MatrixView<float> x, ConstMatrixView<float> delta,
                         std::span<const float> weight, float eps) {
  const std::ptrdiff_t rows = static_cast<std::ptrdiff_t>(x.rows);
#pragma omp parallel for if (detail::worth_threading(x.rows, x.cols))
  for (std::ptrdiff_t r = 0; r < rows; ++r) {
    float* row = x.row(r);
    const float* d = delta.row(r);
    std::size_t i = 0;
    for (; i + kFloatLanes <= x.cols; i += kFloatLanes)
      (load_floats(row + i) + load_floats(d + i)).store_unaligned(row + i);
    for (; i < x.cols; ++i) row[i] += d[i];
    const float mean = detail::sum_of_squares(row, x.cols) / static_cast<float>(x.cols);
    detail::scale_by_weight(row, 1.0f / std::sqrt(mean + eps), weight.data(), row, x.cols);
  }
}

// out = silu(gate) * up, where gate and up are the two halves [gate ; up] of each row of fc.
inline void silu_gate(ConstMatrixView<float> fc, MatrixView<float> out) {
  const std::size_t n = out.cols;
  const std::ptrdiff_t rows = static_cast<std::ptrdiff_t>(fc.rows);
#pragma omp parallel for if (detail::worth_threading(fc.rows, n))
  for (std::ptrdiff_t r = 0; r < rows; ++r) {
    const float* gate = fc.row(r);
    const float* up = gate + n;
    float* y = out.row(r);
    std::size_t i = 0;
    const FloatBatch one(1.0f);
    for (; i + kFloatLanes <= n; i += kFloatLanes) {
      const FloatBatch g = load_floats(gate + i);
      (g / (one + xsimd::exp(-g)) * load_floats(up + i)).store_unaligned(y + i);
    }
    for (; i < n; ++i) y[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
  }
}

// RoPE on adjacent pairs after adding a per-head bias: for each row r (position first + r) and
// head h, v = x[h] + bias[h]; (v[2i], v[2i+1]) is rotated by the angle of position and pair i.
// cos_sin holds [positions, head_dim] interleaved (cos, sin) pairs. bias may be empty.
inline void rope_adjacent_pairs(MatrixView<float> x, std::size_t heads, std::size_t head_dim,
                                std::span<const float> bias, ConstMatrixView<float> cos_sin,
                                std::size_t first_position) {
  const auto rows = static_cast<std::ptrdiff_t>(x.rows);
#pragma omp parallel for if (detail::worth_threading(x.rows, x.cols))
  for (std::ptrdiff_t row = 0; row < rows; ++row) {
    const auto r = static_cast<std::size_t>(row);
    const float* angles = cos_sin.row(first_position + r);
    for (std::size_t h = 0; h < heads; ++h) {
      float* v = x.row(r) + h * head_dim;
      const float* b = bias.empty() ? nullptr : bias.data() + h * head_dim;
      for (std::size_t i = 0; i < head_dim; i += 2) {
        const float v0 = b ? v[i] + b[i] : v[i];
        const float v1 = b ? v[i + 1] + b[i + 1] : v[i + 1];
        const float c = angles[i], s = angles[i + 1];
        v[i] = v0 * c - v1 * s;
        v[i + 1] = v1 * c + v0 * s;
      }
    }
  }
}

// out = a + b; out may alias a or b.
inline void add(ConstMatrixView<float> a, ConstMatrixView<float> b, MatrixView<float> out) {
  for (std::size_t r = 0; r < out.rows; ++r) {
    std::size_t i = 0;
    for (; i + kFloatLanes <= out.cols; i += kFloatLanes)
      (load_floats(a.row(r) + i) + load_floats(b.row(r) + i)).store_unaligned(out.row(r) + i);
    for (; i < out.cols; ++i) out(r, i) = a(r, i) + b(r, i);
  }
}

}  // namespace RECURRENT_DEPTH_KERNEL_NAMESPACE
}  // namespace recurrent_depth::cpu

namespace recurrent_depth::cpu {

// Plain copies and gathers: no SIMD of their own, the same for every kernel variant.

inline void copy(ConstMatrixView<float> in, MatrixView<float> out) {
  for (std::size_t r = 0; r < out.rows; ++r) std::copy(in.row(r), in.row(r) + in.cols, out.row(r));
}

// out[t] = table[ids[t]] * scale, widened to float (times the row's own scale for int8, the
// groups' for q4); table: PackedWeights or PackedQ4Weights.
template <class Packed>
void gather_rows(const Packed& table, std::span<const std::int32_t> ids, float scale,
                 MatrixView<float> out) {
  for (std::size_t t = 0; t < ids.size(); ++t)
    table.read_row(static_cast<std::size_t>(ids[t]), scale, out.row_span(t));
}

}  // namespace recurrent_depth::cpu
