// The CPU backend: weight storage per precision and the kernels the blocks call (xsimd + OpenMP),
// through the kernel table selected once per process (kernel_dispatch.hpp).
#pragma once

#include <cstddef>
#include <string_view>

#include "../../core/host_memory.hpp"
#include "../../core/precision.hpp"
#include "cpu_features.hpp"
#include "elementwise.hpp"
#include "kernel_dispatch.hpp"

namespace recurrent_depth {

struct CpuBackend {
  static constexpr std::string_view name = "cpu";
  using Memory = HostMemory;  // activations, KV cache and small parameters in host memory

  template <class Precision>
  using Weights =  // PackedWeights, or PackedQ4Weights for Q4
      StorageMatrix<typename Precision::Storage, cpu::PackedWeights, cpu::PackedQ4Weights>;

  // Throws when this CPU cannot run the program as compiled (cpu_features.hpp) or the kernels
  // asked for (RECURRENT_DEPTH_KERNELS); selects the kernels.
  static void check_machine() {
    cpu::require_cpu_features();
    (void)cpu::selected_kernels();
  }

  template <class W>
  static void linear(ConstMatrixView<float> x, const cpu::PackedWeights<W>& w, MatrixView<float> y,
                     bool accumulate = false) {
    cpu::selected_kernels().linear(x, w, y, accumulate);
  }
  static void linear(ConstMatrixView<float> x, const cpu::PackedQ4Weights& w, MatrixView<float> y,
                     bool accumulate = false) {
    cpu::selected_kernels().linear(x, w, y, accumulate);
  }
  static void rms_norm(ConstMatrixView<float> in, std::span<const float> weight, float eps,
                       MatrixView<float> out) {
    cpu::selected_kernels().rms_norm(in, weight, eps, out);
  }
  static void add_rms_norm(MatrixView<float> x, ConstMatrixView<float> delta,
                           std::span<const float> weight, float eps) {
    cpu::selected_kernels().add_rms_norm(x, delta, weight, eps);
  }
  static void silu_gate(ConstMatrixView<float> fc, MatrixView<float> out) {
    cpu::selected_kernels().silu_gate(fc, out);
  }
  static void rope_adjacent_pairs(MatrixView<float> x, std::size_t heads, std::size_t head_dim,
                                  std::span<const float> bias, ConstMatrixView<float> cos_sin,
                                  std::size_t first_position) {
    cpu::selected_kernels().rope_adjacent_pairs(x, heads, head_dim, bias, cos_sin, first_position);
  }
  static void causal_attention(ConstMatrixView<float> q, ConstMatrixView<float> keys,
                               ConstMatrixView<float> values, std::size_t heads,
                               std::size_t head_dim, std::size_t first_position,
                               MatrixView<float> out,
                               std::span<const std::int32_t> key_positions = {}) {
    cpu::selected_kernels().causal_attention(q, keys, values, heads, head_dim, first_position, out,
                                             key_positions);
  }
  static void causal_attention(ConstMatrixView<float> q, ConstMatrixView<bf16> keys,
                               ConstMatrixView<bf16> values, std::size_t heads,
                               std::size_t head_dim, std::size_t first_position,
                               MatrixView<float> out,
                               std::span<const std::int32_t> key_positions = {}) {
    cpu::selected_kernels().causal_attention_bf16(q, keys, values, heads, head_dim, first_position,
                                                  out, key_positions);
  }
  static void add(ConstMatrixView<float> a, ConstMatrixView<float> b, MatrixView<float> out) {
    cpu::selected_kernels().add(a, b, out);
  }
  static void copy(ConstMatrixView<float> in, MatrixView<float> out) { cpu::copy(in, out); }
  template <class Packed>
  static void gather_rows(const Packed& table, std::span<const std::int32_t> ids, float scale,
                          MatrixView<float> out) {
    cpu::gather_rows(table, ids, scale, out);
  }
};

}  // namespace recurrent_depth
