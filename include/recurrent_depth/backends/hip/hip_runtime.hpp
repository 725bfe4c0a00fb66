// The HIP runtime as the HIP backend uses it: the one include of <hip/hip_runtime.h> (only when
// a HIP compiler compiles this: hipcc / clang -x hip, nvcc through HIP's NVIDIA headers, or a C++
// compiler with ROCm's HIP-CPU runtime and RECURRENT_DEPTH_HIP_CPU defined; the CPU backend never
// includes backends/hip/), HIP errors turned into recurrent_depth::Error naming
// the call, the stream kernels are queued on (one per thread,
// chosen with ScopedStream) and checked kernel launches.
//
// Kernels (the __global__ functions under hip::kernels) are all templates, those without a
// parameter of their own too (`template <class = void>`): a header-only library defines them in
// every file that includes it, which the one-definition rule allows for templates, whereas an
// `inline` kernel is a CUDA-compatibility warning in clang (the inline is ignored) and nvcc.
//
// Every HipBackend function queues work on the current stream and returns at once: results are
// visible to the host after a download (which waits for the stream) or hip::synchronize().
#pragma once

#if !defined(__HIP__) && !defined(__HIPCC__) && !defined(__CUDACC__) && \
    !defined(RECURRENT_DEPTH_HIP_CPU)
#error \
    "recurrent_depth/backends/hip/ must be compiled by a HIP compiler (hipcc); CPU builds do not include it"
#endif

#include <hip/hip_runtime.h>

#include <cstddef>
#include <string>
#include <utility>

#include "../../core/error.hpp"

namespace recurrent_depth::hip {

// Throws Error("HIP: <call> failed: <HIP's message> (<code name>)") unless status is hipSuccess.
inline void check(hipError_t status, const char* call) {
  if (status != hipSuccess)
    fail("HIP: ", call, " failed: ", hipGetErrorString(status), " (", hipGetErrorName(status), ")");
}

// Devices HIP sees; 0 when there is none or no driver (hipGetDeviceCount's error is not thrown:
// no GPU is an expected state, which the tests report as a skip).
inline int device_count() {
  int count = 0;
  if (hipGetDeviceCount(&count) != hipSuccess) return 0;
  return count;
}

namespace detail {
inline hipStream_t& current_stream_slot() {
  thread_local hipStream_t stream = nullptr;  // the null stream unless a ScopedStream says
  return stream;
}
}  // namespace detail

// The stream this thread's HipBackend calls queue their kernels on.
inline hipStream_t current_stream() {
  return detail::current_stream_slot();
}

// An owned stream (hipStreamCreate: it orders with the null stream's synchronous copies, and not
// with other streams), destroyed after its work; a session's work is queued on its own.
class Stream {
 public:
  Stream() { check(hipStreamCreate(&stream_), "hipStreamCreate"); }
  Stream(Stream&& other) noexcept : stream_(std::exchange(other.stream_, nullptr)) {}
  Stream& operator=(Stream&& other) noexcept {
    std::swap(stream_, other.stream_);
    return *this;
  }
  ~Stream() {
    if (stream_) {  // failures in a destructor are not reportable
      (void)hipStreamSynchronize(stream_);
      (void)hipStreamDestroy(stream_);
    }
  }
  hipStream_t get() const { return stream_; }

 private:
  hipStream_t stream_ = nullptr;
};

// Makes `stream` this thread's current stream until the end of the scope.
class ScopedStream {
 public:
  explicit ScopedStream(hipStream_t stream) : previous_(detail::current_stream_slot()) {
    detail::current_stream_slot() = stream;
  }
  explicit ScopedStream(const Stream& stream) : ScopedStream(stream.get()) {}
  ~ScopedStream() { detail::current_stream_slot() = previous_; }
  ScopedStream(const ScopedStream&) = delete;
  ScopedStream& operator=(const ScopedStream&) = delete;

 private:
  hipStream_t previous_;
};

// Waits for everything queued on the current stream.
inline void synchronize() {
  check(hipStreamSynchronize(current_stream()), "hipStreamSynchronize");
}

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
