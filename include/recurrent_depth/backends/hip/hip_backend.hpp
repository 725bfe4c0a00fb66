// The HIP backend for AMD GPUs (and, through HIP's NVIDIA headers, NVIDIA GPUs): the functions
// of CpuBackend (backends/cpu/cpu_backend.hpp), with the same signatures and the same results
// within float rounding, on views whose data lives in device memory (DeviceMatrix, DeviceBuffer;
// spans of weights, biases, ids and key positions too). Weights are DeviceWeights<float | bf16 |
// int8> or DeviceQ4Weights. Calls queue kernels on the thread's current stream (hip_runtime.hpp:
// ScopedStream) and return before they have run.
//
// Its Memory (device_memory.hpp) keeps a model's activations, KV cache and norm weights on the
// device, so RecurrentDepthModel<HipBackend, F32 | BF16 | INT8 | Q4> runs there, each session's
// work on its own stream.
//
// This header declares the functions and needs only HIP's host API: any C++ file can build and run
// models on HipBackend. Their definitions, which launch the kernels, are in
// hip_backend_kernels.hpp: include that in exactly one file compiled by a HIP compiler (CMake:
// link recurrent_depth_hip, which does). Tested: every kernel against the CPU's scalar twin
// (tests/hip/test_hip_kernels.cpp), the model against the reference vectors and the CPU model
// (tests/hip/test_hip_model.cpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "../../core/error.hpp"
#include "../../core/precision.hpp"
#include "../../core/tensor.hpp"
#include "device_buffer.hpp"
#include "device_memory.hpp"
#include "device_q4_weights.hpp"
#include "device_weights.hpp"
#include "hip_runtime.hpp"

namespace recurrent_depth {

struct HipBackend {
  static constexpr std::string_view name = "hip";
  using Memory = hip::DeviceMemory;  // activations, KV cache and small parameters on the device

  template <class Precision>
  using Weights =  // DeviceWeights, or DeviceQ4Weights for Q4
      StorageMatrix<typename Precision::Storage, hip::DeviceWeights, hip::DeviceQ4Weights>;

  // Throws when HIP sees no device.
  static void check_machine() {
    require(hip::device_count() > 0, "HipBackend: HIP finds no GPU (hipGetDeviceCount)");
  }

  // The operations (defined in hip_backend_kernels.hpp).
  template <class W>  // float, bf16 or std::int8_t
  static void linear(ConstMatrixView<float> x, const hip::DeviceWeights<W>& w, MatrixView<float> y,
                     bool accumulate = false);
  static void linear(ConstMatrixView<float> x, const hip::DeviceQ4Weights& w, MatrixView<float> y,
                     bool accumulate = false);
  static void rms_norm(ConstMatrixView<float> in, std::span<const float> weight, float eps,
                       MatrixView<float> out);
  static void add_rms_norm(MatrixView<float> x, ConstMatrixView<float> delta,
                           std::span<const float> weight, float eps);
  static void silu_gate(ConstMatrixView<float> fc, MatrixView<float> out);
  static void rope_adjacent_pairs(MatrixView<float> x, std::size_t heads, std::size_t head_dim,
                                  std::span<const float> bias, ConstMatrixView<float> cos_sin,
                                  std::size_t first_position);
  template <class Key>  // float or bf16: a KV cache's entries
  static void causal_attention(ConstMatrixView<float> q, ConstMatrixView<Key> keys,
                               ConstMatrixView<Key> values, std::size_t heads, std::size_t head_dim,
                               std::size_t first_position, MatrixView<float> out,
                               std::span<const std::int32_t> key_positions = {});
  static void add(ConstMatrixView<float> a, ConstMatrixView<float> b, MatrixView<float> out);
  static void copy(ConstMatrixView<float> in, MatrixView<float> out);
  template <class W>  // float, bf16 or std::int8_t
  static void gather_rows(const hip::DeviceWeights<W>& table, std::span<const std::int32_t> ids,
                          float scale, MatrixView<float> out);
};

}  // namespace recurrent_depth
