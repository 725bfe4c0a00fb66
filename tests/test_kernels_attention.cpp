// Kernel tests, attention part: causal_attention over float and bf16 keys (dense, gapped and
// out-of-order key positions), rope_table and rope_adjacent_pairs.
// Method and tolerances: see kernel_test_support.hpp.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <span>
#include <vector>

#include "kernel_test_cases.hpp"
#include "kernel_test_support.hpp"
#include "recurrent_depth/backends/cpu/cpu_backend.hpp"
#include "recurrent_depth/backends/cpu/scalar_reference.hpp"
#include "recurrent_depth/blocks/block_context.hpp"

using namespace recurrent_depth;
using namespace recurrent_depth::kernel_test;

// =============================================================================================

TEST_CASE("kernels: causal_attention over float and bf16 keys matches the scalar twin",
          "[kernels][attention]") {
  for_each_kernel_table([&](const cpu::CpuKernels& kernels) {
    Rng rng(401);
    for (const AttentionCase& c : attention_cases())
      for (const bool bf16_keys : {false, true}) {
        // bf16: the twin reads the same bf16 numbers; the bound is that of float keys equal to
        // them.
        const AttentionData data(c, rng, bf16_keys);
        const std::size_t width = c.heads * c.head_dim;
        Strided fast(c.queries, width, 1, 2), reference(c.queries, width, 0, 0);
        fast.fill(kNaN);
        const std::span<const std::int32_t> positions(c.key_positions);
        if (bf16_keys)
          kernels.causal_attention_bf16(data.q.cview(), data.keys16->view, data.values16->view,
                                        c.heads, c.head_dim, c.first_position, fast.view,
                                        positions);
        else
          kernels.causal_attention(data.q.cview(), data.keys.cview(), data.values.cview(), c.heads,
                                   c.head_dim, c.first_position, fast.view, positions);
        data.scalar_attention(c, reference.view);
        INFO((bf16_keys ? "bf16 keys: " : "")
             << "heads " << c.heads << " head_dim " << c.head_dim << " queries " << c.queries
             << " first " << c.first_position << " keys " << c.keys << " positions "
             << c.key_positions.size());
        REQUIRE(fast.guards_intact());
        REQUIRE(attention_error_ratio(data.q.cview(), data.entry_keys(), data.entry_values(), c,
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
