// The definitions of HipBackend's operations (hip_backend.hpp), which launch the kernels of
// attention.hpp, elementwise.hpp and linear.hpp, and of the device probes (device_limits.hpp,
// device_limits_kernels.hpp). Include this in exactly one file compiled by a HIP compiler (hipcc,
// nvcc through HIP's NVIDIA headers, or a C++ compiler with HIP-CPU): the functions are defined
// here once, not inline, so that a program that never includes it fails to link, naming the
// function, and one that includes it twice names the duplicate. CMake's recurrent_depth_hip
// library is such a file (cmake/hip_backend_kernels.cpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "../../core/dtype.hpp"
#include "../../core/tensor.hpp"
#include "attention.hpp"
#include "device_limits_kernels.hpp"
#include "elementwise.hpp"
#include "hip_backend.hpp"
#include "linear.hpp"

namespace recurrent_depth {

template <class W>
void HipBackend::linear(ConstMatrixView<float> x, const hip::DeviceWeights<W>& w,
                        MatrixView<float> y, bool accumulate) {
  hip::linear(x, w, y, accumulate);
}

void HipBackend::linear(ConstMatrixView<float> x, const hip::DeviceQ4Weights& w,
                        MatrixView<float> y, bool accumulate) {
  hip::linear(x, w, y, accumulate);
}

void HipBackend::rms_norm(ConstMatrixView<float> in, std::span<const float> weight, float eps,
                          MatrixView<float> out) {
  hip::rms_norm(in, weight, eps, out);
}

void HipBackend::add_rms_norm(MatrixView<float> x, ConstMatrixView<float> delta,
                              std::span<const float> weight, float eps) {
  hip::add_rms_norm(x, delta, weight, eps);
}

void HipBackend::silu_gate(ConstMatrixView<float> fc, MatrixView<float> out) {
  hip::silu_gate(fc, out);
}

void HipBackend::rope_adjacent_pairs(MatrixView<float> x, std::size_t heads, std::size_t head_dim,
                                     std::span<const float> bias, ConstMatrixView<float> cos_sin,
                                     std::size_t first_position) {
  hip::rope_adjacent_pairs(x, heads, head_dim, bias, cos_sin, first_position);
}

template <class Key>
void HipBackend::causal_attention(ConstMatrixView<float> q, ConstMatrixView<Key> keys,
                                  ConstMatrixView<Key> values, std::size_t heads,
                                  std::size_t head_dim, std::size_t first_position,
                                  MatrixView<float> out,
                                  std::span<const std::int32_t> key_positions) {
  hip::causal_attention(q, keys, values, heads, head_dim, first_position, out, key_positions);
}

void HipBackend::add(ConstMatrixView<float> a, ConstMatrixView<float> b, MatrixView<float> out) {
  hip::add(a, b, out);
}

void HipBackend::copy(ConstMatrixView<float> in, MatrixView<float> out) {
  hip::copy(in, out);
}

template <class W>
void HipBackend::gather_rows(const hip::DeviceWeights<W>& table, std::span<const std::int32_t> ids,
                             float scale, MatrixView<float> out) {
  hip::gather_rows(table, ids, scale, out);
}

}  // namespace recurrent_depth

namespace recurrent_depth::hip {
// DeviceMemory::gather's kernel (device_memory.hpp).
void gather_rows_at(std::span<const float* const> sources, MatrixView<float> out) {
  require(sources.size() == out.rows, "hip::gather_rows_at: ", sources.size(), " sources for ",
          out.rows, " rows");
  launch("gather_addressed_rows", kernels::gather_addressed_rows<>, dim3(unsigned(out.rows)),
         dim3(kRowThreads), sources.data(), out.cols, out.data, out.stride);
}
// DeviceMemory::round_to_bf16's kernel.
void round_rows_to_bf16(ConstMatrixView<float> in, MatrixView<bf16> out) {
  copy(in, out);
}
}  // namespace recurrent_depth::hip

namespace recurrent_depth {

// The weight types HipBackend::Weights<Precision> stores (F32, BF16, INT8).
template void HipBackend::linear<float>(ConstMatrixView<float>, const hip::DeviceWeights<float>&,
                                        MatrixView<float>, bool);
template void HipBackend::linear<bf16>(ConstMatrixView<float>, const hip::DeviceWeights<bf16>&,
                                       MatrixView<float>, bool);
template void HipBackend::linear<std::int8_t>(ConstMatrixView<float>,
                                              const hip::DeviceWeights<std::int8_t>&,
                                              MatrixView<float>, bool);
template void HipBackend::gather_rows<float>(const hip::DeviceWeights<float>&,
                                             std::span<const std::int32_t>, float,
                                             MatrixView<float>);
template void HipBackend::gather_rows<bf16>(const hip::DeviceWeights<bf16>&,
                                            std::span<const std::int32_t>, float,
                                            MatrixView<float>);
template void HipBackend::gather_rows<std::int8_t>(const hip::DeviceWeights<std::int8_t>&,
                                                   std::span<const std::int32_t>, float,
                                                   MatrixView<float>);
// The KV cache's entry formats (cache/kv_format.hpp).
template void HipBackend::causal_attention<float>(ConstMatrixView<float>, ConstMatrixView<float>,
                                                  ConstMatrixView<float>, std::size_t, std::size_t,
                                                  std::size_t, MatrixView<float>,
                                                  std::span<const std::int32_t>);
template void HipBackend::causal_attention<bf16>(ConstMatrixView<float>, ConstMatrixView<bf16>,
                                                 ConstMatrixView<bf16>, std::size_t, std::size_t,
                                                 std::size_t, MatrixView<float>,
                                                 std::span<const std::int32_t>);

}  // namespace recurrent_depth
