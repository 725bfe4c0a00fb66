// The HIP side of the HIP kernel tests, behind plain host types: each function uploads its
// inputs, calls one HipBackend kernel on the device and downloads the outputs.
// hip_kernel_runner.cpp is compiled by hipcc and includes only the HIP backend;
// test_hip_kernels.cpp, compiled by the project's C++ compiler, holds the tests, the CPU's scalar
// twins and the tolerances (the CPU kernel headers use x86 builtins that a HIP compilation, which
// also compiles host code for the GPU, rejects).
//
// A HostView names a matrix inside a host buffer (a kernel_test::Strided): the whole buffer, the
// guard values around the matrix included, goes to the device and comes back, so a kernel that
// writes outside its view is seen.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "recurrent_depth/backends/cpu/packed_q4.hpp"
#include "recurrent_depth/backends/cpu/packed_weights.hpp"
#include "recurrent_depth/core/dtype.hpp"
#include "recurrent_depth/core/tensor.hpp"

namespace recurrent_depth::hip_test {

struct HostView {
  std::vector<float>* buffer;
  std::size_t offset, rows, cols, stride;
};

// Devices HIP sees (0 without a GPU or a driver).
int device_count();

// Allocates `count` floats of device memory and frees them (throws Error when refused).
void allocate_floats(std::size_t count);

// y = x W^T (+ y); W converted and uploaded as HipBackend weights.
template <class W>
void linear(HostView x, ConstMatrixView<W> w, HostView y, bool accumulate);
void linear_int8(HostView x, const cpu::PackedWeights<std::int8_t>& w, HostView y, bool accumulate);
void linear_q4(HostView x, const cpu::PackedQ4Weights& w, HostView y, bool accumulate);
// y_first = x_first W^T queued on a stream of its own (hip::ScopedStream), then y_second =
// x_second W^T on another, without waiting in between: the thread's int8 quantisation scratch
// passes from the first stream to the second.
void linear_int8_two_streams(HostView x_first, HostView x_second,
                             const cpu::PackedWeights<std::int8_t>& w, HostView y_first,
                             HostView y_second);

void rms_norm(HostView in, std::span<const float> weight, float eps, HostView out);
void rms_norm_in_place(HostView x, std::span<const float> weight, float eps);
void add_rms_norm(HostView x, HostView delta, std::span<const float> weight, float eps);
void silu_gate(HostView fc, HostView out);
void rope_adjacent_pairs(HostView x, std::size_t heads, std::size_t head_dim,
                         std::span<const float> bias, ConstMatrixView<float> cos_sin,
                         std::size_t first_position);

enum class AttentionKernel { decode, prefill, dispatch };
// With bf16_keys, the keys and values are rounded to bf16 on the device (DeviceMemory's
// round_to_bf16, as a KV cache in bf16 stores them) before the kernel reads them.
void causal_attention(AttentionKernel kernel, HostView q, HostView keys, HostView values,
                      std::size_t heads, std::size_t head_dim, std::size_t first_position,
                      HostView out, std::span<const std::int32_t> key_positions,
                      bool bf16_keys = false);
// The head_dim up to which the prefill kernel runs.
std::size_t prefill_max_head_dim();

void add(HostView a, HostView b, HostView out);
void add_in_place(HostView a, HostView b);  // a = a + b
void copy(HostView in, HostView out);
template <class W>
void gather_rows(const cpu::PackedWeights<W>& table, std::span<const std::int32_t> ids, float scale,
                 HostView out);

}  // namespace recurrent_depth::hip_test
