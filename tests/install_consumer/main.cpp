// Compiled by an outside project against recurrent_depth: checks that the headers, the C++20
// requirement and the dependencies all come through the exported target, and that the kernel
// variants of recurrent_depth_add_kernel_variants() are linked in and compute.
#include <recurrent_depth/backends/cpu/kernel_dispatch.hpp>
#include <recurrent_depth/core/dtype.hpp>

#include <cmath>
#include <cstdio>
#include <vector>

int main() {
  namespace rd = recurrent_depth;
  struct Case {
    float in, expected;
  };
  const Case cases[] = {
      {1.5f, 1.5f},                    // exactly representable
      {-3.0f, -3.0f},                  // sign
      {1.0f + 1.0f / 256, 1.0f},       // halfway between 1 and 1 + 2^-7: ties to even (down)
      {1.0f + 3.0f / 256, 1.015625f},  // halfway, odd neighbour below: ties to even (up)
      {3.14159265f, 3.140625f},        // nearest bf16
  };
  int failures = 0;
  for (const Case& c : cases) {
    const float out = rd::to_float(rd::to_bf16(c.in));
    if (out != c.expected) {
      std::printf("bf16 round trip of %.9g gave %.9g, expected %.9g\n", c.in, out, c.expected);
      ++failures;
    }
  }
  if (rd::dtype_size(rd::DType::BF16) != 2) ++failures;

  // Every kernel table this CPU runs computes a small y = x W^T.
  const std::size_t n = 5, k = 37;
  std::vector<float> w(n * k), x(k);
  for (std::size_t i = 0; i < w.size(); ++i) w[i] = 0.01f * float((i * 7) % 23) - 0.1f;
  for (std::size_t i = 0; i < k; ++i) x[i] = 0.5f - 0.03f * float(i);
  const auto packed = rd::cpu::PackedWeights<float>::from_rows(std::span<const float>(w), n, k);
  const auto tables = rd::cpu::runnable_kernels();
#if defined(RECURRENT_DEPTH_WITH_KERNELS_X86_64_V3) || \
    defined(RECURRENT_DEPTH_WITH_KERNELS_X86_64_V4_VNNI)
  if (rd::cpu::linked_kernels().size() < 2) {
    std::printf("the kernel variants are not linked in\n");
    ++failures;
  }
#endif
  for (const rd::cpu::CpuKernels* table : tables) {
    float y[n];
    table->linear(rd::ConstMatrixView<float>(x.data(), 1, k), packed,
                  rd::MatrixView<float>(y, 1, n));
    for (std::size_t r = 0; r < n; ++r) {
      double expected = 0.0;
      for (std::size_t c = 0; c < k; ++c) expected += double(x[c]) * w[r * k + c];
      if (std::abs(y[r] - expected) > 1e-5) {
        std::printf("kernels %s: y[%zu] = %g, expected %g\n", table->name, r, y[r], expected);
        ++failures;
      }
    }
  }
  std::printf("recurrent_depth consumer: kernels %s of %zu runnable\n",
              rd::cpu::selected_kernels().name, tables.size());
  std::printf("recurrent_depth consumer: %s\n", failures == 0 ? "ok" : "FAILED");
  return failures == 0 ? 0 : 1;
}
