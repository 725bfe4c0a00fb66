// Device-side building blocks of the HIP kernels: weights widened to float or int (bf16 is the
// upper half of a float32, so widening is a shift; q4 nibbles less 8), 16-byte vector loads of
// weight rows, and wavefront / block reductions. Reductions combine in a fixed order, so a kernel
// gives the same bits on every run (not necessarily the same as the CPU kernels', which sum in
// another order).
// Block reductions need blockDim.x to be a multiple of warpSize and at most 1024.
#pragma once

#include <cstdint>

#include "../../core/dtype.hpp"
#include "kernel_launch.hpp"

namespace recurrent_depth::hip::device {

__device__ inline float widen(float w) {
  return w;
}
__device__ inline float widen(bf16 w) {
  return __builtin_bit_cast(float, std::uint32_t(w.bits) << 16);
}
__device__ inline std::int32_t widen(std::int8_t w) {
  return w;
}

// v as an Out (float, or bf16 rounded to nearest even as dtype.hpp's to_bf16 rounds).
template <class Out>
__device__ inline Out narrow(float v) {
  if constexpr (sizeof(Out) == sizeof(float)) {
    return v;
  } else {
    std::uint32_t u = __builtin_bit_cast(std::uint32_t, v);
    if ((u & 0x7fffffffu) > 0x7f800000u) return bf16{std::uint16_t((u >> 16) | 0x40)};  // NaN
    u += 0x7fffu + ((u >> 16) & 1u);
    return bf16{std::uint16_t(u >> 16)};
  }
}

// 16 bytes of a weight row (4 floats, 8 bf16 or 16 int8) in one load.
struct alignas(16) Vector16 {
  std::uint32_t words[4];
};
__device__ inline Vector16 load_vector(const void* aligned) {
  return *static_cast<const Vector16*>(aligned);
}

// Element i of a vector of float or bf16 as float.
template <class W>
__device__ inline float vector_element(const Vector16& v, int i) {
  if constexpr (sizeof(W) == 4) {
    return __builtin_bit_cast(float, v.words[i]);
  } else {
    const std::uint32_t word = v.words[i / 2];
    return __builtin_bit_cast(float, (i % 2 == 0) ? word << 16 : word & 0xFFFF0000u);
  }
}

// sum + the 4 products of the signed bytes of a and b.
__device__ inline std::int32_t dot_bytes(std::uint32_t a, std::uint32_t b, std::int32_t sum) {
#if defined(__gfx906__) || defined(__gfx908__) || defined(__gfx90a__) || defined(__gfx940__)
  return __builtin_amdgcn_sdot4(int(a), int(b), sum, false);  // v_dot4_i32_i8
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 610
  return __dp4a(int(a), int(b), sum);  // NVIDIA (HIP's NVIDIA platform): dp4a.s32.s32
#else
  for (int s = 0; s < 32; s += 8)
    sum += std::int32_t(std::int8_t(a >> s)) * std::int32_t(std::int8_t(b >> s));
  return sum;
#endif
}

// q4 weights (DeviceQ4Weights): a group of 32 columns is 16 bytes, byte j holding column j in its
// low nibble and column 16 + j in its high one, each the stored value q in 0..15.
// The stored value less 8 of column k < 32 of the group at `group`.
__device__ inline std::int32_t q4_value(const std::uint8_t* group, int k) {
  const std::uint8_t byte = group[k % 16];
  return std::int32_t(k < 16 ? byte & 0x0F : byte >> 4) - 8;
}
// The 4 signed bytes q - 8 of the nibbles at `shift` (0: low, 4: high) of the bytes of `word`:
// q + 120 stays within a byte, and flipping its top bit subtracts 128.
__device__ inline std::uint32_t q4_signed_bytes(std::uint32_t word, int shift) {
  return (((word >> shift) & 0x0F0F0F0Fu) + 0x78787878u) ^ 0x80808080u;
}

struct Sum {
  template <class T>
  __device__ T operator()(T a, T b) const {
    return a + b;
  }
};
struct Max {
  __device__ float operator()(float a, float b) const { return fmaxf(a, b); }
};

// Every lane of the wavefront gets op over the wavefront's values (a butterfly).
template <class T, class Op>
__device__ inline T warp_reduce(T value, Op op) {
  for (int offset = warpSize / 2; offset > 0; offset /= 2)
    value = op(value, __shfl_xor(value, offset));
  return value;
}

// Every thread of the block gets op over the block's values. `scratch`: shared memory of 32
// values (one per wavefront), free for reuse when this returns.
template <class T, class Op>
__device__ inline T block_reduce(T value, Op op, T* scratch) {
  const int lane = int(threadIdx.x) % warpSize, warp = int(threadIdx.x) / warpSize;
  const int warps = int(blockDim.x) / warpSize;
  value = warp_reduce(value, op);
  __syncthreads();  // the previous reduction's readers are done with scratch
  if (lane == 0) scratch[warp] = value;
  __syncthreads();
  T result = scratch[0];
  for (int w = 1; w < warps; ++w) result = op(result, scratch[w]);
  return result;
}

}  // namespace recurrent_depth::hip::device
