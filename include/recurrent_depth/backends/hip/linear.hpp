// Dense layers of the HIP backend: y [M, N] = x [M, K] W^T (+ y when accumulating), x and y float32
// in device memory, W a DeviceWeights<float | bf16 | int8> or DeviceQ4Weights. Up to
// kGemvMaxPositions positions go to the bandwidth-bound GEMV kernels (linear_gemv.hpp), more to the
// tiled GEMM (linear_gemm.hpp). int8 and q4 weights: each position is first quantised as the CPU
// int8 kernels do (linear_int8.hpp: step s_m = max |x| / 127, 1 for a zero row, NaN when x holds
// a NaN or an infinity; q = round-to-even(x * (1 / s_m)) clamped to [-127, 127]) into a scratch
// buffer of the calling thread.
#pragma once

#include <cstddef>
#include <cstdint>

#include "../../core/error.hpp"
#include "../../core/tensor.hpp"
#include "device_buffer.hpp"
#include "device_math.hpp"
#include "device_q4_weights.hpp"
#include "device_weights.hpp"
#include "elementwise.hpp"
#include "kernel_launch.hpp"
#include "linear_gemm.hpp"
#include "linear_gemv.hpp"

namespace recurrent_depth::hip {

// int32 sums of int8 products stay exact while K x 127 x 127 < 2^31.
inline constexpr std::size_t kMaxInt8Columns = 133000;

namespace kernels {

// One block per position m: xq[m] = quantised x[m] (zeros from cols to padded), steps[m] = s_m.
template <class = void>  // a template: defined in every including file (kernel_launch.hpp)
__global__ void quantise_rows(const float* x, std::size_t x_stride, std::size_t cols,
                              std::size_t padded, std::int8_t* xq, float* steps) {
  __shared__ float scratch[32];
  const std::size_t m = blockIdx.x;
  const float* row = x + m * x_stride;
  float largest = 0.0f;  // a non-finite value counts as infinite
  for (std::size_t k = threadIdx.x; k < cols; k += blockDim.x)
    largest = fmaxf(largest, __builtin_isfinite(row[k]) ? fabsf(row[k]) : __builtin_inff());
  largest = device::block_reduce(largest, device::Max{}, scratch);
  const bool finite = !__builtin_isinf(largest);
  const float step = !finite ? __builtin_nanf("") : largest > 0.0f ? largest / 127.0f : 1.0f;
  if (threadIdx.x == 0) steps[m] = step;
  const float inverse = 1.0f / step;
  for (std::size_t k = threadIdx.x; k < padded; k += blockDim.x) {
    float q = 0.0f;
    if (finite && k < cols) q = fminf(fmaxf(__builtin_rintf(row[k] * inverse), -127.0f), 127.0f);
    xq[m * padded + k] = std::int8_t(q);
  }
}

}  // namespace kernels

namespace detail {

// The calling thread's quantised activations. Reused from call to call on the same stream (stream
// order keeps the uses apart); a call on another stream first waits for the device (the previous
// stream, a session's, may be destroyed by now: its handle cannot be waited on).
struct Int8Scratch {
  DeviceBuffer<std::int8_t> values;
  DeviceBuffer<float> steps;
  hipStream_t stream = nullptr;

  void prepare(std::size_t positions, std::size_t padded) {
    if (stream != current_stream()) {
      check(hipDeviceSynchronize(), "hipDeviceSynchronize");
      stream = current_stream();
    }
    if (values.size() < positions * padded) values.resize(positions * padded);
    if (steps.size() < positions) steps.resize(positions);
  }
};

inline Int8Scratch& int8_scratch() {
  thread_local Int8Scratch scratch;
  return scratch;
}

template <class Weights>
void check_linear_shapes(ConstMatrixView<float> x, const Weights& w, MatrixView<float> y) {
  require(x.cols == w.cols() && y.rows == x.rows && y.cols == w.rows(), "hip::linear: x [", x.rows,
          ", ", x.cols, "] times W^T [", w.cols(), ", ", w.rows(), "] into y [", y.rows, ", ",
          y.cols, "]");
}

}  // namespace detail

// float or bf16 weights.
template <class W>
void linear(ConstMatrixView<float> x, const DeviceWeights<W>& w, MatrixView<float> y,
            bool accumulate = false) {
  detail::check_linear_shapes(x, w, y);
  if (x.rows == 0 || w.rows() == 0) return;
  if (x.rows == 1) {
    launch("gemv_rows_float", kernels::gemv_rows_float<W, 1>, gemv_grid(w.rows()),
           dim3(kGemvThreads), x.data, x.stride, 1, x.cols, w.data(), w.stride(), w.rows(), y.data,
           y.stride, accumulate);
  } else if (x.rows <= std::size_t(kGemvMaxPositions)) {
    launch("gemv_rows_float", kernels::gemv_rows_float<W, kGemvMaxPositions>, gemv_grid(w.rows()),
           dim3(kGemvThreads), x.data, x.stride, int(x.rows), x.cols, w.data(), w.stride(),
           w.rows(), y.data, y.stride, accumulate);
  } else {
    launch("gemm_tiled", kernels::gemm_tiled<float, float, W>, gemm_grid(x.rows, w.rows()),
           dim3(kGemmThreads), x.data, x.stride, w.data(), w.stride(), x.rows, w.rows(), x.cols,
           y.data, y.stride, accumulate, static_cast<const float*>(nullptr),
           static_cast<const float*>(nullptr));
  }
}

namespace detail {

struct QuantisedRows {
  const std::int8_t* values;  // [positions, padded]
  const float* steps;         // [positions]
};

// x quantised per position into the calling thread's scratch, rows padded with zeros to `padded`.
inline QuantisedRows quantise(ConstMatrixView<float> x, std::size_t padded) {
  require(x.cols <= kMaxInt8Columns, "hip::linear: ", x.cols, " columns of quantised products ",
          "exceed ", kMaxInt8Columns, " (the int32 sums would overflow)");
  Int8Scratch& scratch = int8_scratch();
  scratch.prepare(x.rows, padded);
  launch("quantise_rows", kernels::quantise_rows<>, dim3(unsigned(x.rows)), dim3(kRowThreads),
         x.data, x.stride, x.cols, padded, scratch.values.data(), scratch.steps.data());
  return {scratch.values.data(), scratch.steps.data()};
}

}  // namespace detail

// int8 weights with a scale per row; x quantised per position.
inline void linear(ConstMatrixView<float> x, const DeviceWeights<std::int8_t>& w,
                   MatrixView<float> y, bool accumulate = false) {
  detail::check_linear_shapes(x, w, y);
  if (x.rows == 0 || w.rows() == 0) return;
  const auto [xq, steps] = detail::quantise(x, w.stride());
  if (x.rows == 1) {
    launch("gemv_rows_int8", kernels::gemv_rows_int8<1>, gemv_grid(w.rows()), dim3(kGemvThreads),
           xq, steps, 1, w.data(), w.stride(), w.row_scales(), w.rows(), y.data, y.stride,
           accumulate);
  } else if (x.rows <= std::size_t(kGemvMaxPositions)) {
    launch("gemv_rows_int8", kernels::gemv_rows_int8<kGemvMaxPositions>, gemv_grid(w.rows()),
           dim3(kGemvThreads), xq, steps, int(x.rows), w.data(), w.stride(), w.row_scales(),
           w.rows(), y.data, y.stride, accumulate);
  } else {
    launch("gemm_tiled", kernels::gemm_tiled<std::int32_t, std::int8_t, std::int8_t>,
           gemm_grid(x.rows, w.rows()), dim3(kGemmThreads), xq, w.stride(), w.data(), w.stride(),
           x.rows, w.rows(), x.cols, y.data, y.stride, accumulate, steps, w.row_scales());
  }
}

// q4 weights with a scale per group of 32; x quantised per position, rows padded to whole groups.
inline void linear(ConstMatrixView<float> x, const DeviceQ4Weights& w, MatrixView<float> y,
                   bool accumulate = false) {
  detail::check_linear_shapes(x, w, y);
  if (x.rows == 0 || w.rows() == 0) return;
  const std::size_t padded = w.groups() * DeviceQ4Weights::kGroup;
  const auto [xq, steps] = detail::quantise(x, padded);
  if (x.rows == 1) {
    launch("gemv_rows_q4", kernels::gemv_rows_q4<1>, gemv_grid(w.rows()), dim3(kGemvThreads), xq,
           padded, steps, 1, w.nibbles(), w.scales(), w.groups(), w.rows(), y.data, y.stride,
           accumulate);
  } else if (x.rows <= std::size_t(kGemvMaxPositions)) {
    launch("gemv_rows_q4", kernels::gemv_rows_q4<kGemvMaxPositions>, gemv_grid(w.rows()),
           dim3(kGemvThreads), xq, padded, steps, int(x.rows), w.nibbles(), w.scales(), w.groups(),
           w.rows(), y.data, y.stride, accumulate);
  } else {
    launch("gemm_tiled_q4", kernels::gemm_tiled_q4<>, gemm_grid(x.rows, w.rows()),
           dim3(kGemmThreads), xq, padded, steps, w.nibbles(), w.scales(), w.groups(), x.rows,
           w.rows(), y.data, y.stride, accumulate);
  }
}

}  // namespace recurrent_depth::hip
