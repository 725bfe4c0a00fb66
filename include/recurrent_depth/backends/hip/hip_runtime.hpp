// The HIP runtime's host API as the HIP backend uses it: the one include of HIP's headers, HIP
// errors turned into recurrent_depth::Error naming the call, and the stream the backend's work is
// queued on (one per thread, chosen with ScopedStream).
//
// Any C++ compiler can include this (and hip_backend.hpp, device_memory.hpp, device_weights.hpp):
// with __HIP_PLATFORM_AMD__ (or __HIP_PLATFORM_NVIDIA__) defined it includes
// <hip/hip_runtime_api.h>; under a HIP compiler (hipcc / clang -x hip, nvcc) or with ROCm's HIP-CPU
// (RECURRENT_DEPTH_HIP_CPU defined) <hip/hip_runtime.h>. The kernels need a HIP compiler:
// hip_backend_kernels.hpp. The CPU backend never includes backends/hip/.
//
// Every HipBackend function queues work on the current stream and returns at once: results are
// visible to the host after a download (which waits for the stream) or hip::synchronize().
#pragma once

#if defined(__HIP__) || defined(__HIPCC__) || defined(__CUDACC__) || \
    defined(RECURRENT_DEPTH_HIP_CPU)
#include <hip/hip_runtime.h>
#else
#include <hip/hip_runtime_api.h>
#endif

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

}  // namespace recurrent_depth::hip
