// Prefill GEMM kernel of the HIP backend: y [M, N] = x [M, K] W^T for many positions, a plain
// shared-memory tiled kernel: a block of 256 threads computes a 64 x 64 tile of y (4 x 4 outputs
// per thread, rows and positions strided by 16 so that neighbouring threads read neighbouring
// shared words), staging 64 x 16 tiles of x and W, widened, in shared memory.
//   Acc = float:        float or bf16 W, float x, float sums.
//   Acc = std::int32_t: int8 W, x quantised per position (linear.hpp), exact int32 sums, then
//                       float(sum) * (step * scale) as the CPU int8 kernels define it.
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

// steps / row_scales: the int8 scales (null for float). Grid: (N tiles, M tiles).
template <class Acc, class X, class W>
__global__ void gemm_tiled(const X* x, std::size_t x_stride, const W* w, std::size_t w_stride,
                           std::size_t positions, std::size_t rows, std::size_t cols, float* y,
                           std::size_t y_stride, bool accumulate, const float* steps,
                           const float* row_scales) {
  constexpr int kTile = int(kGemmTile), kDepth = int(kGemmDepth), kPer = kTile / 16;
  __shared__ Acc x_tile[kTile][kDepth + 1];  // +1: rows fall in different banks
  __shared__ Acc w_tile[kTile][kDepth + 1];
  const std::size_t m0 = blockIdx.y * kGemmTile, n0 = blockIdx.x * kGemmTile;
  const int tx = int(threadIdx.x) % 16, ty = int(threadIdx.x) / 16;
  Acc sums[kPer][kPer] = {};
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
    for (int k = 0; k < kDepth; ++k) {
      Acc a[kPer], b[kPer];
      for (int i = 0; i < kPer; ++i) a[i] = x_tile[ty + 16 * i][k];
      for (int j = 0; j < kPer; ++j) b[j] = w_tile[tx + 16 * j][k];
      for (int i = 0; i < kPer; ++i)
        for (int j = 0; j < kPer; ++j) sums[i][j] += a[i] * b[j];
    }
    __syncthreads();
  }
  for (int i = 0; i < kPer; ++i)
    for (int j = 0; j < kPer; ++j) {
      const std::size_t m = m0 + std::size_t(ty + 16 * i), n = n0 + std::size_t(tx + 16 * j);
      if (m >= positions || n >= rows) continue;
      float value;
      if constexpr (std::is_integral_v<Acc>)
        value = float(sums[i][j]) * (steps[m] * row_scales[n]);
      else
        value = float(sums[i][j]);
      float& out = y[m * y_stride + n];
      out = accumulate ? out + value : value;
    }
}

}  // namespace kernels

inline dim3 gemm_grid(std::size_t positions, std::size_t rows) {
  return dim3(blocks_for(rows, kGemmTile), blocks_for(positions, kGemmTile));
}

}  // namespace recurrent_depth::hip
