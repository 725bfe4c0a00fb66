// Tolerances and cases of the kernel tests that more than one backend's tests use: the CPU kernel
// tests (tests/test_kernels_*.cpp) and the HIP kernel tests (tests/hip/test_hip_kernels.cpp)
// compare their kernels with the same scalar twins within the same bounds. Method: see
// kernel_test_support.hpp.
#pragma once

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "kernel_test_support.hpp"
#include "recurrent_depth/backends/cpu/packed_q4.hpp"
#include "recurrent_depth/backends/cpu/packed_weights.hpp"
#include "recurrent_depth/backends/cpu/scalar_reference.hpp"

namespace recurrent_depth::kernel_test {

// ---------------------------------------------------------------------------------------------
// rms_norm, add_rms_norm, silu_gate

// Outputs are products x * s * w: their relative error is that of the sum of squares (at most
// about sqrt(n) roundings for random data, halved by the square root) plus a few roundings.
inline double norm_error_ratio(ConstMatrixView<float> reference, ConstMatrixView<float> result) {
  const double relative = (2.0 * std::sqrt(double(reference.cols)) + 8.0) * kEps;
  double worst = 0.0;
  for (std::size_t r = 0; r < reference.rows; ++r)
    for (std::size_t c = 0; c < reference.cols; ++c)
      worst = std::max(worst, ratio(std::abs(double(result(r, c)) - reference(r, c)),
                                    relative * std::abs(double(reference(r, c))) + FLT_MIN));
  return worst;
}

// silu(g) * u: the exp, the division and the products, a few ulps each.
inline double silu_error_ratio(ConstMatrixView<float> reference, ConstMatrixView<float> result) {
  double worst = 0.0;
  for (std::size_t r = 0; r < reference.rows; ++r)
    for (std::size_t c = 0; c < reference.cols; ++c)
      worst = std::max(worst, ratio(std::abs(double(result(r, c)) - reference(r, c)),
                                    8.0 * kEps * std::abs(double(reference(r, c))) + FLT_MIN));
  return worst;
}

// The input [rows, 2n] of silu_gate: gates over both tails of the sigmoid, then the up halves.
// (Strided's view stays valid when it is moved: it points into the moved vector's storage.)
inline Strided silu_input(std::size_t rows, std::size_t n, Rng& rng) {
  Strided fc(rows, 2 * n, 1, 3);
  for (std::size_t r = 0; r < rows; ++r)
    for (std::size_t i = 0; i < n; ++i) {
      fc.view(r, i) = nonzero(rng, 0.05, 8.0);
      fc.view(r, n + i) = nonzero(rng, 0.25, 2.0);
    }
  return fc;
}

// add and copy, exact, on every kColumns width: add(a, b, out) writes a + b into out, copy(in, out)
// copies, add_in_place(a, b) adds b to a (a backend's kernels on Strided host matrices).
template <class Add, class Copy, class AddInPlace>
void check_add_and_copy(Rng& rng, Add&& add, Copy&& copy, AddInPlace&& add_in_place) {
  for (std::size_t n : kColumns) {
    Strided a(3, n, 1, 1), b(3, n, 1, 2), sum(3, n, 1, 3), copied(3, n, 1, 1);
    a.randomize(rng);
    b.randomize(rng);
    add(a, b, sum);
    copy(a, copied);
    REQUIRE(sum.guards_intact());
    REQUIRE(copied.guards_intact());
    for (std::size_t r = 0; r < 3; ++r)
      for (std::size_t c = 0; c < n; ++c) {
        REQUIRE(sum.view(r, c) == a.view(r, c) + b.view(r, c));
        REQUIRE(copied.view(r, c) == a.view(r, c));
      }
    add_in_place(a, b);
    for (std::size_t r = 0; r < 3; ++r)
      for (std::size_t c = 0; c < n; ++c) REQUIRE(a.view(r, c) == sum.view(r, c));
  }
}

// ---------------------------------------------------------------------------------------------
// int8 weights

using Int8Weights = cpu::PackedWeights<std::int8_t>;

inline Int8Weights random_int8(std::size_t rows, std::size_t cols, Rng& rng) {
  const std::vector<float> source = nonzero_vector(rows * cols, rng, 0.05, 2.0);
  return Int8Weights::from_rows(std::span<const float>(source), rows, cols);
}

// The stored values of packed int8 weights as a row-major matrix (for the scalar twins).
inline Matrix<std::int8_t> unpacked(const Int8Weights& w) {
  Matrix<std::int8_t> rows(w.rows(), w.cols());
  for (std::size_t r = 0; r < w.rows(); ++r)
    for (std::size_t c = 0; c < w.cols(); ++c) rows(r, c) = w.value(r, c);
  return rows;
}

// Worst ratio of |result - reference| to 2 eps (|reference| + |initial|): the kernel and its twin
// compute the same integers and round the same final product, so only the order of the last
// float operations may differ.
inline double int8_error_ratio(const std::vector<float>& initial, ConstMatrixView<float> reference,
                               ConstMatrixView<float> result) {
  double worst = 0.0;
  for (std::size_t m = 0; m < reference.rows; ++m)
    for (std::size_t n = 0; n < reference.cols; ++n) {
      const double start = initial.empty() ? 0.0 : initial[m * reference.cols + n];
      const double bound = 2 * kEps * (std::abs(double(reference(m, n))) + std::abs(start));
      worst = std::max(worst, ratio(std::abs(double(result(m, n)) - reference(m, n)), bound));
    }
  return worst;
}

// ---------------------------------------------------------------------------------------------
// q4 weights

using Q4Weights = cpu::PackedQ4Weights;

inline Q4Weights random_q4(std::size_t rows, std::size_t cols, Rng& rng) {
  const std::vector<float> source = nonzero_vector(rows * cols, rng, 0.05, 2.0);
  return Q4Weights::from_rows(std::span<const float>(source), rows, cols);
}

// The stored 4-bit values [rows, cols] and group scales [rows, groups] of packed q4 weights, for
// the scalar twin.
struct UnpackedQ4 {
  Matrix<std::uint8_t> q;
  Matrix<float> scales;
  Matrix<float> dequantised;  // scale (q - 8)

  explicit UnpackedQ4(const Q4Weights& w)
      : q(w.rows(), w.cols()),
        scales(w.rows(), (w.cols() + cpu::kQ4Group - 1) / cpu::kQ4Group),
        dequantised(w.rows(), w.cols()) {
    for (std::size_t r = 0; r < w.rows(); ++r) {
      for (std::size_t g = 0; g < scales.cols(); ++g) scales(r, g) = w.scale(r, g);
      for (std::size_t c = 0; c < w.cols(); ++c) {
        q(r, c) = w.value(r, c);
        dequantised(r, c) = scales(r, c / cpu::kQ4Group) * float(int(q(r, c)) - 8);
      }
    }
  }
};

// Worst ratio of |result - reference| to (groups + 8) eps size + eps (|reference| + |initial|):
// the kernel and its twin compute the same integers; the kernel rounds each lane's part of a
// group times its scale and sums them in float (at most `groups` terms per lane, then the
// horizontal sums), size bounding those parts (scalar::linear_q4's term_sizes).
inline double q4_error_ratio(std::size_t groups, const std::vector<float>& initial,
                             ConstMatrixView<double> sizes, ConstMatrixView<float> reference,
                             ConstMatrixView<float> result) {
  double worst = 0.0;
  for (std::size_t m = 0; m < reference.rows; ++m)
    for (std::size_t n = 0; n < reference.cols; ++n) {
      const double start = initial.empty() ? 0.0 : initial[m * reference.cols + n];
      const double bound = double(groups + 8) * kEps * sizes(m, n) +
                           kEps * (std::abs(double(reference(m, n))) + std::abs(start));
      worst = std::max(worst, ratio(std::abs(double(result(m, n)) - reference(m, n)), bound));
    }
  return worst;
}

// One product with q4 weights on fresh random data, run(x, w, y, accumulate) by the kernel under
// test, against scalar::linear_q4 within q4_error_ratio's bound.
template <class Run>
void check_linear_q4_case(std::size_t M, std::size_t N, std::size_t K, bool accumulate, Rng& rng,
                          Run&& run) {
  Strided x(M, K);
  x.randomize(rng, 0.01, 3.0);
  const Q4Weights w = random_q4(N, K, rng);
  const UnpackedQ4 u(w);
  Strided fast(M, N, 1, 2), reference(M, N, 0, 0);
  Matrix<double> sizes(M, N);
  MatrixView<double> size_view = sizes.view();
  const std::vector<float> initial = start_outputs(fast, reference, accumulate, rng);
  run(x, w, fast, accumulate);
  cpu::scalar::linear_q4(x.cview(), u.q.view(), u.scales.view(), reference.view, accumulate,
                         &size_view);
  INFO("q4 M " << M << " N " << N << " K " << K << " accumulate " << accumulate);
  REQUIRE(fast.guards_intact());
  REQUIRE(q4_error_ratio(w.groups(), initial, sizes.view(), reference.cview(), fast.cview()) <=
          1.0);
}

// ---------------------------------------------------------------------------------------------
// causal attention

struct AttentionCase {
  std::size_t heads, head_dim, queries, first_position, keys;
  std::vector<std::int32_t> key_positions;  // empty: key j at position j
};

// Per output (t, h, i): the scores carry the dot-product error of the q.k products, which the
// softmax turns into a relative error of each probability; the output sums n weighted values.
//   bound = eps (sqrt(d) S + sqrt(n) + 4) sum_j p_j |v_ji|,  S = max_j scale sum_i |q_i k_ji|
// A query that sees no key must give exactly zero.
inline double attention_error_ratio(ConstMatrixView<float> q, ConstMatrixView<float> keys,
                                    ConstMatrixView<float> values, const AttentionCase& c,
                                    ConstMatrixView<float> reference,
                                    ConstMatrixView<float> result) {
  const std::size_t d = c.head_dim;
  const double scale = 1.0 / std::sqrt(double(d));
  double worst = 0.0;
  for (std::size_t t = 0; t < c.queries; ++t)
    for (std::size_t h = 0; h < c.heads; ++h) {
      std::vector<std::size_t> visible;
      std::vector<double> scores;
      double spread = 0.0;
      for (std::size_t j = 0; j < keys.rows; ++j) {
        const std::int64_t position =
            c.key_positions.empty() ? std::int64_t(j) : c.key_positions[j];
        if (position > std::int64_t(c.first_position + t)) continue;
        double s = 0.0, magnitude = 0.0;
        for (std::size_t i = 0; i < d; ++i) {
          s += double(q(t, h * d + i)) * keys(j, h * d + i);
          magnitude += std::abs(double(q(t, h * d + i)) * keys(j, h * d + i));
        }
        visible.push_back(j);
        scores.push_back(s * scale);
        spread = std::max(spread, magnitude * scale);
      }
      double top = -kInf, total = 0.0;
      for (double s : scores) top = std::max(top, s);
      for (double& s : scores) total += (s = std::exp(s - top));
      for (std::size_t i = 0; i < d; ++i) {
        double weighted = 0.0;
        for (std::size_t k = 0; k < visible.size(); ++k)
          weighted += scores[k] / total * std::abs(double(values(visible[k], h * d + i)));
        const double bound =
            kEps * (std::sqrt(double(d)) * spread + std::sqrt(double(visible.size())) + 4.0) *
            weighted;
        worst = std::max(
            worst,
            ratio(std::abs(double(result(t, h * d + i)) - double(reference(t, h * d + i))), bound));
      }
    }
  return worst;
}

// Rows rounded to bf16 (strided and off-aligned, as a cache's rows of an odd width are), and their
// exact widening back to float.
struct Bf16Rows {
  std::vector<bf16> buffer;
  ConstMatrixView<bf16> view;
  Strided widened;
  explicit Bf16Rows(ConstMatrixView<float> source)
      : buffer(1 + source.rows * (source.cols + 3)), widened(source.rows, source.cols) {
    const std::size_t stride = source.cols + 3;
    for (std::size_t r = 0; r < source.rows; ++r)
      for (std::size_t c = 0; c < source.cols; ++c) {
        buffer[1 + r * stride + c] = to_bf16(source(r, c));
        widened.view(r, c) = to_float(buffer[1 + r * stride + c]);
      }
    view = ConstMatrixView<bf16>(buffer.data() + 1, source.rows, source.cols, stride);
  }
};

// An attention case's queries, keys and values; with bf16_entries the keys and values are also
// rounded to bf16 (keys16, values16), as a KV cache in bf16 holds them, and the entries the bound
// is computed on are those bf16 numbers widened.
struct AttentionData {
  Strided q, keys, values;
  std::optional<Bf16Rows> keys16, values16;
  AttentionData(const AttentionCase& c, Rng& rng, bool bf16_entries = false)
      : q(c.queries, c.heads * c.head_dim, 1, 5),
        keys(c.keys, c.heads * c.head_dim, 1, 3),
        values(c.keys, c.heads * c.head_dim, 1, 1) {
    q.randomize(rng, 0.5, 3.0);  // scores spread over a few units: a peaked, not flat, softmax
    keys.randomize(rng, 0.25, 1.0);
    values.randomize(rng, 0.25, 2.0);
    if (bf16_entries) {
      keys16.emplace(keys.cview());
      values16.emplace(values.cview());
    }
  }
  ConstMatrixView<float> entry_keys() const {
    return keys16 ? keys16->widened.cview() : keys.cview();
  }
  ConstMatrixView<float> entry_values() const {
    return values16 ? values16->widened.cview() : values.cview();
  }
  // out = the scalar twin's attention over the entries.
  void scalar_attention(const AttentionCase& c, MatrixView<float> out) const {
    const std::span<const std::int32_t> positions(c.key_positions);
    if (keys16)
      cpu::scalar::causal_attention(q.cview(), keys16->view, values16->view, c.heads, c.head_dim,
                                    c.first_position, out, positions);
    else
      cpu::scalar::causal_attention(q.cview(), keys.cview(), values.cview(), c.heads, c.head_dim,
                                    c.first_position, out, positions);
  }
};

inline std::vector<AttentionCase> attention_cases() {
  std::vector<AttentionCase> cases;
  for (std::size_t head_dim : {6, 16, 32, 96})
    for (std::size_t heads : {1, 3, 4}) {
      // Prefill: queries at 0..T-1 over their own keys.
      for (std::size_t t : {1, 2, 3, 5, 7}) cases.push_back({heads, head_dim, t, 0, t, {}});
      // A chunk after a prefill, and a decode step, over a longer key set.
      cases.push_back({heads, head_dim, 3, 5, 8, {}});
      cases.push_back({heads, head_dim, 1, 9, 10, {}});
      // Entries beyond the last query's position are masked.
      cases.push_back({heads, head_dim, 2, 4, 9, {}});
      // Gaps in the positions (entries written by tokens that exited early), out of order.
      cases.push_back({heads, head_dim, 4, 6, 7, {0, 1, 3, 4, 7, 8, 9}});
      cases.push_back({heads, head_dim, 5, 2, 6, {0, 5, 2, 6, 1, 3}});
      // Queries that see no key at all (output zero), then some.
      cases.push_back({heads, head_dim, 3, 0, 3, {2, 3, 4}});
    }
  // Prefill of several blocks of 32 queries (a thread's blocks of one head share the transposed
  // keys, extended as later queries see more), head sizes that leave elements past the 16 x 16
  // transposes, and keys written out of order.
  cases.push_back({3, 40, 70, 0, 70, {}});
  cases.push_back({2, 96, 45, 30, 75, {}});
  std::vector<std::int32_t> reversed(50);
  for (std::size_t j = 0; j < reversed.size(); ++j) reversed[j] = std::int32_t(49 - j);
  cases.push_back({3, 24, 40, 10, 50, reversed});
  // Decode over many keys (threads split the keys and merge their partial softmaxes): all keys
  // visible; the later half masked (a thread whose keys are all hidden); none visible.
  for (std::size_t heads : {1, 3}) {
    cases.push_back({heads, 96, 1, 400, 401, {}});
    cases.push_back({heads, 32, 1, 150, 400, {}});
    std::vector<std::int32_t> hidden(300);
    for (std::size_t j = 0; j < hidden.size(); ++j) hidden[j] = std::int32_t(1000 + j);
    cases.push_back({heads, 16, 1, 7, 300, hidden});
  }
  // Decode over an odd number of visible keys with gaps (each thread's keys run as two streams
  // of unequal length).
  std::vector<std::int32_t> gapped(301);
  for (std::size_t j = 0; j < gapped.size(); ++j) gapped[j] = std::int32_t(j % 7 == 3 ? 900 : j);
  cases.push_back({3, 96, 1, 280, 301, gapped});
  // Decode with heads of sizes past whole vectors, over key counts that leave the last batch of
  // each stream partly filled.
  cases.push_back({3, 40, 1, 298, 299, {}});
  cases.push_back({2, 24, 1, 250, 301, gapped});
  return cases;
}

// ---------------------------------------------------------------------------------------------
// RoPE on adjacent pairs

// Rotates adjacent pairs (2i, 2i+1) of v + bias by p * base^(-2i/d) in double: the definition.
// `half_split` pairs (i, i + d/2) instead, `sign` flips the rotation, `position_shift` moves p:
// the sanity checks use them as plausibly wrong kernels.
inline void rope_reference(ConstMatrixView<float> x, std::size_t heads, std::size_t d,
                           const std::vector<float>& bias, std::size_t first, double base,
                           MatrixView<float> out, bool half_split = false, double sign = 1.0,
                           std::size_t position_shift = 0) {
  for (std::size_t r = 0; r < x.rows; ++r)
    for (std::size_t h = 0; h < heads; ++h)
      for (std::size_t i = 0; i < d / 2; ++i) {
        const std::size_t a = h * d + (half_split ? i : 2 * i);
        const std::size_t b = h * d + (half_split ? i + d / 2 : 2 * i + 1);
        const double theta = double(first + r + position_shift) * std::pow(base, -2.0 * i / d);
        const double v0 = double(x(r, a)) + (bias.empty() ? 0.0 : bias[a]);
        const double v1 = double(x(r, b)) + (bias.empty() ? 0.0 : bias[b]);
        out(r, a) = float(v0 * std::cos(theta) - sign * v1 * std::sin(theta));
        out(r, b) = float(v1 * std::cos(theta) + sign * v0 * std::sin(theta));
      }
}

// The table holds float32 angles (float inverse frequency times position, as the reference
// model computes them), so each angle carries a relative error of about ln(base) + 3 roundings;
// the rotated pair then errs by that angle error times its length, plus a few roundings.
inline double rope_error_ratio(ConstMatrixView<float> x, std::size_t heads, std::size_t d,
                               const std::vector<float>& bias, std::size_t first, double base,
                               ConstMatrixView<float> result) {
  Matrix<float> reference(x.rows, x.cols);
  rope_reference(x, heads, d, bias, first, base, reference.view());
  double worst = 0.0;
  for (std::size_t r = 0; r < x.rows; ++r)
    for (std::size_t h = 0; h < heads; ++h)
      for (std::size_t i = 0; i < d / 2; ++i) {
        const std::size_t a = h * d + 2 * i, b = a + 1;
        const double theta = double(first + r) * std::pow(base, -2.0 * i / d);
        const double length = std::abs(double(x(r, a)) + (bias.empty() ? 0.0 : bias[a])) +
                              std::abs(double(x(r, b)) + (bias.empty() ? 0.0 : bias[b]));
        const double bound = ((std::log(base) + 4.0) * kEps * theta + 4.0 * kEps) * length;
        for (std::size_t e : {a, b})
          worst = std::max(worst, ratio(std::abs(double(result(r, e)) - reference(r, e)), bound));
      }
  return worst;
}

}  // namespace recurrent_depth::kernel_test
