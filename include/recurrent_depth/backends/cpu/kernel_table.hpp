// CpuKernels: one complete set of the CPU kernels as a table of function pointers, named after the
// compile flags it was built with. compiled_kernel_table() fills it from the kernels of the
// including translation unit (its inline kernel namespace, simd.hpp); kernel_dispatch.hpp picks,
// once per process, the best table the running CPU can execute among those linked in.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "../../core/dtype.hpp"
#include "../../core/tensor.hpp"
#include "attention.hpp"
#include "cpu_features.hpp"
#include "elementwise.hpp"
#include "linear.hpp"
#include "linear_q4.hpp"
#include "machine_probes.hpp"
#include "packed_q4.hpp"
#include "packed_weights.hpp"

#define RECURRENT_DEPTH_STRINGIFY_NAME(name) #name
#define RECURRENT_DEPTH_STRINGIFY(name) RECURRENT_DEPTH_STRINGIFY_NAME(name)

namespace recurrent_depth::cpu {

struct CpuKernels {
  template <class W>
  using Linear = void (*)(ConstMatrixView<float>, const PackedWeights<W>&, MatrixView<float>, bool);
  template <class Key>
  using Attention = void (*)(ConstMatrixView<float> q, ConstMatrixView<Key> keys,
                             ConstMatrixView<Key> values, std::size_t heads, std::size_t head_dim,
                             std::size_t first_position, MatrixView<float> out,
                             std::span<const std::int32_t> key_positions);

  const char* name;         // the kernel namespace: "compiled" or a variant ("x86_64_v3", ...)
  const char* simd;         // xsimd's name for the SIMD architecture ("avx512bw", "avx2", "sse2")
  unsigned cpu_features;    // CpuFeature bits the code may use
  std::size_t float_lanes;  // floats per SIMD batch
  // A bound on the relative error of the activations in the products with bf16 weights: 0 where
  // they stay float, 2^-16 where the AMX tiles take them as two bf16 parts (8 positions or more),
  // 2^-8 where vdpbf16ps takes them rounded to bf16 (x86_64_v4_bf16, 32 positions or more).
  double bf16_activation_error;
  // Selected only when named (RECURRENT_DEPTH_KERNELS), never as the best of the machine: its
  // results are less exact than the other tables'.
  bool by_name_only;

  Linear<float> linear_f32;
  Linear<bf16> linear_bf16;
  Linear<std::int8_t> linear_int8;
  void (*linear_q4)(ConstMatrixView<float>, const PackedQ4Weights&, MatrixView<float>, bool);
  void (*rms_norm)(ConstMatrixView<float> in, std::span<const float> weight, float eps,
                   MatrixView<float> out);
  void (*add_rms_norm)(MatrixView<float> x, ConstMatrixView<float> delta,
                       std::span<const float> weight, float eps);
  void (*silu_gate)(ConstMatrixView<float> fc, MatrixView<float> out);
  void (*rope_adjacent_pairs)(MatrixView<float> x, std::size_t heads, std::size_t head_dim,
                              std::span<const float> bias, ConstMatrixView<float> cos_sin,
                              std::size_t first_position);
  Attention<float> causal_attention;  // over a KV cache of float32 entries
  Attention<bf16> causal_attention_bf16;
  void (*add)(ConstMatrixView<float> a, ConstMatrixView<float> b, MatrixView<float> out);

  // The machine probes in the same instructions (machine_probes.hpp): peaks in 1e9 operations
  // per second on the team, from `passes` timed passes per thread. int8_dot_peak is null where
  // the table has no int8 dot-product instruction; bf16_tile_peak where the bf16 kernel does not
  // use the AMX tiles; bf16_vector_dot_peak where the table is not built for AVX-512 (it returns
  // 0 where the CPU lacks AVX-512 BF16).
  float (*sum_streams)(const float* p, std::size_t n, ReadPattern pattern);
  double (*fma_peak)(int passes);
  double (*int8_dot_peak)(int passes);
  double (*bf16_tile_peak)(int passes);
  double (*bf16_vector_dot_peak)(int passes);

  // y = x W^T (y += x W^T when accumulate), for any stored weight format.
  void linear(ConstMatrixView<float> x, const PackedWeights<float>& w, MatrixView<float> y,
              bool accumulate = false) const {
    linear_f32(x, w, y, accumulate);
  }
  void linear(ConstMatrixView<float> x, const PackedWeights<bf16>& w, MatrixView<float> y,
              bool accumulate = false) const {
    linear_bf16(x, w, y, accumulate);
  }
  void linear(ConstMatrixView<float> x, const PackedWeights<std::int8_t>& w, MatrixView<float> y,
              bool accumulate = false) const {
    linear_int8(x, w, y, accumulate);
  }
  void linear(ConstMatrixView<float> x, const PackedQ4Weights& w, MatrixView<float> y,
              bool accumulate = false) const {
    linear_q4(x, w, y, accumulate);
  }
};

}  // namespace recurrent_depth::cpu

namespace recurrent_depth::cpu {
inline namespace RECURRENT_DEPTH_KERNEL_NAMESPACE {

// The kernels of this translation unit, as a table.
inline constexpr CpuKernels compiled_kernel_table() {
  CpuKernels k{};
  k.name = RECURRENT_DEPTH_STRINGIFY(RECURRENT_DEPTH_KERNEL_NAMESPACE);
  k.simd = Arch::name();
  k.cpu_features = compiled_cpu_features();
  k.float_lanes = kFloatLanes;
#if defined(__AMX_TILE__) && defined(__AMX_BF16__)
  k.bf16_activation_error = kAmxBf16ActivationError;
#elif defined(RECURRENT_DEPTH_BF16_DOT_PROMPTS)
  k.bf16_activation_error = kBf16DotActivationError;
  k.by_name_only = true;
#endif
  k.linear_f32 = &linear<float>;
  k.linear_bf16 = &linear<bf16>;
  k.linear_int8 = &linear<std::int8_t>;
  k.linear_q4 = &linear_q4;
  k.rms_norm = &rms_norm;
  k.add_rms_norm = &add_rms_norm;
  k.silu_gate = &silu_gate;
  k.rope_adjacent_pairs = &rope_adjacent_pairs;
  k.causal_attention = &causal_attention<float>;
  k.causal_attention_bf16 = &causal_attention<bf16>;
  k.add = &add;
  k.sum_streams = &detail::sum_streams;
  k.fma_peak = &detail::fma_peak;
#if defined(__AMX_TILE__) && defined(__AMX_INT8__)  // the prefill kernel's instruction
  k.int8_dot_peak = &detail::amx_tile_peak<detail::AmxProduct::int8>;
#elif defined(__AVX512VNNI__)
  k.int8_dot_peak = &detail::int8_dot_peak;
#endif
#if defined(__AMX_TILE__) && defined(__AMX_BF16__)
  k.bf16_tile_peak = &detail::amx_tile_peak<detail::AmxProduct::bf16>;
#endif
#if defined(__AVX512F__)
  k.bf16_vector_dot_peak = &detail::bf16_vector_dot_peak;
#endif
  return k;
}

}  // namespace RECURRENT_DEPTH_KERNEL_NAMESPACE
}  // namespace recurrent_depth::cpu
