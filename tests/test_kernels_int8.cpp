// Kernel tests, int8 part: per-row symmetric quantisation (PackedWeights<int8_t>), the int8 ->
// float loads, cpu::linear with int8 weights (activations quantised per position, integer dot
// products) against its scalar twin, its error against the float product, and the embedding
// gather of int8 rows. Method and tolerances: see kernel_test_support.hpp.
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

using namespace recurrent_depth;
using namespace recurrent_depth::kernel_test;

namespace {

template <class A>
void check_int8_loads() {
  constexpr std::size_t lanes = xsimd::batch<float, A>::size;
  std::vector<std::int8_t> all(256 + 2 * lanes);
  for (std::size_t i = 0; i < all.size(); ++i) all[i] = static_cast<std::int8_t>(i * 37u);
  alignas(64) float out[lanes];
  for (std::size_t start : {std::size_t(0), std::size_t(1), lanes - 1, std::size_t(200)}) {
    cpu::load_floats<A>(all.data() + start).store_aligned(out);
    for (std::size_t l = 0; l < lanes; ++l) REQUIRE(out[l] == float(all[start + l]));
  }
}

}  // namespace

TEST_CASE("kernels: int8 quantisation rounds each row to its own scale", "[kernels][int8]") {
  Rng rng(301);
  for (std::size_t cols : kColumns) {
    const std::size_t rows = 5;
    std::vector<float> source = nonzero_vector(rows * cols, rng, 0.01, 3.0);
    std::fill_n(source.begin() + std::ptrdiff_t(3 * cols), cols, 0.0f);  // one zero row
    const Int8Weights w = Int8Weights::from_rows(std::span<const float>(source), rows, cols);
    REQUIRE(w.scales().size() == rows);
    const std::size_t padded_rows = (rows + 3) / 4 * 4, padded_cols = (cols + 63) / 64 * 64;
    CHECK(w.bytes() == padded_rows * padded_cols + rows * (sizeof(float) + sizeof(std::int32_t)));
    for (std::size_t r = 0; r < rows; ++r) {
      const std::span<const float> row(source.data() + r * cols, cols);
      float largest = 0.0f;
      for (float v : row) largest = std::max(largest, std::abs(v));
      INFO("cols " << cols << " row " << r);
      if (largest == 0.0f) {
        CHECK(w.scales()[r] == 1.0f);
        for (std::size_t c = 0; c < cols; ++c) CHECK(w.value(r, c) == 0);
        CHECK(w.row_sums()[r] == 0);
        continue;
      }
      CHECK(w.scales()[r] == largest / 127.0f);
      int extreme = 0, sum = 0;
      for (std::size_t c = 0; c < cols; ++c) {
        const float restored = w.scales()[r] * float(w.value(r, c));
        CHECK(std::abs(restored - row[c]) <= 0.5f * w.scales()[r] * (1.0f + 1e-5f));
        extreme = std::max(extreme, std::abs(int(w.value(r, c))));
        sum += w.value(r, c);
      }
      CHECK(extreme == 127);  // the largest magnitude uses the whole range
      CHECK(w.row_sums()[r] == sum);
    }
  }
}

TEST_CASE("kernels: activations quantise as quantise_activation, ties to even", "[kernels][int8]") {
  Rng rng(307);
  for (std::size_t cols : kColumns) {
    const std::size_t rows = 9;  // from 8 positions the rows are split over the threads
    std::vector<float> source = nonzero_vector(rows * cols, rng, 0.01, 3.0);
    // Row 0 has the scale 1 and halves, which round to the even neighbour.
    source[0] = 127.0f;
    const float halves[] = {2.5f, -3.5f, 0.5f, -0.5f, 126.5f, -1.5f};
    for (std::size_t c = 1; c < cols; ++c) source[c] = halves[c % 6];
    Matrix<float> x(rows, cols);
    for (std::size_t r = 0; r < rows; ++r) std::copy_n(source.data() + r * cols, cols, x.row(r));
    const std::size_t padded = (cols + 63) / 64 * 64;
    Matrix<std::uint8_t> q;
    std::vector<float> scales;
    cpu::detail::quantise_activations(x.view(), padded, q, scales);
    REQUIRE(scales.size() == rows);
    CHECK(scales[0] == 1.0f);
    for (std::size_t r = 0; r < rows; ++r) {
      INFO("cols " << cols << " row " << r);
      CHECK(scales[r] == cpu::activation_scale(x.row(r), cols));
      for (std::size_t c = 0; c < cols; ++c)
        REQUIRE(q(r, c) == cpu::quantise_activation(x(r, c), scales[r]));
      for (std::size_t c = cols; c < padded; ++c) REQUIRE(q(r, c) == 128);
    }
    if (cols > 4) CHECK(int(q(0, 1)) - 128 == -4);   // -3.5
    if (cols > 4) CHECK(int(q(0, 4)) - 128 == 126);  // 126.5
  }
}

TEST_CASE("kernels: load_floats(int8) converts exactly", "[kernels][int8]") {
  check_int8_loads<cpu::Arch>();
  check_int8_loads<xsimd::sse2>();
#if defined(__AVX2__)
  check_int8_loads<xsimd::avx2>();
#endif
#if defined(__AVX512F__)
  check_int8_loads<xsimd::avx512f>();
#endif
}

TEST_CASE("kernels: linear with int8 weights matches the scalar twin", "[kernels][int8]") {
  for_each_kernel_table([&](const cpu::CpuKernels& kernels) {
    Rng rng(302);
    const auto check = [&](std::size_t M, std::size_t N, std::size_t K, bool accumulate) {
      Strided x(M, K);
      x.randomize(rng, 0.01, 3.0);
      const Int8Weights w = random_int8(N, K, rng);
      const Matrix<std::int8_t> q = unpacked(w);
      Strided fast(M, N, 1, 2), reference(M, N, 0, 0);
      const std::vector<float> initial = start_outputs(fast, reference, accumulate, rng);
      kernels.linear(x.cview(), w, fast.view, accumulate);
      cpu::scalar::linear_int8(x.cview(), q.view(), w.scales(), reference.view, accumulate);
      INFO("M " << M << " N " << N << " K " << K << " accumulate " << accumulate);
      REQUIRE(fast.guards_intact());
      REQUIRE(int8_error_ratio(initial, reference.cview(), fast.cview()) <= 1.0);
    };
    for (bool accumulate : {false, true})
      for (std::size_t M : {1, 3, 4, 5})
        for (std::size_t N : {1, 6, 7, 13})
          for (std::size_t K : kColumns) check(M, N, K, accumulate);
    check(1, 67, 1000, false);  // many row tiles (the decode streams), a long reduction
    // Decode over threads (positions x rows x columns >= 2^18): 151 tiles, 75 and 76 per thread.
    check(1, 603, 450, false);
    check(3, 603, 450, true);
    check(5, 67, 1000, true);
    check(6, 203, 40, false);  // 51 tiles: several prefill tile groups per thread
    // 12 positions or more: the AMX tiles where the table has them (groups of 16 positions, two
    // weight tiles and two groups at a time; odd counts of each, a last group part empty).
    for (std::size_t M : {12, 16, 17, 35})
      for (std::size_t N : {1, 7, 13})
        for (std::size_t K : {1, 33, 257}) check(M, N, K, M == 17);
    check(40, 67, 1000, true);  // over threads, a long reduction
    // 24 positions or more on VNNI without AMX: the broadcast panels, here in 3 column chunks
    // (kPanelChunkBlocks), 4 groups of kPanelPositions, a part panel of 13 rows.
    check(24, 13, 1100, false);
    check(29, 13, 1100, true);
    for (std::size_t M : {25, 26, 27}) check(M, 7, 100, M == 26);  // 1, 2 and 3 positions left
    // AMX in column chunks, the integer sums carried from one to the next
    // (kAmxActivationChunkBytes, 768 KB: 12 positions take 1 KB of activation tiles per 64
    // columns, so 49300 make two).
    check(12, 7, 49300, false);
    check(12, 7, 49300, true);

    // The comparison notices a kernel that does not quantise the activations (float x times the
    // int8 weights) and one that forgets the offset correction of the unsigned activations.
    Strided x(3, 100);
    x.randomize(rng);
    const Int8Weights w = random_int8(5, 100, rng);
    const Matrix<std::int8_t> q = unpacked(w);
    Matrix<float> reference(3, 5), wrong(3, 5);
    cpu::scalar::linear_int8(x.cview(), q.view(), w.scales(), reference.view());
    cpu::scalar::linear(x.cview(), q.view(), wrong.view());
    for (std::size_t m = 0; m < 3; ++m)
      for (std::size_t n = 0; n < 5; ++n) wrong(m, n) *= w.scales()[n];
    CHECK(int8_error_ratio({}, reference.view(), wrong.view()) > 1.0);
    for (std::size_t m = 0; m < 3; ++m) {
      const float step = cpu::activation_scale(x.view.row(m), 100);
      for (std::size_t n = 0; n < 5; ++n)
        wrong(m, n) = reference(m, n) + 128.0f * float(w.row_sums()[n]) * step * w.scales()[n];
    }
    CHECK(int8_error_ratio({}, reference.view(), wrong.view()) > 1.0);
  });
}

TEST_CASE("kernels: int8 linear stays within the activation rounding bound", "[kernels][int8]") {
  for_each_kernel_table([&](const cpu::CpuKernels& kernels) {
    Rng rng(304);
    check_activation_rounding_bound(kernels, rng, random_int8, [](const Int8Weights& w) {
      Matrix<float> restored(w.rows(), w.cols());
      for (std::size_t r = 0; r < w.rows(); ++r) w.read_row(r, 1.0f, restored.row_span(r));
      return restored;
    });
  });
}

TEST_CASE("kernels: gather_rows of int8 rows applies each row's scale", "[kernels][int8]") {
  Rng rng(303);
  const std::size_t vocab = 11, width = 37;
  const std::vector<float> source = nonzero_vector(vocab * width, rng, 0.05, 2.0);
  const Int8Weights table = Int8Weights::from_rows(std::span<const float>(source), vocab, width);
  check_gather_rows(
      table, source,
      [&](std::size_t id, std::size_t c) {
        return float(table.value(id, c)) * (1.5f * table.scales()[id]);
      },
      [&](std::size_t id, std::size_t) { return 0.75f * table.scales()[id] * (1.0f + 1e-5f); });
}
