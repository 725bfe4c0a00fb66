// Prefill GEMM kernel of the HIP backend: y [M, N] = x [M, K] W^T for many positions, a plain
// shared-memory tiled kernel: a block of 256 threads computes a 64 x 64 tile of y (4 x 4 outputs
// per thread, rows and positions strided by 16 so that neighbouring threads read neighbouring
// shared words), staging 64 x 16 tiles of x and W, widened, in shared memory.
//   Acc = float:        float or bf16 W, float x, float sums.
//   Acc = std::int32_t: int8 W, x quantised per position (linear.hpp), exact int32 sums, then
//                       float(sum) * (step * scale) as the CPU int8 kernels define it.
//   gemm_tiled_q4:      q4 W, x quantised likewise; exact int32 sums per group of 32 columns,
//                       each times its group's scale added in float, then times the step (the
//                       CPU q4 kernels' definition, cpu::scalar::linear_q4).
// rocBLAS / hipBLAS are not used: Debian 12 ships neither (no librocblas-dev or libhipblas-dev in
// bookworm; its ROCm is the HIP runtime, device libraries, comgr, HSA, rocminfo and rocm-smi 5.2,
// and rocSPARSE / hipSPARSE 5.3), and the project depends on Debian packages only. Nor would they
// take int8 weights with per-row scales and per-position activation scales. This kernel is the
// correct, simple baseline; a matrix-core (MFMA) version is future work, measured on a GPU.
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "device_math.hpp"
#include "kernel_launch.hpp"

namespace recurrent_depth::hip {

inline constexpr unsigned kGemmThreads = 256;
inline constexpr std::size_t kGemmTile = 64;   // positions and weight rows per block
inline constexpr std::size_t kGemmDepth = 16;  // columns per shared-memory stage

namespace kernels {

inline constexpr int kGemmPer = int(kGemmTile) / 16;  // outputs per thread along each side

// The thread (tx, ty) of a 16 x 16 block: sums[i][j] += x_tile[ty + 16 i][k] w_tile[tx + 16 j][k]
// over the kDepth columns of one shared-memory stage.
template <int kDepth, class Acc>
__device__ inline void multiply_stage(const Acc (*x_tile)[kDepth + 1],
                                      const Acc (*w_tile)[kDepth + 1], int tx, int ty,
                                      Acc (&sums)[kGemmPer][kGemmPer]) {
  for (int k = 0; k < kDepth; ++k) {
    Acc a[kGemmPer], b[kGemmPer];
    for (int i = 0; i < kGemmPer; ++i) a[i] = x_tile[ty + 16 * i][k];
    for (int j = 0; j < kGemmPer; ++j) b[j] = w_tile[tx + 16 * j][k];
    for (int i = 0; i < kGemmPer; ++i)
      for (int j = 0; j < kGemmPer; ++j) sums[i][j] += a[i] * b[j];
  }
}

// y[m][n] = (or +=) value(i, j, m, n) for the thread's outputs inside [positions, rows).
template <class Value>
__device__ inline void store_outputs(std::size_t m0, std::size_t n0, int tx, int ty,
                                     std::size_t positions, std::size_t rows, float* y,
                                     std::size_t y_stride, bool accumulate, Value&& value) {
  for (int i = 0; i < kGemmPer; ++i)
    for (int j = 0; j < kGemmPer; ++j) {
      const std::size_t m = m0 + std::size_t(ty + 16 * i), n = n0 + std::size_t(tx + 16 * j);
      if (m >= positions || n >= rows) continue;
      const float v = value(i, j, m, n);
      float& out = y[m * y_stride + n];
      out = accumulate ? out + v : v;
    }
}

// steps / row_scales: the int8 scales (null for float). Grid: (N tiles, M tiles).
template <class Acc, class X, class W>
__global__ void gemm_tiled(const X* x, std::size_t x_stride, const W* w, std::size_t w_stride,
                           std::size_t positions, std::size_t rows, std::size_t cols, float* y,
                           std::size_t y_stride, bool accumulate, const float* steps,
                           const float* row_scales) {
  constexpr int kTile = int(kGemmTile), kDepth = int(kGemmDepth);
  __shared__ Acc x_tile[kTile][kDepth + 1];  // +1: rows fall in different banks
  __shared__ Acc w_tile[kTile][kDepth + 1];
  const std::size_t m0 = blockIdx.y * kGemmTile, n0 = blockIdx.x * kGemmTile;
  const int tx = int(threadIdx.x) % 16, ty = int(threadIdx.x) / 16;
  Acc sums[kGemmPer][kGemmPer] = {};
  for (std::size_t k0 = 0; k0 < cols; k0 += kGemmDepth) {
    for (int e = int(threadIdx.x); e < kTile * kDepth; e += int(blockDim.x)) {
      const int r = e / kDepth, k = e % kDepth;
      const bool inside_k = k0 + std::size_t(k) < cols;
      const std::size_t m = m0 + std::size_t(r), n = n0 + std::size_t(r);
      x_tile[r][k] =
          (inside_k && m < positions) ? Acc(device::widen(x[m * x_stride + k0 + k])) : Acc(0);
      w_tile[r][k] = (inside_k && n < rows) ? Acc(device::widen(w[n * w_stride + k0 + k])) : Acc(0);
    }
    __syncthreads();
    multiply_stage<kDepth>(x_tile, w_tile, tx, ty, sums);
    __syncthreads();
  }
  store_outputs(m0, n0, tx, ty, positions, rows, y, y_stride, accumulate,
                [&](int i, int j, [[maybe_unused]] std::size_t m, [[maybe_unused]] std::size_t n) {
                  if constexpr (std::is_integral_v<Acc>)
                    return float(sums[i][j]) * (steps[m] * row_scales[n]);
                  else
                    return float(sums[i][j]);
                });
}

// q4 weights (DeviceQ4Weights: `groups` 16-byte groups of nibbles per row and their scales), x
// quantised per position into xq [positions, x_stride >= 32 groups] with steps: one stage per
// group of 32 columns, whose exact int32 sums of xq (q - 8) meet the rows' group scales in float
// sums; y = step * sum. Grid: (N tiles, M tiles).
template <class = void>
__global__ void gemm_tiled_q4(const std::int8_t* xq, std::size_t x_stride, const float* steps,
                              const std::uint8_t* nibbles, const bf16* scales, std::size_t groups,
                              std::size_t positions, std::size_t rows, float* y,
                              std::size_t y_stride, bool accumulate) {
  constexpr int kTile = int(kGemmTile), kDepth = 32;
  __shared__ std::int32_t x_tile[kTile][kDepth + 1];
  __shared__ std::int32_t w_tile[kTile][kDepth + 1];
  __shared__ float w_scale[kTile];
  const std::size_t m0 = blockIdx.y * kGemmTile, n0 = blockIdx.x * kGemmTile;
  const int tx = int(threadIdx.x) % 16, ty = int(threadIdx.x) / 16;
  float sums[kGemmPer][kGemmPer] = {};
  for (std::size_t g = 0; g < groups; ++g) {
    for (int e = int(threadIdx.x); e < kTile * kDepth; e += int(blockDim.x)) {
      const int r = e / kDepth, k = e % kDepth;
      const std::size_t m = m0 + std::size_t(r), n = n0 + std::size_t(r);
      x_tile[r][k] = m < positions ? std::int32_t(xq[m * x_stride + g * kDepth + k]) : 0;
      w_tile[r][k] = n < rows ? device::q4_value(nibbles + (n * groups + g) * 16, k) : 0;
    }
    for (int r = int(threadIdx.x); r < kTile; r += int(blockDim.x)) {
      const std::size_t n = n0 + std::size_t(r);
      w_scale[r] = n < rows ? device::widen(scales[n * groups + g]) : 0.0f;
    }
    __syncthreads();
    std::int32_t group_sums[kGemmPer][kGemmPer] = {};
    multiply_stage<kDepth>(x_tile, w_tile, tx, ty, group_sums);
    for (int i = 0; i < kGemmPer; ++i)
      for (int j = 0; j < kGemmPer; ++j)
        sums[i][j] += w_scale[tx + 16 * j] * float(group_sums[i][j]);
    __syncthreads();
  }
  store_outputs(m0, n0, tx, ty, positions, rows, y, y_stride, accumulate,
                [&](int i, int j, std::size_t m, std::size_t) { return steps[m] * sums[i][j]; });
}

}  // namespace kernels

inline dim3 gemm_grid(std::size_t positions, std::size_t rows) {
  return dim3(blocks_for(rows, kGemmTile), blocks_for(positions, kGemmTile));
}

}  // namespace recurrent_depth::hip
