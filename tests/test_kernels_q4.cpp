// Kernel tests, q4 part: group-wise 4-bit quantisation (PackedQ4Weights: each value within half a
// step of its original, padding, layout offsets), cpu::linear with q4 weights (activations
// quantised per position, integer dot products per group of 32) against its scalar twin on every
// kernel table this CPU runs, its error against the float product of the dequantised weights, and
// the embedding gather of q4 rows. Method and tolerances: see kernel_test_support.hpp and
// kernel_test_cases.hpp.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <span>
#include <utility>
#include <vector>

#include "kernel_test_cases.hpp"
#include "kernel_test_support.hpp"
#include "recurrent_depth/backends/cpu/cpu_backend.hpp"
#include "recurrent_depth/backends/cpu/scalar_reference.hpp"

using namespace recurrent_depth;
using namespace recurrent_depth::kernel_test;

TEST_CASE("kernels: q4 packing keeps every weight within half a step", "[kernels][q4]") {
  Rng rng(401);
  for (std::size_t cols : {1, 3, 31, 32, 33, 64, 65, 100, 257, 300})
    for (std::size_t rows : {1, 3, 4, 5, 9}) {
      std::vector<float> source = nonzero_vector(rows * cols, rng, 0.001, 3.0);
      if (cols > 40) std::fill_n(source.begin() + 32, 32, 0.0f);  // row 0's second group: zero
      const Q4Weights w = Q4Weights::from_rows(std::span<const float>(source), rows, cols);
      INFO("rows " << rows << " cols " << cols);
      REQUIRE(w.rows() == rows);
      REQUIRE(w.cols() == cols);
      const std::size_t blocks = (cols + 63) / 64, tiles = (rows + 3) / 4;
      REQUIRE(w.blocks() == blocks);
      REQUIRE(w.bytes() == tiles * blocks * 4 * (32 + 4));  // 4.5 bits per weight, padded
      std::vector<float> row(cols);
      for (std::size_t r = 0; r < rows; ++r) {
        w.read_row(r, 1.0f, row);
        for (std::size_t g = 0; g < w.groups(); ++g) {
          const float scale = w.scale(r, g);
          int widest = 0;  // the largest |q - 8| of the group
          for (std::size_t c = g * 32; c < std::min(cols, g * 32 + 32); ++c) {
            const float original = source[r * cols + c];
            const float restored = scale * float(int(w.value(r, c)) - 8);
            REQUIRE(row[c] == restored);
            REQUIRE(std::abs(restored - original) <= 0.5 * std::abs(scale) * (1 + 1e-6));
            widest = std::max(widest, std::abs(int(w.value(r, c)) - 8));
          }
          for (std::size_t c = std::max(cols, g * 32); c < g * 32 + 32; ++c)
            REQUIRE(w.value(r, c) == 8);  // padding: zero
          if (g * 32 >= cols) REQUIRE(scale == 0.0f);
          const bool zero_group = r == 0 && g == 1 && cols > 40;
          if (zero_group) REQUIRE(scale == 0.0f);
          // The group's largest value takes the whole range: |q - 8| = 8 (or 7 when the other
          // sign widened the scale).
          if (g * 32 < cols && !zero_group) REQUIRE(widest >= 7);
        }
      }
    }
}

TEST_CASE("kernels: q4 scales are bf16, signed, and cover the other sign", "[kernels][q4]") {
  // One group: 1.0 takes q - 8 = -8 with scale -1/8; -0.99 would round to +8 (beyond +7) at that
  // scale, so the scale grows to 0.99 / 7.5, rounded up to bf16.
  std::vector<float> source(32, 0.01f);
  source[3] = 1.0f;
  source[7] = -0.99f;
  const Q4Weights w = Q4Weights::from_rows(std::span<const float>(source), 1, 32);
  const float scale = w.scale(0, 0);
  CHECK(scale < 0.0f);
  CHECK(-scale >= 0.99f / 7.5f);
  CHECK(-scale <= 0.99f / 7.5f * (1.0f + 1.0f / 128));
  CHECK(to_float(to_bf16(scale)) == scale);
  CHECK(int(w.value(0, 7)) - 8 == 7);
  // A single extreme: exactly -8 steps.
  source[7] = -0.5f;
  const Q4Weights v = Q4Weights::from_rows(std::span<const float>(source), 1, 32);
  CHECK(v.scale(0, 0) == -0.125f);
  CHECK(v.value(0, 3) == 0);
}

TEST_CASE("kernels: q4 packing rejects values that are not finite", "[kernels][q4]") {
  std::vector<float> source(70, 0.5f);
  source[65] = std::numeric_limits<float>::quiet_NaN();
  CHECK_THROWS_WITH(Q4Weights::from_rows(std::span<const float>(source), 1, 70),
                    Catch::Contains("NaN or an infinity"));
  CHECK_THROWS_WITH(Q4Weights::from_rows(std::span<const float>(source), 2, 70),
                    Catch::Contains("70 values for [2, 70]"));
}

TEST_CASE("kernels: linear with q4 weights matches the scalar twin", "[kernels][q4]") {
  for_each_kernel_table([&](const cpu::CpuKernels& kernels) {
    Rng rng(402);
    const auto check = [&](std::size_t M, std::size_t N, std::size_t K, bool accumulate) {
      check_linear_q4_case(M, N, K, accumulate, rng,
                           [&](Strided& x, const Q4Weights& w, Strided& y, bool add) {
                             kernels.linear(x.cview(), w, y.view, add);
                           });
    };
    for (bool accumulate : {false, true})
      for (std::size_t M : {1, 3, 4, 5})
        for (std::size_t N : {1, 6, 7, 13})
          for (std::size_t K : kColumns) check(M, N, K, accumulate);
    check(1, 67, 1000, false);  // many row tiles (the decode streams), long rows
    // Decode over threads (positions x rows x columns >= 2^18): 151 tiles, 75 and 76 per thread.
    check(1, 603, 450, false);
    check(3, 603, 450, true);
    check(5, 67, 1000, true);
    check(6, 203, 40, false);   // 51 tiles: several prefill tile groups per thread
    check(9, 13, 300, false);   // two groups of 4 positions and one left
    check(40, 67, 1000, true);  // a prompt over threads
    // 24 positions or more on VNNI: the broadcast panels, here in column chunks of 8 blocks
    // (2 chunks of 1100 columns, the second part empty), runs of 3 positions with 1 and 2 left,
    // a part panel of 13 rows and 51 tiles: a whole panel and a part one on each thread.
    check(24, 13, 1100, false);
    check(25, 13, 1100, true);
    check(26, 203, 100, false);
    check(27, 7, 3584, true);
    // 8 positions or more with AMX: the tiles of linear_q4_amx.hpp (the cases above from 9 take
    // them too there). One part group of positions and a part panel of 13 rows; 17 positions (a
    // group and one) against two panels; 51 tiles, 13 panels over both threads.
    check(12, 13, 300, false);
    check(17, 29, 1000, true);
    check(40, 203, 100, false);
    check(2, 5, 1056, false);  // huginn-mini's width: 16.5 blocks, a part chunk
    check(1, 9, 3584, true);

    // The comparison notices a kernel that does not quantise the activations (float x times the
    // dequantised weights) and one that forgets the -8 of the stored values.
    Strided x(3, 100);
    x.randomize(rng);
    const Q4Weights w = random_q4(5, 100, rng);
    const UnpackedQ4 u(w);
    Matrix<float> reference(3, 5), wrong(3, 5);
    Matrix<double> sizes(3, 5);
    MatrixView<double> size_view = sizes.view();
    cpu::scalar::linear_q4(x.cview(), u.q.view(), u.scales.view(), reference.view(), false,
                           &size_view);
    cpu::scalar::linear(x.cview(), u.dequantised.view(), wrong.view());
    CHECK(q4_error_ratio(w.groups(), {}, sizes.view(), reference.view(), wrong.view()) > 1.0);
    Matrix<float> unshifted(5, 100);
    for (std::size_t n = 0; n < 5; ++n)
      for (std::size_t k = 0; k < 100; ++k)
        unshifted(n, k) = u.dequantised(n, k) + 8 * u.scales(n, k / 32);
    cpu::scalar::linear(x.cview(), std::as_const(unshifted).view(), wrong.view());
    CHECK(q4_error_ratio(w.groups(), {}, sizes.view(), reference.view(), wrong.view()) > 1.0);
  });
}

TEST_CASE("kernels: q4 linear stays within the activation rounding bound", "[kernels][q4]") {
  for_each_kernel_table([&](const cpu::CpuKernels& kernels) {
    Rng rng(404);
    check_activation_rounding_bound(kernels, rng, random_q4,
                                    [](const Q4Weights& w) { return UnpackedQ4(w).dequantised; });
  });
}

TEST_CASE("kernels: gather_rows of q4 rows applies the groups' scales", "[kernels][q4]") {
  Rng rng(403);
  const std::size_t vocab = 11, width = 77;
  const std::vector<float> source = nonzero_vector(vocab * width, rng, 0.05, 2.0);
  const Q4Weights table = Q4Weights::from_rows(std::span<const float>(source), vocab, width);
  check_gather_rows(
      table, source,
      [&](std::size_t id, std::size_t c) {
        return 1.5f * (table.scale(id, c / 32) * float(int(table.value(id, c)) - 8));
      },
      [&](std::size_t id, std::size_t c) {
        return 0.75f * std::abs(table.scale(id, c / 32)) * (1.0f + 1e-5f);
      });
}
