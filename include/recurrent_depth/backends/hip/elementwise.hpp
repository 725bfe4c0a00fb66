// Row-wise kernels of the HIP backend over [positions, features] float32 matrices in device
// memory (MatrixView strides honoured): RMSNorm (one block per row, with the fused residual add
// of add_rms_norm), the SiLU gate, RoPE on adjacent pairs with the q/k bias, add, copy (to float or
// rounded to bf16) and the embedding gather. Each computes what its CPU twin computes
// (backends/cpu/elementwise.hpp, cpu::scalar): float32 arithmetic, the same formulas; only the
// order of the RMSNorm sum differs. Spans and views are device memory; ids and key positions too.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>

#include "../../core/error.hpp"
#include "../../core/tensor.hpp"
#include "device_math.hpp"
#include "device_weights.hpp"
#include "kernel_launch.hpp"

namespace recurrent_depth::hip {

inline constexpr unsigned kRowThreads = 256;  // threads of the one-block-per-row kernels

namespace kernels {

// v = in[r] (+ delta[r]); out[r] = v * (1 / sqrt(mean(v^2) + eps)) * weight. out may alias in
// (add_rms_norm passes in == out): each thread reads only the elements it later writes.
template <class = void>  // a template: defined in every including file (kernel_launch.hpp)
__global__ void rms_norm_rows(const float* in, std::size_t in_stride, const float* delta,
                              std::size_t delta_stride, const float* weight, float eps,
                              std::size_t cols, float* out, std::size_t out_stride) {
  __shared__ float scratch[32];
  const std::size_t r = blockIdx.x;
  const float* x = in + r * in_stride;
  float squares = 0.0f;
  for (std::size_t i = threadIdx.x; i < cols; i += blockDim.x) {
    const float v = delta ? x[i] + delta[r * delta_stride + i] : x[i];
    squares += v * v;
  }
  squares = device::block_reduce(squares, device::Sum{}, scratch);
  const float scale = 1.0f / sqrtf(squares / float(cols) + eps);
  float* y = out + r * out_stride;
  for (std::size_t i = threadIdx.x; i < cols; i += blockDim.x) {
    const float v = delta ? x[i] + delta[r * delta_stride + i] : x[i];
    y[i] = v * scale * weight[i];
  }
}

// out = silu(gate) * up over the halves [gate ; up] of each row of fc.
template <class = void>  // a template: defined in every including file (kernel_launch.hpp)
__global__ void silu_gate(const float* fc, std::size_t fc_stride, std::size_t rows,
                          std::size_t cols, float* out, std::size_t out_stride) {
  const std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x, r = blockIdx.y;
  if (i >= cols || r >= rows) return;
  const float g = fc[r * fc_stride + i];
  out[r * out_stride + i] = g / (1.0f + expf(-g)) * fc[r * fc_stride + cols + i];
}

// One thread per pair (2i, 2i+1) of each head of each row: (v + bias) rotated by the table's
// (cos, sin) of position first + r.
template <class = void>  // a template: defined in every including file (kernel_launch.hpp)
__global__ void rope_adjacent_pairs(float* x, std::size_t x_stride, std::size_t rows,
                                    std::size_t pairs, std::size_t head_dim, const float* bias,
                                    const float* cos_sin, std::size_t table_stride,
                                    std::size_t first_position) {
  const std::size_t pair = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x, r = blockIdx.y;
  if (pair >= pairs || r >= rows) return;
  const std::size_t e = 2 * pair;  // element of the row; heads are whole pairs (head_dim even)
  float* v = x + r * x_stride + e;
  const float v0 = bias ? v[0] + bias[e] : v[0];
  const float v1 = bias ? v[1] + bias[e + 1] : v[1];
  const float* angles = cos_sin + (first_position + r) * table_stride + e % head_dim;
  const float c = angles[0], s = angles[1];
  v[0] = v0 * c - v1 * s;
  v[1] = v1 * c + v0 * s;
}

// out = a + b (b null: out = a, a copy), stored as Out: float, or bf16 (rounded to nearest even).
template <class Out = float>
__global__ void add_rows(const float* a, std::size_t a_stride, const float* b, std::size_t b_stride,
                         std::size_t rows, std::size_t cols, Out* out, std::size_t out_stride) {
  const std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x, r = blockIdx.y;
  if (i >= cols || r >= rows) return;
  const float v = a[r * a_stride + i];
  out[r * out_stride + i] = device::narrow<Out>(b ? v + b[r * b_stride + i] : v);
}

// out[t] = table[ids[t]] * scale (times the row's scale for int8), one block per t.
template <class W>
__global__ void gather_rows(const W* table, std::size_t table_stride, const float* row_scales,
                            const std::int32_t* ids, float scale, std::size_t cols, float* out,
                            std::size_t out_stride) {
  const std::size_t t = blockIdx.x, id = std::size_t(ids[t]);
  const float s = row_scales ? scale * row_scales[id] : scale;
  for (std::size_t c = threadIdx.x; c < cols; c += blockDim.x)
    out[t * out_stride + c] = float(device::widen(table[id * table_stride + c])) * s;
}

// out[r] = the row of `cols` floats at sources[r], one block per r.
template <class = void>  // a template: defined in every including file (kernel_launch.hpp)
__global__ void gather_addressed_rows(const float* const* sources, std::size_t cols, float* out,
                                      std::size_t out_stride) {
  const std::size_t r = blockIdx.x;
  const float* source = sources[r];
  for (std::size_t c = threadIdx.x; c < cols; c += blockDim.x) out[r * out_stride + c] = source[c];
}

}  // namespace kernels

// Grid of one thread per column (blocks of kRowThreads) and one row of blocks per row.
inline dim3 column_grid(std::size_t rows, std::size_t cols) {
  return dim3(blocks_for(cols, kRowThreads), unsigned(rows));
}

inline void rms_norm(ConstMatrixView<float> in, std::span<const float> weight, float eps,
                     MatrixView<float> out) {
  launch("rms_norm_rows", kernels::rms_norm_rows<>, dim3(unsigned(in.rows)), dim3(kRowThreads),
         in.data, in.stride, nullptr, std::size_t(0), weight.data(), eps, in.cols, out.data,
         out.stride);
}

// x = rms_norm(x + delta).
inline void add_rms_norm(MatrixView<float> x, ConstMatrixView<float> delta,
                         std::span<const float> weight, float eps) {
  launch("rms_norm_rows", kernels::rms_norm_rows<>, dim3(unsigned(x.rows)), dim3(kRowThreads),
         x.data, x.stride, delta.data, delta.stride, weight.data(), eps, x.cols, x.data, x.stride);
}

inline void silu_gate(ConstMatrixView<float> fc, MatrixView<float> out) {
  launch("silu_gate", kernels::silu_gate<>, column_grid(fc.rows, out.cols), dim3(kRowThreads),
         fc.data, fc.stride, fc.rows, out.cols, out.data, out.stride);
}

// cos_sin: the RoPE table [positions, head_dim] of interleaved (cos, sin) in device memory.
inline void rope_adjacent_pairs(MatrixView<float> x, std::size_t heads, std::size_t head_dim,
                                std::span<const float> bias, ConstMatrixView<float> cos_sin,
                                std::size_t first_position) {
  require(head_dim % 2 == 0, "rope_adjacent_pairs: odd head_dim ", head_dim);
  const std::size_t pairs = heads * head_dim / 2;
  launch("rope_adjacent_pairs", kernels::rope_adjacent_pairs<>, column_grid(x.rows, pairs),
         dim3(kRowThreads), x.data, x.stride, x.rows, pairs, head_dim,
         bias.empty() ? nullptr : bias.data(), cos_sin.data, cos_sin.stride, first_position);
}

// out = a + b; out may alias a or b.
inline void add(ConstMatrixView<float> a, ConstMatrixView<float> b, MatrixView<float> out) {
  launch("add_rows", kernels::add_rows<>, column_grid(out.rows, out.cols), dim3(kRowThreads),
         a.data, a.stride, b.data, b.stride, out.rows, out.cols, out.data, out.stride);
}

template <class Out>  // float, or bf16 (rounded to nearest even)
void copy(ConstMatrixView<float> in, MatrixView<Out> out) {
  launch("add_rows", kernels::add_rows<Out>, column_grid(out.rows, out.cols), dim3(kRowThreads),
         in.data, in.stride, static_cast<const float*>(nullptr), std::size_t(0), out.rows, out.cols,
         out.data, out.stride);
}

// out[t] = table[ids[t]] * scale; ids in device memory.
template <class W>
void gather_rows(const DeviceWeights<W>& table, std::span<const std::int32_t> ids, float scale,
                 MatrixView<float> out) {
  launch("gather_rows", kernels::gather_rows<W>, dim3(unsigned(ids.size())), dim3(kRowThreads),
         table.data(), table.stride(), table.row_scales(), ids.data(), scale, table.cols(),
         out.data, out.stride);
}

}  // namespace recurrent_depth::hip
