// The GPU's own limits, measured, so that the HIP backend's throughput can be quoted as a fraction
// of them (rdepth bench --backend hip), as backends/cpu/machine_limits.hpp does for the CPU:
//   device_info()       the current device's name, compute units, L2 and memory (HIP's
//                       properties and hipMemGetInfo)
//   ReadBandwidthProbe  a kernel that sums a float buffer far larger than the L2 (16-byte loads,
//                       four in flight per thread, a grid of 16 blocks per compute unit), timed
//                       with HIP events on its own stream; and, as the peer measured in the same
//                       run, HIP's own device-to-device copy of that buffer (hipMemcpyAsync:
//                       bytes read + bytes written per second)
//   fma_peak_gflops     independent float FMA chains (8 per thread) on 8 blocks of 256 threads
//                       per compute unit: the vector FMA peak, which the prefill GEMM runs on (it
//                       has no matrix-core version yet)
// Each figure is the best of a few timed passes (the device may be shared).
//
// Host API only, like hip_backend.hpp; the kernels and the functions that launch them are defined
// in device_limits_kernels.hpp (part of recurrent_depth::hip). Tested in
// tests/hip/test_hip_device_limits.cpp.
#pragma once

#include <algorithm>
#include <cstddef>
#include <string>
#include <vector>

#include "device_buffer.hpp"
#include "hip_runtime.hpp"

namespace recurrent_depth::hip {

struct DeviceInfo {
  std::string name;
  int compute_units = 0;
  std::size_t l2_bytes = 0;
  std::size_t memory_bytes = 0;       // the device's global memory
  std::size_t free_memory_bytes = 0;  // not in use when asked (hipMemGetInfo)
};

inline DeviceInfo device_info() {
  int device = 0;
  check(hipGetDevice(&device), "hipGetDevice");
  hipDeviceProp_t properties{};
  check(hipGetDeviceProperties(&properties, device), "hipGetDeviceProperties");
  DeviceInfo info;
  info.name = properties.name;
  info.compute_units = properties.multiProcessorCount;
  info.l2_bytes = std::size_t(std::max(properties.l2CacheSize, 0));
  std::size_t free_bytes = 0, total_bytes = 0;
  check(hipMemGetInfo(&free_bytes, &total_bytes), "hipMemGetInfo");
  info.memory_bytes = total_bytes;
  info.free_memory_bytes = free_bytes;
  return info;
}

// Runs `work` (which queues on `stream`) `passes` times and returns the shortest run in seconds,
// timed with events recorded on the stream.
template <class Work>
double best_stream_seconds(const Stream& stream, int passes, Work&& work) {
  hipEvent_t start = nullptr, stop = nullptr;
  check(hipEventCreate(&start), "hipEventCreate");
  check(hipEventCreate(&stop), "hipEventCreate");
  double best = 1e30;
  for (int pass = 0; pass < passes; ++pass) {
    check(hipEventRecord(start, stream.get()), "hipEventRecord");
    work();
    check(hipEventRecord(stop, stream.get()), "hipEventRecord");
    check(hipEventSynchronize(stop), "hipEventSynchronize");
    float milliseconds = 0;
    check(hipEventElapsedTime(&milliseconds, start, stop), "hipEventElapsedTime");
    best = std::min(best, 1e-3 * double(milliseconds));
  }
  (void)hipEventDestroy(start);
  (void)hipEventDestroy(stop);
  return best;
}

class ReadBandwidthProbe {
 public:
  // Blocks of the read kernel per compute unit, and its threads per block.
  static constexpr unsigned kBlocksPerUnit = 16, kThreads = 256;

  // A buffer of `bytes` (rounded down to 16-byte vectors); 0: 64 times the L2, at least 256 MiB,
  // at most a quarter of the free memory. Its contents are 1.0f (filled on the device).
  explicit ReadBandwidthProbe(std::size_t bytes = 0);

  std::size_t bytes() const { return data_.size() * sizeof(float); }
  DeviceBuffer<float>& buffer() { return data_; }  // for tests: other contents

  // The read kernel's result: the buffer's sum (partial sums per block, added on the host).
  double sum();
  // Read bandwidth in GB/s: the buffer's bytes over the shortest of `passes` read kernels.
  double gbs(int passes = 3);
  // HIP's device-to-device copy of the buffer's first half onto its second half, in GB/s counting
  // the bytes read and written: the peer of gbs(), measured on the same memory.
  double copy_gbs(int passes = 3) {
    const std::size_t half = data_.size() / 2 * sizeof(float);
    const char* from = reinterpret_cast<const char*>(data_.data());
    char* to = reinterpret_cast<char*>(data_.data()) + half;
    const double seconds = best_stream_seconds(stream_, passes, [&] {
      check(hipMemcpyAsync(to, from, half, hipMemcpyDeviceToDevice, stream_.get()),
            "hipMemcpyAsync (device to device)");
    });
    return 2.0 * double(half) / seconds / 1e9;
  }

 private:
  void launch_read();  // the read kernel on stream_, partial sums into partials_

  DeviceBuffer<float> data_, partials_;
  unsigned blocks_ = 0;
  Stream stream_;
};

// The FMA probe's threads per block and chains per thread.
inline constexpr unsigned kFmaThreads = 256, kFmaChains = 8;

// Each thread t of `blocks` blocks of kFmaThreads runs kFmaChains chains x <- fma(x, a, b) for
// `iterations` steps from x = 1 + (t * kFmaChains + c) * 2^-20, a = 0.9999, b = 1e-4, and gives
// the sum of its chains in chain order: the probe's work, whose results tests check.
std::vector<float> fma_chain_results(unsigned blocks, int iterations);

// Float FMA peak of the device in GFLOP/s (2 FLOPs per FMA): 8 blocks of kFmaThreads per compute
// unit, the iterations doubled until one launch takes at least 20 ms, then the best of `passes`.
double fma_peak_gflops(int passes = 3);

}  // namespace recurrent_depth::hip
