// The machine's own limits, measured with the selected kernels' instructions (machine_probes.hpp),
// so throughput can be quoted as a fraction of them:
//   ReadBandwidthProbe  sums a large float array (by default twice the last-level cache and at
//                       least 256 MiB, so beyond the caches; on huge pages as the weights) with
//                       all OpenMP threads, in the machine's fastest read pattern; repeatable
//                       next to each step of a measurement (the bandwidth of a shared machine
//                       moves). Built over fewer bytes it measures the level of the memory
//                       that holds that many (a core iteration's weights fit a large L3)
//   fma_peak_gflops     independent register-resident FMA chains on all threads, in the SIMD batch
//                       of the kernels
//   int8_dot_peak_gops  the same with the int8 kernel's instruction (AVX-512 VNNI vpdpbusd, 64
//                       multiply-adds of bytes per instruction, or the AMX tiles' tdpbsud); 0
//                       where the kernels have none
//   bf16_dot_peak_gflops  the AMX tiles' bf16 products (tdpbf16ps) where the bf16 kernel uses
//                       them; 0 elsewhere
//   bf16_vector_dot_peak_gflops  AVX-512 BF16's vector dot products (vdpbf16ps) where the
//                       kernels are built for AVX-512 and the CPU has them; 0 elsewhere
// The peaks are timed per thread and summed over the team (machine_probes.hpp); the bandwidth
// is the best of a few timed passes (the machine may be shared: the best pass is the closest to
// what it can do).
#pragma once

#if __has_include(<unistd.h>)
#include <unistd.h>  // sysconf
#endif

#include <algorithm>
#include <chrono>
#include <cstddef>

#include "../../core/aligned_memory.hpp"
#include "kernel_dispatch.hpp"

namespace recurrent_depth::cpu {

// The shortest of `passes` timed runs of work(), in seconds.
template <class Work>
double best_seconds(int passes, Work&& work) {
  double best = 1e30;
  for (int i = 0; i < passes; ++i) {
    const auto start = std::chrono::steady_clock::now();
    work();
    best = std::min(
        best, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  return best;
}

// The last-level (L3) cache's size in bytes as the C library reports it, 0 where unknown. In a
// virtual machine this is the host's cache, which other guests share.
inline std::size_t last_level_cache_bytes() {
#if defined(_SC_LEVEL3_CACHE_SIZE)
  const long bytes = sysconf(_SC_LEVEL3_CACHE_SIZE);
  return bytes > 0 ? static_cast<std::size_t>(bytes) : 0;
#else
  return 0;
#endif
}

// Bytes that no cache holds: twice the last-level cache, and at least `at_least` (large L3
// caches, 480 MiB on some Xeons, would serve part of a fixed 256 MiB).
inline std::size_t beyond_last_level_cache(std::size_t at_least) {
  return std::max(at_least, 2 * last_level_cache_bytes());
}

// The read probe's default buffer: beyond the last-level cache, at least 256 MiB.
inline std::size_t memory_probe_bytes() {
  return beyond_last_level_cache(std::size_t(256) << 20);
}

// Read bandwidth in GB/s (1e9 bytes) over a buffer of `bytes` (default memory_probe_bytes()),
// allocated and first touched once, so that the probe can be repeated next to each step of a
// measurement. It reads in the fastest of the read patterns of sum_streams (1-4 streams per thread,
// prefetched or not), chosen when it is built: the roofline is what the machine can read, not what
// one way of reading gets.
class ReadBandwidthProbe {
 public:
  explicit ReadBandwidthProbe(std::size_t bytes = memory_probe_bytes())
      : floats_(std::max(kReadUnit, bytes / sizeof(float) / kReadUnit * kReadUnit)),
        buffer_(allocate_aligned<float>(floats_)) {  // huge pages, as the weights
    float* p = buffer_.get();
#pragma omp parallel for schedule(static)
    for (std::ptrdiff_t i = 0; i < static_cast<std::ptrdiff_t>(floats_); ++i)  // by the readers
      p[i] = static_cast<float>(i & 1023) * 1e-3f;
    double fastest = 0.0;
    for (int streams = 1; streams <= kMaxReadStreams; ++streams)
      for (bool prefetch : {false, true}) {
        const double gbs = gbs_in({streams, prefetch}, 2);
        if (gbs > fastest) {
          fastest = gbs;
          pattern_ = {streams, prefetch};
        }
      }
  }

  std::size_t bytes() const {
    return floats_ * sizeof(float);
  }
  ReadPattern pattern() const {
    return pattern_;
  }
  // One pass over the buffer (the sum of its values).
  float read() const {
    return read_in(pattern_);
  }
  // The best of `passes` timed passes.
  double gbs(int passes = 4) const {
    return gbs_in(pattern_, passes);
  }

 private:
  float read_in(ReadPattern pattern) const {
    return selected_kernels().sum_streams(buffer_.get(), floats_, pattern);
  }
  double gbs_in(ReadPattern pattern, int passes) const {
    volatile float sink = 0.0f;
    const double seconds = best_seconds(passes, [&] { sink = sink + read_in(pattern); });
    return double(bytes()) / seconds / 1e9;
  }

  std::size_t floats_;
  AlignedArray<float> buffer_;
  ReadPattern pattern_;
};

// The default number of timed passes per thread of each peak probe (about 10 ms in all).
inline constexpr int kPeakPasses = 32;

// Peak float32 FMA throughput in GFLOP/s (2 FLOP per lane per FMA) on all threads.
inline double fma_peak_gflops(int passes = kPeakPasses) {
  return selected_kernels().fma_peak(passes);
}

// Peak int8 dot-product throughput in GOP/s (2 operations per byte product) on all threads; 0
// when the kernels have no int8 dot-product instruction (the int8 kernel then runs a plain loop).
inline double int8_dot_peak_gops(int passes = kPeakPasses) {
  const CpuKernels& kernels = selected_kernels();
  return kernels.int8_dot_peak ? kernels.int8_dot_peak(passes) : 0.0;
}

// Peak bf16 tile-product throughput in GFLOP/s on all threads; 0 when the bf16 kernel multiplies
// on the FMAs (then fma_peak_gflops is its limit).
inline double bf16_dot_peak_gflops(int passes = kPeakPasses) {
  const CpuKernels& kernels = selected_kernels();
  return kernels.bf16_tile_peak ? kernels.bf16_tile_peak(passes) : 0.0;
}

// Peak bf16 vector dot-product throughput (vdpbf16ps) in GFLOP/s on all threads; 0 when the
// kernels are not built for AVX-512 or the CPU lacks AVX-512 BF16.
inline double bf16_vector_dot_peak_gflops(int passes = kPeakPasses) {
  const CpuKernels& kernels = selected_kernels();
  return kernels.bf16_vector_dot_peak ? kernels.bf16_vector_dot_peak(passes) : 0.0;
}

}  // namespace recurrent_depth::cpu
