// Plain scalar twins of the CPU kernels (double accumulation, no SIMD, no threads). They define
// what each fast kernel computes; the tests compare every kernel against its twin.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <type_traits>
#include <vector>

#include "../../core/dtype.hpp"
#include "../../core/tensor.hpp"
#include "linear_int8.hpp"
#include "packed_q4.hpp"
#include "simd.hpp"

namespace recurrent_depth::cpu::scalar {

template <class W>
void linear(ConstMatrixView<float> x, ConstMatrixView<W> w, MatrixView<float> y,
            bool accumulate = false) {
  for (std::size_t m = 0; m < x.rows; ++m)
    for (std::size_t n = 0; n < w.rows; ++n) {
      double sum = 0.0;
      for (std::size_t k = 0; k < x.cols; ++k) sum += double(x(m, k)) * load_scalar(&w(n, k));
      y(m, n) = static_cast<float>(accumulate ? y(m, n) + sum : sum);
    }
}

// Position m of x quantised as the int8 and q4 kernels do (linear_int8.hpp), into xq (signed, as
// integers); returns the step s_m.
inline float quantise_position(ConstMatrixView<float> x, std::size_t m,
                               std::vector<std::int64_t>& xq) {
  const float step = activation_scale(x.row(m), x.cols);
  for (std::size_t k = 0; k < x.cols; ++k)
    xq[k] = std::int64_t(quantise_activation(x(m, k), step)) - 128;
  return step;
}

// int8 weights q [N, K] with a scale per row, x quantised per position (linear_int8.hpp):
// y = float(sum_k round(x * (1/s_m)) q[n][k]) * (s_m * scale[n]).
inline void linear_int8(ConstMatrixView<float> x, ConstMatrixView<std::int8_t> q,
                        std::span<const float> row_scales, MatrixView<float> y,
                        bool accumulate = false) {
  std::vector<std::int64_t> xq(x.cols);
  for (std::size_t m = 0; m < x.rows; ++m) {
    const float step = quantise_position(x, m, xq);
    for (std::size_t n = 0; n < q.rows; ++n) {
      std::int64_t sum = 0;
      for (std::size_t k = 0; k < x.cols; ++k) sum += xq[k] * q(n, k);
      const float value = float(sum) * (step * row_scales[n]);
      y(m, n) = accumulate ? y(m, n) + value : value;
    }
  }
}

// 4-bit weights q [N, K] (0..15) with a scale per row and group of kQ4Group columns,
// group_scales [N, ceil(K / kQ4Group)], x quantised per position as for int8 (linear_q4.hpp):
// y = s_m sum_g scale[n][g] sum_{k in g} round(x * (1/s_m)) (q[n][k] - 8). When term_sizes is
// given it receives s_m sum_g |scale[n][g]| sum_{k in g} |xq[k]| (q[n][k] + 8) per output: a bound
// on the sizes of the partial sums (times the scales) that a kernel rounds to float, however it
// splits a group's integer among its lanes.
inline void linear_q4(ConstMatrixView<float> x, ConstMatrixView<std::uint8_t> q,
                      ConstMatrixView<float> group_scales, MatrixView<float> y,
                      bool accumulate = false, MatrixView<double>* term_sizes = nullptr) {
  std::vector<std::int64_t> xq(x.cols);
  for (std::size_t m = 0; m < x.rows; ++m) {
    const float step = quantise_position(x, m, xq);
    for (std::size_t n = 0; n < q.rows; ++n) {
      double sum = 0.0, size = 0.0;
      for (std::size_t k0 = 0; k0 < x.cols; k0 += kQ4Group) {
        std::int64_t group = 0, group_size = 0;
        for (std::size_t k = k0; k < std::min(x.cols, k0 + kQ4Group); ++k) {
          group += xq[k] * (std::int64_t(q(n, k)) - 8);
          group_size += std::abs(xq[k]) * (std::int64_t(q(n, k)) + 8);
        }
        const double scale = group_scales(n, k0 / kQ4Group);
        sum += scale * double(group);
        size += std::abs(scale) * double(group_size);
      }
      const auto value = static_cast<float>(double(step) * sum);
      y(m, n) = accumulate ? y(m, n) + value : value;
      if (term_sizes) (*term_sizes)(m, n) = double(step) * size;
    }
  }
}

inline void rms_norm(ConstMatrixView<float> in, std::span<const float> weight, float eps,
                     MatrixView<float> out) {
  for (std::size_t r = 0; r < in.rows; ++r) {
    double squares = 0.0;
    for (std::size_t i = 0; i < in.cols; ++i) squares += double(in(r, i)) * in(r, i);
    const double scale = 1.0 / std::sqrt(squares / double(in.cols) + eps);
    for (std::size_t i = 0; i < in.cols; ++i)
      out(r, i) = static_cast<float>(in(r, i) * scale * weight[i]);
  }
}

inline void add_rms_norm(MatrixView<float> x, ConstMatrixView<float> delta,
                         std::span<const float> weight, float eps) {
  for (std::size_t r = 0; r < x.rows; ++r)
    for (std::size_t i = 0; i < x.cols; ++i) x(r, i) += delta(r, i);
  rms_norm(x, weight, eps, x);
}

inline void silu_gate(ConstMatrixView<float> fc, MatrixView<float> out) {
  for (std::size_t r = 0; r < fc.rows; ++r)
    for (std::size_t i = 0; i < out.cols; ++i) {
      const double g = fc(r, i);
      out(r, i) = static_cast<float>(g / (1.0 + std::exp(-g)) * fc(r, out.cols + i));
    }
}

// Keys and values: views of float or bf16 (read widened to double).
template <class Keys, class Values>
void causal_attention(ConstMatrixView<float> q, const Keys& keys, const Values& values,
                      std::size_t heads, std::size_t head_dim, std::size_t first_position,
                      MatrixView<float> out, std::span<const std::int32_t> key_positions = {}) {
  const double scale = 1.0 / std::sqrt(double(head_dim));
  for (std::size_t t = 0; t < q.rows; ++t)
    for (std::size_t h = 0; h < heads; ++h) {
      std::vector<double> scores;
      std::vector<std::size_t> visible;
      for (std::size_t j = 0; j < keys.rows; ++j) {
        const std::size_t key_position = key_positions.empty() ? j : std::size_t(key_positions[j]);
        if (key_position > first_position + t) continue;
        double s = 0.0;
        for (std::size_t i = 0; i < head_dim; ++i)
          s += double(q(t, h * head_dim + i)) * double(to_float(keys(j, h * head_dim + i)));
        scores.push_back(s * scale);
        visible.push_back(j);
      }
      const double top = scores.empty() ? 0.0 : *std::max_element(scores.begin(), scores.end());
      double total = 0.0;
      for (double& s : scores) total += (s = std::exp(s - top));
      for (std::size_t i = 0; i < head_dim; ++i) {
        double y = 0.0;
        for (std::size_t k = 0; k < visible.size(); ++k)
          y += scores[k] / total * double(to_float(values(visible[k], h * head_dim + i)));
        out(t, h * head_dim + i) = static_cast<float>(y);
      }
    }
}

}  // namespace recurrent_depth::cpu::scalar
