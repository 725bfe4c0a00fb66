// Every SIMD kernel of the CPU backend against its plain scalar twin (cpu::scalar, double
// accumulation) on seeded random data that is never zero: sizes that are not multiples of the
// vector width, views that start one element into their buffer, rows strided wider than they are
// (the padding holds guard values that must survive), and tolerances derived per output from the
// data and float32's epsilon. Each comparison has a sanity case showing that a plausibly wrong
// kernel (a dropped tail element, an off-by-one mask, a wrong rotation...) fails it.
#include <catch2/catch.hpp>

#include <algorithm>
#include <bit>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "recurrent_depth/backends/cpu/cpu_backend.hpp"
#include "recurrent_depth/backends/cpu/scalar_reference.hpp"
#include "recurrent_depth/blocks/block_context.hpp"
#include "recurrent_depth/core/random.hpp"

using namespace recurrent_depth;

namespace {

constexpr double kEps = FLT_EPSILON;  // 2^-23, one ulp of 1.0f
constexpr float kGuard = -12345.0f;
const float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

const std::size_t kColumns[] = {1, 3, 15, 17, 33, 96, 100, 257};
const std::size_t kRowCounts[] = {1, 2, 3, 5, 7};

// Magnitude uniform in [lo, hi], random sign: never zero.
float nonzero(Rng& rng, double lo = 0.25, double hi = 1.0) {
  const double magnitude = lo + (hi - lo) * rng.uniform();
  return static_cast<float>(rng.uniform() < 0.5 ? -magnitude : magnitude);
}

// Ratio of an error to its bound; NaN (an output never written, or garbage) is infinitely bad.
double ratio(double error, double bound) {
  if (std::isnan(error)) return kInf;
  if (bound == 0.0) return error == 0.0 ? 0.0 : kInf;
  return error / bound;
}

// A [rows, cols] view that starts `offset` floats into its buffer, with `pad` elements after each
// row; everything outside the view holds kGuard.
struct Strided {
  std::vector<float> buffer;
  MatrixView<float> view;
  std::size_t offset;

  Strided(std::size_t rows, std::size_t cols, std::size_t offset_ = 1, std::size_t pad = 3)
      : buffer(offset_ + rows * (cols + pad), kGuard),
        view(buffer.data() + offset_, rows, cols, cols + pad),
        offset(offset_) {}

  void randomize(Rng& rng, double lo = 0.25, double hi = 1.0) {
    for (std::size_t r = 0; r < view.rows; ++r)
      for (std::size_t c = 0; c < view.cols; ++c) view(r, c) = nonzero(rng, lo, hi);
  }
  void fill(float value) {
    for (std::size_t r = 0; r < view.rows; ++r)
      for (std::size_t c = 0; c < view.cols; ++c) view(r, c) = value;
  }
  void copy_from(ConstMatrixView<float> other) {
    for (std::size_t r = 0; r < view.rows; ++r)
      for (std::size_t c = 0; c < view.cols; ++c) view(r, c) = other(r, c);
  }
  // True when no element outside the view was written.
  bool guards_intact() const {
    for (std::size_t i = 0; i < buffer.size(); ++i) {
      bool inside = false;
      if (i >= offset) {
        const std::size_t j = i - offset, r = j / view.stride, c = j % view.stride;
        inside = r < view.rows && c < view.cols;
      }
      if (!inside && !(buffer[i] == kGuard)) return false;
    }
    return true;
  }
  ConstMatrixView<float> cview() const { return view; }
};

// A weight matrix [rows, cols] in storage W, starting one element into its buffer, row stride
// cols + 5.
template <class W>
struct StridedWeights {
  std::vector<W> buffer;
  ConstMatrixView<W> view;

  StridedWeights(std::size_t rows, std::size_t cols, Rng& rng, double lo = 0.25, double hi = 1.0)
      : buffer(1 + rows * (cols + 5)) {
    const std::size_t stride = cols + 5;
    for (std::size_t i = 0; i < buffer.size(); ++i) buffer[i] = store(nonzero(rng, lo, hi));
    view = ConstMatrixView<W>(buffer.data() + 1, rows, cols, stride);
  }
  static W store(float v) {
    if constexpr (std::is_same_v<W, float>) return v;
    else return to_bf16(v);
  }
};

std::vector<float> nonzero_vector(std::size_t n, Rng& rng, double lo, double hi) {
  std::vector<float> v(n);
  for (float& x : v) x = nonzero(rng, lo, hi);
  return v;
}

// ---------------------------------------------------------------------------------------------
// linear

// Worst ratio over outputs of |result - reference| to the dot-product bound
//   2 eps sqrt(K) sum_k |x_k w_k|  (+ eps |y0| when accumulating)  + eps |reference|,
// the last term for the reference's own rounding to float.
template <class W>
double linear_error_ratio(ConstMatrixView<float> x, ConstMatrixView<W> w,
                          const std::vector<float>& initial, ConstMatrixView<float> reference,
                          ConstMatrixView<float> result) {
  double worst = 0.0;
  const double root_k = std::sqrt(static_cast<double>(x.cols));
  for (std::size_t m = 0; m < x.rows; ++m)
    for (std::size_t n = 0; n < w.rows; ++n) {
      double magnitude = 0.0;
      for (std::size_t k = 0; k < x.cols; ++k)
        magnitude += std::abs(double(x(m, k)) * double(cpu::load_scalar(&w(n, k))));
      double bound = 2.0 * kEps * root_k * magnitude + kEps * std::abs(double(reference(m, n)));
      if (!initial.empty()) bound += kEps * std::abs(double(initial[m * w.rows + n]));
      worst = std::max(worst, ratio(std::abs(double(result(m, n)) - reference(m, n)), bound));
    }
  return worst;
}

template <class W>
void check_linear(std::size_t M, std::size_t N, std::size_t K, bool accumulate, Rng& rng) {
  Strided x(M, K, 1, 3);
  x.randomize(rng);
  const StridedWeights<W> w(N, K, rng);
  Strided fast(M, N, 1, 2), reference(M, N, 0, 0);
  std::vector<float> initial;
  if (accumulate) {
    initial = nonzero_vector(M * N, rng, 0.5, 4.0);
    for (std::size_t m = 0; m < M; ++m)
      for (std::size_t n = 0; n < N; ++n) fast.view(m, n) = reference.view(m, n) = initial[m * N + n];
  } else {
    fast.fill(kNaN);  // must be overwritten
    reference.fill(kNaN);
  }
  cpu::linear(x.cview(), w.view, fast.view, accumulate);
  cpu::scalar::linear(x.cview(), w.view, reference.view, accumulate);
  INFO("M " << M << " N " << N << " K " << K << " accumulate " << accumulate);
  REQUIRE(fast.guards_intact());
  REQUIRE(linear_error_ratio(x.cview(), w.view, initial, reference.cview(), fast.cview()) <= 1.0);
}

template <class W>
void check_linear_sizes(std::uint64_t seed) {
  Rng rng(seed);
  for (bool accumulate : {false, true})
    for (std::size_t M : {1, 2, 3, 4, 5, 9})
      for (std::size_t N : {1, 3, 6, 7, 13, 18})
        for (std::size_t K : kColumns) check_linear<W>(M, N, K, accumulate, rng);
  // One larger shape, split over threads (many 4-row tiles) with a long reduction.
  check_linear<W>(5, 67, 1000, false, rng);
  check_linear<W>(9, 67, 1000, true, rng);
}

// ---------------------------------------------------------------------------------------------
// rms_norm, add_rms_norm, silu_gate

// Outputs are products x * s * w: their relative error is that of the sum of squares (at most
// about sqrt(n) roundings for random data, halved by the square root) plus a few roundings.
double norm_error_ratio(ConstMatrixView<float> reference, ConstMatrixView<float> result) {
  const double relative = (2.0 * std::sqrt(double(reference.cols)) + 8.0) * kEps;
  double worst = 0.0;
  for (std::size_t r = 0; r < reference.rows; ++r)
    for (std::size_t c = 0; c < reference.cols; ++c)
      worst = std::max(worst, ratio(std::abs(double(result(r, c)) - reference(r, c)),
                                    relative * std::abs(double(reference(r, c))) + FLT_MIN));
  return worst;
}

// RMSNorm in double with a chosen divisor and eps and an optional dropped last element, for the
// sanity checks (the correct kernel has divisor n and the config's eps).
void rms_norm_variant(ConstMatrixView<float> in, const std::vector<float>& weight, double eps,
                      double divisor, bool drop_last, MatrixView<float> out) {
  for (std::size_t r = 0; r < in.rows; ++r) {
    double squares = 0.0;
    const std::size_t n = drop_last ? in.cols - 1 : in.cols;
    for (std::size_t i = 0; i < n; ++i) squares += double(in(r, i)) * in(r, i);
    const double scale = 1.0 / std::sqrt(squares / divisor + eps);
    for (std::size_t i = 0; i < in.cols; ++i) out(r, i) = float(in(r, i) * scale * weight[i]);
  }
}

// silu(g) * u: the exp, the division and the products, a few ulps each.
double silu_error_ratio(ConstMatrixView<float> reference, ConstMatrixView<float> result) {
  double worst = 0.0;
  for (std::size_t r = 0; r < reference.rows; ++r)
    for (std::size_t c = 0; c < reference.cols; ++c)
      worst = std::max(worst, ratio(std::abs(double(result(r, c)) - reference(r, c)),
                                    8.0 * kEps * std::abs(double(reference(r, c))) + FLT_MIN));
  return worst;
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
double attention_error_ratio(ConstMatrixView<float> q, ConstMatrixView<float> keys,
                             ConstMatrixView<float> values, const AttentionCase& c,
                             ConstMatrixView<float> reference, ConstMatrixView<float> result) {
  const std::size_t d = c.head_dim;
  const double scale = 1.0 / std::sqrt(double(d));
  double worst = 0.0;
  for (std::size_t t = 0; t < c.queries; ++t)
    for (std::size_t h = 0; h < c.heads; ++h) {
      std::vector<std::size_t> visible;
      std::vector<double> scores;
      double spread = 0.0;
      for (std::size_t j = 0; j < keys.rows; ++j) {
        const std::int64_t position = c.key_positions.empty() ? std::int64_t(j) : c.key_positions[j];
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
        worst = std::max(worst, ratio(std::abs(double(result(t, h * d + i)) -
                                               double(reference(t, h * d + i))),
                                      bound));
      }
    }
  return worst;
}

struct AttentionData {
  Strided q, keys, values;
  AttentionData(const AttentionCase& c, Rng& rng)
      : q(c.queries, c.heads * c.head_dim, 1, 5),
        keys(c.keys, c.heads * c.head_dim, 1, 3),
        values(c.keys, c.heads * c.head_dim, 1, 1) {
    q.randomize(rng, 0.5, 3.0);  // scores spread over a few units: a peaked, not flat, softmax
    keys.randomize(rng, 0.25, 1.0);
    values.randomize(rng, 0.25, 2.0);
  }
};

std::vector<AttentionCase> attention_cases() {
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
  return cases;
}

// ---------------------------------------------------------------------------------------------
// RoPE on adjacent pairs

// Rotates adjacent pairs (2i, 2i+1) of v + bias by p * base^(-2i/d) in double: the definition.
// `half_split` pairs (i, i + d/2) instead, `sign` flips the rotation, `position_shift` moves p:
// the sanity checks use them as plausibly wrong kernels.
void rope_reference(ConstMatrixView<float> x, std::size_t heads, std::size_t d,
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
double rope_error_ratio(ConstMatrixView<float> x, std::size_t heads, std::size_t d,
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

// ---------------------------------------------------------------------------------------------
// bf16 loads

template <class A>
void check_bf16_loads() {
  constexpr std::size_t lanes = xsimd::batch<float, A>::size;
  // Every bf16 bit pattern (NaNs, infinities, subnormals included), then a wrap-around tail.
  std::vector<bf16> all(lanes + 65536 + lanes);
  for (std::size_t i = 0; i < all.size(); ++i) all[i] = bf16{std::uint16_t(i * 7919u)};
  alignas(64) float out[lanes];
  std::size_t mismatches = 0, checked = 0;
  for (std::size_t offset : {std::size_t(0), std::size_t(1), lanes - 1}) {
    for (std::size_t start = offset; start + lanes <= all.size(); start += lanes) {
      const bf16* p = all.data() + start;
      cpu::load_floats<A>(p).store_aligned(out);
      for (std::size_t l = 0; l < lanes; ++l, ++checked)
        if (std::bit_cast<std::uint32_t>(out[l]) != std::bit_cast<std::uint32_t>(to_float(p[l])))
          ++mismatches;
    }
  }
  INFO("architecture " << A::name() << ", " << lanes << " lanes");
  CHECK(checked > 3 * 65536 - 3 * lanes);
  REQUIRE(mismatches == 0);
  // Float loads from a misaligned address are plain loads.
  std::vector<float> floats(lanes + 1);
  for (std::size_t i = 0; i < floats.size(); ++i) floats[i] = float(i) + 0.5f;
  cpu::load_floats<A>(floats.data() + 1).store_aligned(out);
  for (std::size_t l = 0; l < lanes; ++l) REQUIRE(out[l] == floats[l + 1]);
}

}  // namespace

// =============================================================================================

TEST_CASE("kernels: linear with float weights matches the scalar twin", "[kernels][linear]") {
  check_linear_sizes<float>(101);
}

TEST_CASE("kernels: linear with bf16 weights matches the scalar twin", "[kernels][linear]") {
  check_linear_sizes<bf16>(102);
}

TEST_CASE("kernels: linear through PackedWeights and CpuBackend", "[kernels][linear]") {
  Rng rng(103);
  const std::size_t M = 7, N = 19, K = 45;
  const std::vector<float> source = nonzero_vector(N * K, rng, 0.25, 1.0);
  const auto f32 = cpu::PackedWeights<float>::from_rows(std::span<const float>(source), N, K);
  const auto b16 = cpu::PackedWeights<bf16>::from_rows(std::span<const float>(source), N, K);
  REQUIRE(f32.bytes() == N * K * 4);
  REQUIRE(b16.bytes() == N * K * 2);
  for (std::size_t n = 0; n < N; ++n)
    for (std::size_t k = 0; k < K; ++k) {
      REQUIRE(f32.values(n, k) == source[n * K + k]);
      REQUIRE(b16.values(n, k).bits == to_bf16(source[n * K + k]).bits);
    }
  Strided x(M, K);
  x.randomize(rng);
  Matrix<float> fast(M, N), reference(M, N);
  CpuBackend::linear(x.cview(), f32, fast.view());
  cpu::scalar::linear(x.cview(), f32.view(), reference.view());
  CHECK(linear_error_ratio(x.cview(), f32.view(), {}, reference.view(), fast.view()) <= 1.0);
  CpuBackend::linear(x.cview(), b16, fast.view());
  cpu::scalar::linear(x.cview(), b16.view(), reference.view());
  CHECK(linear_error_ratio(x.cview(), b16.view(), {}, reference.view(), fast.view()) <= 1.0);
  Matrix<float> bad(M, N);
  REQUIRE_THROWS_AS(cpu::linear(x.cview(), f32.view().middle_cols(0, K - 1), bad.view()), Error);
}

TEST_CASE("kernels: the linear comparison rejects plausibly wrong kernels", "[kernels][sanity]") {
  Rng rng(104);
  for (std::size_t K : {15, 100, 257}) {
    const std::size_t M = 3, N = 5;
    Strided x(M, K);
    x.randomize(rng);
    const StridedWeights<float> w(N, K, rng);
    Matrix<float> reference(M, N), wrong(M, N);
    cpu::scalar::linear(x.cview(), w.view, reference.view());
    REQUIRE(linear_error_ratio(x.cview(), w.view, {}, reference.view(), reference.view()) == 0.0);

    // A kernel that drops the last element of the reduction (a tail bug).
    cpu::scalar::linear(x.cview().middle_cols(0, K - 1), w.view.middle_cols(0, K - 1), wrong.view());
    CHECK(linear_error_ratio(x.cview(), w.view, {}, reference.view(), wrong.view()) > 1.0);

    // A kernel that rounds the activations to bf16.
    Strided rounded(M, K);
    for (std::size_t m = 0; m < M; ++m)
      for (std::size_t k = 0; k < K; ++k) rounded.view(m, k) = to_float(to_bf16(x.view(m, k)));
    cpu::scalar::linear(rounded.cview(), w.view, wrong.view());
    CHECK(linear_error_ratio(x.cview(), w.view, {}, reference.view(), wrong.view()) > 1.0);

    // A kernel that ignores accumulate.
    const std::vector<float> initial = nonzero_vector(M * N, rng, 0.5, 4.0);
    Matrix<float> accumulated(M, N);
    for (std::size_t m = 0; m < M; ++m)
      for (std::size_t n = 0; n < N; ++n) accumulated(m, n) = initial[m * N + n];
    cpu::scalar::linear(x.cview(), w.view, accumulated.view(), true);
    CHECK(linear_error_ratio(x.cview(), w.view, initial, accumulated.view(), reference.view()) > 1.0);
  }
}

TEST_CASE("kernels: rms_norm matches the scalar twin", "[kernels][norm]") {
  Rng rng(201);
  std::vector<std::pair<std::size_t, std::size_t>> shapes;
  for (std::size_t rows : kRowCounts)
    for (std::size_t cols : kColumns) shapes.push_back({rows, cols});
  shapes.push_back({130, 257});  // enough rows * cols to take the threaded branch
  for (const auto& [rows, cols] : shapes)
    for (float eps : {1e-6f, 0.25f}) {
      Strided in(rows, cols, 1, 3);
      in.randomize(rng, 0.25, 2.0);
      std::vector<float> weight_buffer = nonzero_vector(cols + 1, rng, 0.5, 1.5);
      const std::span<const float> weight(weight_buffer.data() + 1, cols);  // misaligned too
      Strided fast(rows, cols, 1, 2), reference(rows, cols, 0, 0);
      fast.fill(kNaN);
      cpu::rms_norm(in.cview(), weight, eps, fast.view);
      cpu::scalar::rms_norm(in.cview(), weight, eps, reference.view);
      INFO("rows " << rows << " cols " << cols << " eps " << eps);
      REQUIRE(fast.guards_intact());
      REQUIRE(norm_error_ratio(reference.cview(), fast.cview()) <= 1.0);

      // In place (the model normalises the head's input in place): the same result, bit for bit.
      Strided in_place(rows, cols, 1, 2);
      in_place.copy_from(in.cview());
      cpu::rms_norm(in_place.cview(), weight, eps, in_place.view);
      REQUIRE(in_place.guards_intact());
      for (std::size_t r = 0; r < rows; ++r)
        for (std::size_t c = 0; c < cols; ++c) REQUIRE(in_place.view(r, c) == fast.view(r, c));
    }
}

TEST_CASE("kernels: add_rms_norm matches the scalar twin", "[kernels][norm]") {
  Rng rng(202);
  std::vector<std::pair<std::size_t, std::size_t>> shapes;
  for (std::size_t rows : kRowCounts)
    for (std::size_t cols : kColumns) shapes.push_back({rows, cols});
  shapes.push_back({130, 257});
  for (const auto& [rows, cols] : shapes)
    for (float eps : {1e-6f, 0.25f}) {
      Strided x(rows, cols, 1, 3), delta(rows, cols, 1, 1);
      x.randomize(rng, 0.25, 2.0);
      delta.randomize(rng, 0.25, 2.0);
      std::vector<float> weight_buffer = nonzero_vector(cols + 1, rng, 0.5, 1.5);
      const std::span<const float> weight(weight_buffer.data() + 1, cols);
      Strided reference(rows, cols, 0, 0);
      reference.copy_from(x.cview());
      cpu::add_rms_norm(x.view, delta.cview(), weight, eps);
      cpu::scalar::add_rms_norm(reference.view, delta.cview(), weight, eps);
      INFO("rows " << rows << " cols " << cols << " eps " << eps);
      REQUIRE(x.guards_intact());
      REQUIRE(delta.guards_intact());
      REQUIRE(norm_error_ratio(reference.cview(), x.cview()) <= 1.0);
    }
}

TEST_CASE("kernels: the norm comparison rejects plausibly wrong kernels", "[kernels][sanity]") {
  Rng rng(203);
  for (std::size_t cols : {15, 100, 257}) {
    const std::size_t rows = 3;
    Strided in(rows, cols);
    in.randomize(rng, 0.25, 2.0);
    const std::vector<float> weight = nonzero_vector(cols, rng, 0.5, 1.5);
    const double eps = 0.25;
    Matrix<float> reference(rows, cols), wrong(rows, cols);
    cpu::scalar::rms_norm(in.cview(), weight, float(eps), reference.view());
    rms_norm_variant(in.cview(), weight, eps, double(cols), false, wrong.view());
    CHECK(norm_error_ratio(reference.view(), wrong.view()) <= 1.0);  // the same formula passes
    rms_norm_variant(in.cview(), weight, eps, double(cols - 1), false, wrong.view());
    CHECK(norm_error_ratio(reference.view(), wrong.view()) > 1.0);  // mean over n - 1
    rms_norm_variant(in.cview(), weight, 0.0, double(cols), false, wrong.view());
    CHECK(norm_error_ratio(reference.view(), wrong.view()) > 1.0);  // eps forgotten
    rms_norm_variant(in.cview(), weight, eps, double(cols), true, wrong.view());
    CHECK(norm_error_ratio(reference.view(), wrong.view()) > 1.0);  // tail dropped from the sum
  }
}

TEST_CASE("kernels: silu_gate matches the scalar twin", "[kernels][mlp]") {
  Rng rng(301);
  std::vector<std::pair<std::size_t, std::size_t>> shapes;
  for (std::size_t rows : kRowCounts)
    for (std::size_t cols : kColumns) shapes.push_back({rows, cols});
  shapes.push_back({130, 257});
  for (const auto& [rows, n] : shapes) {
    Strided fc(rows, 2 * n, 1, 3);
    for (std::size_t r = 0; r < rows; ++r)
      for (std::size_t i = 0; i < n; ++i) {
        fc.view(r, i) = nonzero(rng, 0.05, 8.0);          // gate: both tails of the sigmoid
        fc.view(r, n + i) = nonzero(rng, 0.25, 2.0);      // up
      }
    Strided fast(rows, n, 1, 2), reference(rows, n, 0, 0);
    fast.fill(kNaN);
    cpu::silu_gate(fc.cview(), fast.view);
    cpu::scalar::silu_gate(fc.cview(), reference.view);
    INFO("rows " << rows << " n " << n);
    REQUIRE(fast.guards_intact());
    REQUIRE(silu_error_ratio(reference.cview(), fast.cview()) <= 1.0);
  }
}

TEST_CASE("kernels: the silu comparison rejects plausibly wrong kernels", "[kernels][sanity]") {
  Rng rng(302);
  const std::size_t rows = 3, n = 33;
  Strided fc(rows, 2 * n);
  fc.randomize(rng, 0.05, 4.0);
  Matrix<float> reference(rows, n), wrong(rows, n);
  cpu::scalar::silu_gate(fc.cview(), reference.view());
  // The halves swapped: silu(up) * gate.
  Strided swapped(rows, 2 * n);
  for (std::size_t r = 0; r < rows; ++r)
    for (std::size_t i = 0; i < n; ++i) {
      swapped.view(r, i) = fc.view(r, n + i);
      swapped.view(r, n + i) = fc.view(r, i);
    }
  cpu::scalar::silu_gate(swapped.cview(), wrong.view());
  CHECK(silu_error_ratio(reference.view(), wrong.view()) > 1.0);
  // The gate read as bf16.
  Strided rounded(rows, 2 * n);
  rounded.copy_from(fc.cview());
  for (std::size_t r = 0; r < rows; ++r)
    for (std::size_t i = 0; i < n; ++i) rounded.view(r, i) = to_float(to_bf16(fc.view(r, i)));
  cpu::scalar::silu_gate(rounded.cview(), wrong.view());
  CHECK(silu_error_ratio(reference.view(), wrong.view()) > 1.0);
}

TEST_CASE("kernels: causal_attention matches the scalar twin", "[kernels][attention]") {
  Rng rng(401);
  for (const AttentionCase& c : attention_cases()) {
    AttentionData data(c, rng);
    const std::size_t width = c.heads * c.head_dim;
    Strided fast(c.queries, width, 1, 2), reference(c.queries, width, 0, 0);
    fast.fill(kNaN);
    const std::span<const std::int32_t> positions(c.key_positions);
    cpu::causal_attention(data.q.cview(), data.keys.cview(), data.values.cview(), c.heads,
                          c.head_dim, c.first_position, fast.view, positions);
    cpu::scalar::causal_attention(data.q.cview(), data.keys.cview(), data.values.cview(), c.heads,
                                  c.head_dim, c.first_position, reference.view, positions);
    INFO("heads " << c.heads << " head_dim " << c.head_dim << " queries " << c.queries
                  << " first " << c.first_position << " keys " << c.keys << " positions "
                  << c.key_positions.size());
    REQUIRE(fast.guards_intact());
    REQUIRE(attention_error_ratio(data.q.cview(), data.keys.cview(), data.values.cview(), c,
                                  reference.cview(), fast.cview()) <= 1.0);
  }
}

TEST_CASE("kernels: causal_attention with explicit dense positions equals implicit ones",
          "[kernels][attention]") {
  Rng rng(402);
  const AttentionCase c{3, 32, 4, 5, 11, {}};
  AttentionData data(c, rng);
  std::vector<std::int32_t> dense(c.keys);
  for (std::size_t j = 0; j < c.keys; ++j) dense[j] = std::int32_t(j);
  Matrix<float> implicit(c.queries, 96), explicit_positions(c.queries, 96);
  cpu::causal_attention(data.q.cview(), data.keys.cview(), data.values.cview(), c.heads, c.head_dim,
                        c.first_position, implicit.view());
  cpu::causal_attention(data.q.cview(), data.keys.cview(), data.values.cview(), c.heads, c.head_dim,
                        c.first_position, explicit_positions.view(), dense);
  for (std::size_t t = 0; t < c.queries; ++t)
    for (std::size_t i = 0; i < 96; ++i) REQUIRE(implicit(t, i) == explicit_positions(t, i));
}

TEST_CASE("kernels: the attention comparison rejects plausibly wrong kernels", "[kernels][sanity]") {
  Rng rng(403);
  for (std::size_t head_dim : {6, 16, 96}) {
    const AttentionCase c{2, head_dim, 3, 4, 8, {}};  // key 7 lies beyond the last query (6)
    AttentionData data(c, rng);
    const std::size_t width = c.heads * c.head_dim;
    Matrix<float> reference(c.queries, width), wrong(c.queries, width);
    cpu::scalar::causal_attention(data.q.cview(), data.keys.cview(), data.values.cview(), c.heads,
                                  head_dim, c.first_position, reference.view());
    const auto error = [&] {
      return attention_error_ratio(data.q.cview(), data.keys.cview(), data.values.cview(), c,
                                   reference.view(), wrong.view());
    };
    // The causal mask off by one: each query also sees the next position.
    cpu::scalar::causal_attention(data.q.cview(), data.keys.cview(), data.values.cview(), c.heads,
                                  head_dim, c.first_position + 1, wrong.view());
    CHECK(error() > 1.0);
    // The last element of each head dropped from the scores (a tail bug).
    Strided dropped(c.queries, width);
    dropped.copy_from(data.q.cview());
    for (std::size_t t = 0; t < c.queries; ++t)
      for (std::size_t h = 0; h < c.heads; ++h) dropped.view(t, h * head_dim + head_dim - 1) = 0.0f;
    cpu::scalar::causal_attention(dropped.cview(), data.keys.cview(), data.values.cview(), c.heads,
                                  head_dim, c.first_position, wrong.view());
    CHECK(error() > 1.0);
    // Scores scaled by 1/head_dim instead of 1/sqrt(head_dim).
    Strided rescaled(c.queries, width);
    for (std::size_t t = 0; t < c.queries; ++t)
      for (std::size_t i = 0; i < width; ++i)
        rescaled.view(t, i) = float(data.q.view(t, i) / std::sqrt(double(head_dim)));
    cpu::scalar::causal_attention(rescaled.cview(), data.keys.cview(), data.values.cview(), c.heads,
                                  head_dim, c.first_position, wrong.view());
    CHECK(error() > 1.0);
  }
}

TEST_CASE("kernels: rope_table holds cos and sin of p * base^(-2i/d)", "[kernels][rope]") {
  for (double base : {10000.0, 50000.0})
    for (std::size_t d : {6, 16, 96}) {
      const std::size_t positions = 300;
      const Matrix<float> table = rope_table(positions, d, base);
      REQUIRE(table.rows() == positions);
      REQUIRE(table.cols() == d);
      double worst = 0.0;
      for (std::size_t p = 0; p < positions; ++p)
        for (std::size_t i = 0; i < d / 2; ++i) {
          const double theta = double(p) * std::pow(base, -2.0 * double(i) / double(d));
          const double bound = (std::log(base) + 4.0) * kEps * theta + 2.0 * kEps;
          worst = std::max(worst, ratio(std::abs(table(p, 2 * i) - std::cos(theta)), bound));
          worst = std::max(worst, ratio(std::abs(table(p, 2 * i + 1) - std::sin(theta)), bound));
        }
      INFO("base " << base << " head_dim " << d);
      REQUIRE(worst <= 1.0);
    }
}

TEST_CASE("kernels: rope_adjacent_pairs rotates adjacent pairs by the double-precision angle",
          "[kernels][rope]") {
  Rng rng(501);
  for (double base : {10000.0, 50000.0})
    for (std::size_t d : {6, 16, 32, 96})
      for (std::size_t heads : {1, 3})
        for (std::size_t rows : kRowCounts)
          for (std::size_t first : {0, 1, 37, 250})
            for (bool with_bias : {false, true}) {
              const std::size_t width = heads * d;
              const Matrix<float> table = rope_table(first + rows + 3, d, base);
              Strided x(rows, width, 1, 7);  // like the q or k columns of the fused qkv
              x.randomize(rng, 0.25, 2.0);
              Strided original(rows, width);
              original.copy_from(x.cview());
              std::vector<float> bias_buffer = nonzero_vector(width + 1, rng, 0.01, 0.5);
              std::vector<float> bias;
              if (with_bias) bias.assign(bias_buffer.begin() + 1, bias_buffer.end());
              const std::span<const float> bias_span =
                  with_bias ? std::span<const float>(bias_buffer.data() + 1, width)
                            : std::span<const float>();
              cpu::rope_adjacent_pairs(x.view, heads, d, bias_span, table.view(), first);
              INFO("base " << base << " d " << d << " heads " << heads << " rows " << rows
                           << " first " << first << " bias " << with_bias);
              REQUIRE(x.guards_intact());
              REQUIRE(rope_error_ratio(original.cview(), heads, d, bias, first, base, x.cview()) <=
                      1.0);
            }
}

TEST_CASE("kernels: the rope comparison rejects plausibly wrong rotations", "[kernels][sanity]") {
  Rng rng(502);
  const double base = 50000.0;
  for (std::size_t d : {6, 16, 96}) {
    const std::size_t heads = 2, rows = 3, first = 5, width = heads * d;
    Strided x(rows, width);
    x.randomize(rng, 0.25, 2.0);
    const std::vector<float> bias = nonzero_vector(width, rng, 0.01, 0.5);
    Matrix<float> wrong(rows, width);
    rope_reference(x.cview(), heads, d, bias, first, base, wrong.view());
    CHECK(rope_error_ratio(x.cview(), heads, d, bias, first, base, wrong.view()) <= 1.0);
    rope_reference(x.cview(), heads, d, bias, first, base, wrong.view(), true);  // half split
    CHECK(rope_error_ratio(x.cview(), heads, d, bias, first, base, wrong.view()) > 1.0);
    rope_reference(x.cview(), heads, d, bias, first, base, wrong.view(), false, -1.0);  // sign
    CHECK(rope_error_ratio(x.cview(), heads, d, bias, first, base, wrong.view()) > 1.0);
    rope_reference(x.cview(), heads, d, bias, first, base, wrong.view(), false, 1.0, 1);  // p + 1
    CHECK(rope_error_ratio(x.cview(), heads, d, bias, first, base, wrong.view()) > 1.0);
    rope_reference(x.cview(), heads, d, {}, first, base, wrong.view());  // bias forgotten
    CHECK(rope_error_ratio(x.cview(), heads, d, bias, first, base, wrong.view()) > 1.0);
  }
}

TEST_CASE("kernels: load_floats(bf16) widens exactly like to_float", "[kernels][bf16]") {
  SECTION("default architecture") { check_bf16_loads<cpu::Arch>(); }
  SECTION("sse2 (generic path)") { check_bf16_loads<xsimd::sse2>(); }
#if defined(__AVX2__)
  SECTION("avx2") { check_bf16_loads<xsimd::avx2>(); }
#endif
#if defined(__AVX512F__)
  SECTION("avx512f") { check_bf16_loads<xsimd::avx512f>(); }
#endif
}

TEST_CASE("kernels: gather_rows, add and copy", "[kernels][elementwise]") {
  Rng rng(601);
  const std::size_t rows = 11, cols = 33;
  const std::vector<float> source = nonzero_vector(rows * cols, rng, 0.25, 1.0);
  const auto f32 = cpu::PackedWeights<float>::from_rows(std::span<const float>(source), rows, cols);
  const auto b16 = cpu::PackedWeights<bf16>::from_rows(std::span<const float>(source), rows, cols);
  const std::vector<std::int32_t> ids = {3, 0, 10, 3, 7};
  const float scale = std::sqrt(33.0f);
  Strided out(ids.size(), cols, 1, 2);
  CpuBackend::gather_rows(f32, ids, scale, out.view);
  REQUIRE(out.guards_intact());
  for (std::size_t t = 0; t < ids.size(); ++t)
    for (std::size_t c = 0; c < cols; ++c) REQUIRE(out.view(t, c) == source[ids[t] * cols + c] * scale);
  CpuBackend::gather_rows(b16, ids, scale, out.view);
  for (std::size_t t = 0; t < ids.size(); ++t)
    for (std::size_t c = 0; c < cols; ++c)
      REQUIRE(out.view(t, c) == to_float(to_bf16(source[ids[t] * cols + c])) * scale);

  for (std::size_t n : kColumns) {
    Strided a(3, n, 1, 1), b(3, n, 1, 2), sum(3, n, 1, 3), copied(3, n, 1, 1);
    a.randomize(rng);
    b.randomize(rng);
    cpu::add(a.cview(), b.cview(), sum.view);
    cpu::copy(a.cview(), copied.view);
    REQUIRE(sum.guards_intact());
    REQUIRE(copied.guards_intact());
    for (std::size_t r = 0; r < 3; ++r)
      for (std::size_t c = 0; c < n; ++c) {
        REQUIRE(sum.view(r, c) == a.view(r, c) + b.view(r, c));
        REQUIRE(copied.view(r, c) == a.view(r, c));
      }
    cpu::add(a.cview(), b.cview(), a.view);  // in place
    for (std::size_t r = 0; r < 3; ++r)
      for (std::size_t c = 0; c < n; ++c) REQUIRE(a.view(r, c) == sum.view(r, c));
  }
}
