// Kernel tests, attention part: causal_attention (dense, gapped and out-of-order key positions),
// rope_table and rope_adjacent_pairs.
// Method and tolerances: see kernel_test_support.hpp.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <span>
#include <vector>

#include "kernel_test_support.hpp"
#include "recurrent_depth/backends/cpu/cpu_backend.hpp"
#include "recurrent_depth/backends/cpu/scalar_reference.hpp"
#include "recurrent_depth/blocks/block_context.hpp"

using namespace recurrent_depth;
using namespace recurrent_depth::kernel_test;

namespace {

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

}  // namespace

// =============================================================================================

TEST_CASE("kernels: causal_attention matches the scalar twin", "[kernels][attention]") {
  for_each_kernel_table([&](const cpu::CpuKernels& kernels) {
    Rng rng(401);
    for (const AttentionCase& c : attention_cases()) {
      AttentionData data(c, rng);
      const std::size_t width = c.heads * c.head_dim;
      Strided fast(c.queries, width, 1, 2), reference(c.queries, width, 0, 0);
      fast.fill(kNaN);
      const std::span<const std::int32_t> positions(c.key_positions);
      kernels.causal_attention(data.q.cview(), data.keys.cview(), data.values.cview(), c.heads,
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
  });
}

TEST_CASE("kernels: causal_attention with explicit dense positions equals implicit ones",
          "[kernels][attention]") {
  for_each_kernel_table([&](const cpu::CpuKernels& kernels) {
    Rng rng(402);
    const AttentionCase c{3, 32, 4, 5, 11, {}};
    AttentionData data(c, rng);
    std::vector<std::int32_t> dense(c.keys);
    for (std::size_t j = 0; j < c.keys; ++j) dense[j] = std::int32_t(j);
    Matrix<float> implicit(c.queries, 96), explicit_positions(c.queries, 96);
    kernels.causal_attention(data.q.cview(), data.keys.cview(), data.values.cview(), c.heads,
                             c.head_dim, c.first_position, implicit.view(), {});
    kernels.causal_attention(data.q.cview(), data.keys.cview(), data.values.cview(), c.heads,
                             c.head_dim, c.first_position, explicit_positions.view(), dense);
    for (std::size_t t = 0; t < c.queries; ++t)
      for (std::size_t i = 0; i < 96; ++i) REQUIRE(implicit(t, i) == explicit_positions(t, i));
  });
}

TEST_CASE("kernels: the attention comparison rejects plausibly wrong kernels",
          "[kernels][sanity]") {
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
  for_each_kernel_table([&](const cpu::CpuKernels& kernels) {
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
                kernels.rope_adjacent_pairs(x.view, heads, d, bias_span, table.view(), first);
                INFO("base " << base << " d " << d << " heads " << heads << " rows " << rows
                             << " first " << first << " bias " << with_bias);
                REQUIRE(x.guards_intact());
                REQUIRE(rope_error_ratio(original.cview(), heads, d, bias, first, base,
                                         x.cview()) <= 1.0);
              }
  });
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
