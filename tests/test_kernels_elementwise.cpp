// Kernel tests, row-wise part: rms_norm, add_rms_norm, silu_gate, gather_rows, add and copy.
// Method and tolerances: see kernel_test_support.hpp.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "kernel_test_cases.hpp"
#include "kernel_test_support.hpp"
#include "recurrent_depth/backends/cpu/cpu_backend.hpp"
#include "recurrent_depth/backends/cpu/scalar_reference.hpp"

using namespace recurrent_depth;
using namespace recurrent_depth::kernel_test;

namespace {

// ---------------------------------------------------------------------------------------------
// rms_norm, add_rms_norm, silu_gate (their tolerances: kernel_test_cases.hpp)

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

}  // namespace

// =============================================================================================

TEST_CASE("kernels: rms_norm matches the scalar twin", "[kernels][norm]") {
  for_each_kernel_table([&](const cpu::CpuKernels& kernels) {
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
        kernels.rms_norm(in.cview(), weight, eps, fast.view);
        cpu::scalar::rms_norm(in.cview(), weight, eps, reference.view);
        INFO("rows " << rows << " cols " << cols << " eps " << eps);
        REQUIRE(fast.guards_intact());
        REQUIRE(norm_error_ratio(reference.cview(), fast.cview()) <= 1.0);

        // In place (the model normalises the head's input in place): the same result, bit for bit.
        Strided in_place(rows, cols, 1, 2);
        in_place.copy_from(in.cview());
        kernels.rms_norm(in_place.cview(), weight, eps, in_place.view);
        REQUIRE(in_place.guards_intact());
        for (std::size_t r = 0; r < rows; ++r)
          for (std::size_t c = 0; c < cols; ++c) REQUIRE(in_place.view(r, c) == fast.view(r, c));
      }
  });
}

TEST_CASE("kernels: add_rms_norm matches the scalar twin", "[kernels][norm]") {
  for_each_kernel_table([&](const cpu::CpuKernels& kernels) {
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
        kernels.add_rms_norm(x.view, delta.cview(), weight, eps);
        cpu::scalar::add_rms_norm(reference.view, delta.cview(), weight, eps);
        INFO("rows " << rows << " cols " << cols << " eps " << eps);
        REQUIRE(x.guards_intact());
        REQUIRE(delta.guards_intact());
        REQUIRE(norm_error_ratio(reference.cview(), x.cview()) <= 1.0);
      }
  });
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
  for_each_kernel_table([&](const cpu::CpuKernels& kernels) {
    Rng rng(301);
    std::vector<std::pair<std::size_t, std::size_t>> shapes;
    for (std::size_t rows : kRowCounts)
      for (std::size_t cols : kColumns) shapes.push_back({rows, cols});
    shapes.push_back({130, 257});
    for (const auto& [rows, n] : shapes) {
      Strided fc = silu_input(rows, n, rng);
      Strided fast(rows, n, 1, 2), reference(rows, n, 0, 0);
      fast.fill(kNaN);
      kernels.silu_gate(fc.cview(), fast.view);
      cpu::scalar::silu_gate(fc.cview(), reference.view);
      INFO("rows " << rows << " n " << n);
      REQUIRE(fast.guards_intact());
      REQUIRE(silu_error_ratio(reference.cview(), fast.cview()) <= 1.0);
    }
  });
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

TEST_CASE("kernels: gather_rows, add and copy", "[kernels][elementwise]") {
  for_each_kernel_table([&](const cpu::CpuKernels& kernels) {
    Rng rng(601);
    const std::size_t rows = 11, cols = 33;
    const std::vector<float> source = nonzero_vector(rows * cols, rng, 0.25, 1.0);
    const auto f32 =
        cpu::PackedWeights<float>::from_rows(std::span<const float>(source), rows, cols);
    const auto b16 =
        cpu::PackedWeights<bf16>::from_rows(std::span<const float>(source), rows, cols);
    const std::vector<std::int32_t> ids = {3, 0, 10, 3, 7};
    const float scale = std::sqrt(33.0f);
    Strided out(ids.size(), cols, 1, 2);
    CpuBackend::gather_rows(f32, ids, scale, out.view);
    REQUIRE(out.guards_intact());
    for (std::size_t t = 0; t < ids.size(); ++t)
      for (std::size_t c = 0; c < cols; ++c)
        REQUIRE(out.view(t, c) == source[ids[t] * cols + c] * scale);
    CpuBackend::gather_rows(b16, ids, scale, out.view);
    for (std::size_t t = 0; t < ids.size(); ++t)
      for (std::size_t c = 0; c < cols; ++c)
        REQUIRE(out.view(t, c) == to_float(to_bf16(source[ids[t] * cols + c])) * scale);

    check_add_and_copy(
        rng,
        [&](Strided& a, Strided& b, Strided& out) { kernels.add(a.cview(), b.cview(), out.view); },
        [](Strided& in, Strided& out) { cpu::copy(in.cview(), out.view); },
        [&](Strided& a, Strided& b) { kernels.add(a.cview(), b.cview(), a.view); });
  });
}
