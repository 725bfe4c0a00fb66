// Shared helpers of the kernel tests (tests/test_kernels_*.cpp). Those test every SIMD kernel of
// the CPU backend against its plain scalar twin (cpu::scalar, double accumulation) on seeded
// random data that is never zero: sizes that are not multiples of the vector width, views that
// start one element into their buffer, rows strided wider than they are (the padding holds guard
// values that must survive), and tolerances derived per output from the data and float32's
// epsilon. Each comparison has a sanity case showing that a plausibly wrong kernel (a dropped tail
// element, an off-by-one mask, a wrong rotation...) fails it.
#pragma once

#include <catch2/catch.hpp>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstddef>
#include <limits>
#include <span>
#include <type_traits>
#include <vector>

#include "recurrent_depth/backends/cpu/cpu_backend.hpp"
#include "recurrent_depth/backends/cpu/kernel_dispatch.hpp"
#include "recurrent_depth/backends/cpu/scalar_reference.hpp"
#include "recurrent_depth/core/random.hpp"

namespace recurrent_depth::kernel_test {
inline constexpr double kEps = FLT_EPSILON;  // 2^-23, one ulp of 1.0f
inline constexpr float kGuard = -12345.0f;
inline const float kNaN = std::numeric_limits<float>::quiet_NaN();
inline constexpr double kInf = std::numeric_limits<double>::infinity();

// Runs check(kernels) once per kernel table this CPU can run (the compiled one and each variant
// linked into the tests, kernel_dispatch.hpp), each in its own section named after the table.
template <class Check>
void for_each_kernel_table(Check&& check) {
  for (const cpu::CpuKernels* kernels : cpu::runnable_kernels())
    DYNAMIC_SECTION("kernels " << kernels->name << " (" << kernels->simd << ")") {
      check(*kernels);
    }
}

inline constexpr std::size_t kColumns[] = {1, 3, 15, 17, 33, 96, 100, 257};
inline constexpr std::size_t kRowCounts[] = {1, 2, 3, 5, 7};

// Magnitude uniform in [lo, hi], random sign: never zero.
inline float nonzero(Rng& rng, double lo = 0.25, double hi = 1.0) {
  const double magnitude = lo + (hi - lo) * rng.uniform();
  return static_cast<float>(rng.uniform() < 0.5 ? -magnitude : magnitude);
}

// Ratio of an error to its bound; NaN (an output never written, or garbage) is infinitely bad.
inline double ratio(double error, double bound) {
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
    if constexpr (std::is_same_v<W, float>)
      return v;
    else
      return to_bf16(v);
  }
};

inline std::vector<float> nonzero_vector(std::size_t n, Rng& rng, double lo, double hi) {
  std::vector<float> v(n);
  for (float& x : v) x = nonzero(rng, lo, hi);
  return v;
}

// Worst ratio over outputs of |result - reference| to the dot-product bound
//   (2 eps sqrt(K) + a) sum_k |x_k w_k|  (+ eps |y0| when accumulating)  + eps |reference|,
// the last term for the reference's own rounding to float; a (activation_error) bounds the
// relative error of activations a kernel rounds before its products (the AMX bf16 products).
template <class W>
double linear_error_ratio(ConstMatrixView<float> x, ConstMatrixView<W> w,
                          const std::vector<float>& initial, ConstMatrixView<float> reference,
                          ConstMatrixView<float> result, double activation_error = 0.0) {
  double worst = 0.0;
  const double root_k = std::sqrt(static_cast<double>(x.cols));
  for (std::size_t m = 0; m < x.rows; ++m)
    for (std::size_t n = 0; n < w.rows; ++n) {
      double magnitude = 0.0;
      for (std::size_t k = 0; k < x.cols; ++k)
        magnitude += std::abs(double(x(m, k)) * double(cpu::load_scalar(&w(n, k))));
      double bound = (2.0 * kEps * root_k + activation_error) * magnitude +
                     kEps * std::abs(double(reference(m, n)));
      if (!initial.empty()) bound += kEps * std::abs(double(initial[m * w.rows + n]));
      worst = std::max(worst, ratio(std::abs(double(result(m, n)) - reference(m, n)), bound));
    }
  return worst;
}

// Prepares the outputs [M, N] of a kernel and its twin: random initial values in both (returned)
// when accumulating, else NaN, which the kernel must overwrite.
inline std::vector<float> start_outputs(Strided& fast, Strided& reference, bool accumulate,
                                        Rng& rng) {
  if (!accumulate) {
    fast.fill(kNaN);
    reference.fill(kNaN);
    return {};
  }
  const std::size_t M = fast.view.rows, N = fast.view.cols;
  std::vector<float> initial = nonzero_vector(M * N, rng, 0.5, 4.0);
  for (std::size_t m = 0; m < M; ++m)
    for (std::size_t n = 0; n < N; ++n) fast.view(m, n) = reference.view(m, n) = initial[m * N + n];
  return initial;
}

// Gathers rows {3, 0, 10, 3} of an 11-row embedding table packed from `source` at scale 1.5 and
// checks each value: exactly gathered(id, c) (the stored value times its scales, in the gather's
// order), and within error(id, c) of 1.5 x the source value.
template <class Table, class Gathered, class Error>
void check_gather_rows(const Table& table, const std::vector<float>& source, Gathered&& gathered,
                       Error&& error) {
  const std::size_t width = table.cols();
  const std::vector<std::int32_t> ids = {3, 0, 10, 3};
  Matrix<float> out(ids.size(), width);
  CpuBackend::gather_rows(table, ids, 1.5f, out.view());
  for (std::size_t t = 0; t < ids.size(); ++t)
    for (std::size_t c = 0; c < width; ++c) {
      const auto id = static_cast<std::size_t>(ids[t]);
      CHECK(out(t, c) == gathered(id, c));
      CHECK(std::abs(out(t, c) - 1.5f * source[id * width + c]) <= error(id, c));
    }
}

// A kernel with quantised weights (make(N, K, rng) packs random ones, dequantise(w) gives them
// back as float [N, K]) against the float product with the dequantised weights w':
// y - x . w' = sum_k (s round(x_k / s) - x_k) w'_k, each term at most s / 2 |w'_k| (s: the
// position's activation step).
template <class Make, class Dequantise>
void check_activation_rounding_bound(const cpu::CpuKernels& kernels, Rng& rng, Make&& make,
                                     Dequantise&& dequantise) {
  for (std::size_t K : {33, 257, 1000}) {
    const std::size_t M = 3, N = 9;
    Strided x(M, K);
    x.randomize(rng, 0.001, 5.0);
    const auto w = make(N, K, rng);
    const Matrix<float> restored = dequantise(w);
    Matrix<float> fast(M, N), exact(M, N);
    kernels.linear(x.cview(), w, fast.view());
    cpu::scalar::linear(x.cview(), restored.view(), exact.view());
    for (std::size_t m = 0; m < M; ++m) {
      const double step = cpu::activation_scale(x.view.row(m), K);
      for (std::size_t n = 0; n < N; ++n) {
        double magnitude = 0.0;
        for (std::size_t k = 0; k < K; ++k) magnitude += std::abs(double(restored(n, k)));
        const double error = std::abs(double(fast(m, n)) - exact(m, n));
        INFO("K " << K << " m " << m << " n " << n);
        CHECK(error <= 0.5 * step * magnitude * (1 + 1e-5) + 1e-5 * std::abs(fast(m, n)));
      }
    }
  }
}

}  // namespace recurrent_depth::kernel_test
