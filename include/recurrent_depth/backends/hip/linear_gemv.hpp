// Decode GEMV kernels of the HIP backend: y [M, N] = x [M, K] W^T for a few positions
// (M <= kGemvMaxPositions), W in device memory (DeviceWeights: rows padded to 16-byte vectors).
// Decode is bound by the bytes of W, so each wavefront streams one weight row with 16-byte loads
// (lane l reads vectors l, l + warpSize, ...: consecutive lanes, consecutive addresses), applies
// each loaded vector to every position, and sums its lanes with a butterfly; a block of
// kGemvThreads holds kGemvThreads / warpSize rows. Activations are re-read per row through the
// caches (x is KBs, W is MBs to GBs).
//   gemv_rows_float: float or bf16 W (bf16 widened by a shift), float activations, float sums.
//   gemv_rows_int8:  int8 W with a scale per row, activations quantised per position to int8 by
//                    the caller (linear.hpp) into rows padded like W's; exact int32 sums (4
//                    bytes per v_dot4 instruction on CDNA), then float(sum) * (step * scale),
//                    the CPU int8 kernels' definition (cpu::scalar::linear_int8).
//   gemv_rows_q4:    q4 W (DeviceQ4Weights), activations quantised as for int8; exact int32
//                    sums per group of 32, each times its scale in float, then times the step
//                    (cpu::scalar::linear_q4).
#pragma once

#include <cstddef>
#include <cstdint>

#include "device_math.hpp"
#include "kernel_launch.hpp"

namespace recurrent_depth::hip {

inline constexpr unsigned kGemvThreads = 256;
inline constexpr int kGemvMaxPositions = 8;

namespace kernels {

// The wavefront's row of W, or -1 past the last row.
__device__ inline long gemv_row(std::size_t rows) {
  const std::size_t row =
      blockIdx.x * std::size_t(blockDim.x / warpSize) + threadIdx.x / unsigned(warpSize);
  return row < rows ? long(row) : -1;
}

// kMaxPositions: the most positions a launch handles (registers per lane); `positions` <= it.
template <class W, int kMaxPositions>
__global__ void gemv_rows_float(const float* x, std::size_t x_stride, int positions,
                                std::size_t cols, const W* w, std::size_t w_stride,
                                std::size_t rows, float* y, std::size_t y_stride, bool accumulate) {
  constexpr int kPerVector = int(16 / sizeof(W));
  const long row = gemv_row(rows);
  if (row < 0) return;  // whole wavefronts leave together: no shuffle misses a lane
  const int lane = int(threadIdx.x) % warpSize;
  const W* weights = w + std::size_t(row) * w_stride;
  float sums[kMaxPositions] = {};
  const std::size_t whole = cols / kPerVector;  // vectors without padding
  const std::size_t vectors = (cols + kPerVector - 1) / kPerVector;
  for (std::size_t v = std::size_t(lane); v < vectors; v += std::size_t(warpSize)) {
    const device::Vector16 loaded = device::load_vector(weights + v * kPerVector);
    const std::size_t k0 = v * kPerVector;
    const int count = v < whole ? kPerVector : int(cols - k0);  // the padded tail: fewer
#pragma unroll
    for (int p = 0; p < kMaxPositions; ++p) {
      if (p < positions) {  // a guard, not a break: the loop stays fully unrolled
        const float* xp = x + std::size_t(p) * x_stride + k0;
        float sum = sums[p];
        // Unrolled with constant indices: a loop to `count` would index the vector's words at
        // run time, and the compiler would keep it in shared memory instead of registers.
#pragma unroll
        for (int i = 0; i < kPerVector; ++i)
          if (i < count) sum += device::vector_element<W>(loaded, i) * xp[i];
        sums[p] = sum;
      }
    }
  }
#pragma unroll
  for (int p = 0; p < kMaxPositions; ++p) {
    const float sum = device::warp_reduce(sums[p], device::Sum{});
    if (lane == 0 && p < positions) {
      float& out = y[std::size_t(p) * y_stride + std::size_t(row)];
      out = accumulate ? out + sum : sum;
    }
  }
}

// xq [positions, w_stride]: quantised activations (zero past cols); steps: their scales.
template <int kMaxPositions>
__global__ void gemv_rows_int8(const std::int8_t* xq, const float* steps, int positions,
                               const std::int8_t* w, std::size_t w_stride, const float* row_scales,
                               std::size_t rows, float* y, std::size_t y_stride, bool accumulate) {
  const long row = gemv_row(rows);
  if (row < 0) return;
  const int lane = int(threadIdx.x) % warpSize;
  const std::int8_t* weights = w + std::size_t(row) * w_stride;
  std::int32_t sums[kMaxPositions] = {};
  const std::size_t vectors = w_stride / 16;
  for (std::size_t v = std::size_t(lane); v < vectors; v += std::size_t(warpSize)) {
    const device::Vector16 loaded = device::load_vector(weights + v * 16);
#pragma unroll
    for (int p = 0; p < kMaxPositions; ++p) {
      if (p < positions) {
        const device::Vector16 xv = device::load_vector(xq + std::size_t(p) * w_stride + v * 16);
        std::int32_t sum = sums[p];
        for (int i = 0; i < 4; ++i) sum = device::dot_bytes(loaded.words[i], xv.words[i], sum);
        sums[p] = sum;
      }
    }
  }
#pragma unroll
  for (int p = 0; p < kMaxPositions; ++p) {
    const std::int32_t sum = device::warp_reduce(sums[p], device::Sum{});
    if (lane == 0 && p < positions) {
      const float value = float(sum) * (steps[p] * row_scales[row]);
      float& out = y[std::size_t(p) * y_stride + std::size_t(row)];
      out = accumulate ? out + value : value;
    }
  }
}

// q4 weights (DeviceQ4Weights): each lane takes whole groups of 32 columns (one 16-byte load of
// nibbles and a bf16 scale); xq [positions, x_stride >= 32 groups] quantised as for int8. Per
// group the exact int32 sum of xq (q - 8), times the group's scale, added in float; y = step * sum.
template <int kMaxPositions>
__global__ void gemv_rows_q4(const std::int8_t* xq, std::size_t x_stride, const float* steps,
                             int positions, const std::uint8_t* nibbles, const bf16* scales,
                             std::size_t groups, std::size_t rows, float* y, std::size_t y_stride,
                             bool accumulate) {
  const long row = gemv_row(rows);
  if (row < 0) return;
  const int lane = int(threadIdx.x) % warpSize;
  const std::uint8_t* row_nibbles = nibbles + std::size_t(row) * groups * 16;
  const bf16* row_scales = scales + std::size_t(row) * groups;
  float sums[kMaxPositions] = {};
  for (std::size_t g = std::size_t(lane); g < groups; g += std::size_t(warpSize)) {
    const device::Vector16 packed = device::load_vector(row_nibbles + g * 16);
    std::uint32_t low[4], high[4];  // columns [0, 16) and [16, 32) of the group, q - 8
    for (int i = 0; i < 4; ++i) {
      low[i] = device::q4_signed_bytes(packed.words[i], 0);
      high[i] = device::q4_signed_bytes(packed.words[i], 4);
    }
    const float scale = device::widen(row_scales[g]);
#pragma unroll
    for (int p = 0; p < kMaxPositions; ++p) {
      if (p < positions) {
        const std::int8_t* x = xq + std::size_t(p) * x_stride + g * 32;
        const device::Vector16 x_low = device::load_vector(x), x_high = device::load_vector(x + 16);
        std::int32_t sum = 0;
        for (int i = 0; i < 4; ++i) {
          sum = device::dot_bytes(low[i], x_low.words[i], sum);
          sum = device::dot_bytes(high[i], x_high.words[i], sum);
        }
        sums[p] += scale * float(sum);
      }
    }
  }
#pragma unroll
  for (int p = 0; p < kMaxPositions; ++p) {
    const float sum = device::warp_reduce(sums[p], device::Sum{});
    if (lane == 0 && p < positions) {
      const float value = steps[p] * sum;
      float& out = y[std::size_t(p) * y_stride + std::size_t(row)];
      out = accumulate ? out + value : value;
    }
  }
}

}  // namespace kernels

// Blocks of kGemvThreads for `rows` weight rows, one per wavefront, counted for 64-wide
// wavefronts: with 32-wide ones (RDNA, NVIDIA) each block holds twice the rows and the blocks
// past the last row return at once. (The host need not ask the device its width.)
inline dim3 gemv_grid(std::size_t rows) {
  return dim3(blocks_for(rows, kGemvThreads / 64));
}

}  // namespace recurrent_depth::hip
