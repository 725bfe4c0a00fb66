// Kernel launches of the HIP backend's kernel files (attention.hpp, elementwise.hpp, linear*.hpp),
// which only a HIP compiler compiles: hipcc / clang -x hip, nvcc through HIP's NVIDIA headers, or a
// C++ compiler with ROCm's HIP-CPU runtime and RECURRENT_DEPTH_HIP_CPU defined.
//
// Kernels (the __global__ functions under hip::kernels) are all templates, those without a
// parameter of their own too (`template <class = void>`): defined in every file that includes
// them, which the one-definition rule allows for templates, whereas an `inline` kernel is a
// CUDA-compatibility warning in clang (the inline is ignored) and nvcc.
#pragma once

#if !defined(__HIP__) && !defined(__HIPCC__) && !defined(__CUDACC__) && \
    !defined(RECURRENT_DEPTH_HIP_CPU)
#error \
    "the HIP backend's kernels must be compiled by a HIP compiler (hipcc): include hip_backend_kernels.hpp in one HIP file, hip_backend.hpp elsewhere"
#endif

#include <cstddef>
#include <string>

#include "hip_runtime.hpp"

namespace recurrent_depth::hip {

// Blocks needed for `count` items at `per_block` items per block.
inline unsigned blocks_for(std::size_t count, std::size_t per_block) {
  return static_cast<unsigned>((count + per_block - 1) / per_block);
}

// Queues kernel<<<grid, block>>>(args...) on the current stream and throws if the launch was
// refused (`name` says which kernel).
template <class... Params, class... Args>
void launch(const char* name, void (*kernel)(Params...), dim3 grid, dim3 block, Args&&... args) {
  if (grid.x == 0 || grid.y == 0 || grid.z == 0) return;  // nothing to do
  hipLaunchKernelGGL(kernel, grid, block, 0, current_stream(), static_cast<Params>(args)...);
  const hipError_t status = hipGetLastError();
  if (status != hipSuccess) check(status, (std::string("launch of ") + name).c_str());
}

}  // namespace recurrent_depth::hip
