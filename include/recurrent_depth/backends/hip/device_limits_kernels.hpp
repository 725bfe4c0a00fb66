// The kernels of the device probes (device_limits.hpp) and the functions that launch them; like
// hip_backend_kernels.hpp (which includes this) they are defined once, in the one HIP-compiled file
// of recurrent_depth::hip.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "device_limits.hpp"
#include "device_math.hpp"
#include "kernel_launch.hpp"

namespace recurrent_depth::hip {

namespace kernels {

// partials[block] = the sum of the block's share of `vectors` 16-byte vectors of floats, read in a
// grid-stride loop with four loads in flight per thread. Block: ReadBandwidthProbe::kThreads.
template <class = void>
__global__ void read_sum(const device::Vector16* data, std::size_t vectors, float* partials) {
  __shared__ float scratch[32];
  const std::size_t stride = std::size_t(gridDim.x) * blockDim.x;
  std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x;
  float sums[4] = {0, 0, 0, 0};
  const auto add = [&](const device::Vector16& v) {
    for (int k = 0; k < 4; ++k) sums[k] += __builtin_bit_cast(float, v.words[k]);
  };
  for (; i + 3 * stride < vectors; i += 4 * stride) {
    const device::Vector16 a = data[i], b = data[i + stride], c = data[i + 2 * stride],
                           d = data[i + 3 * stride];
    add(a);
    add(b);
    add(c);
    add(d);
  }
  for (; i < vectors; i += stride) add(data[i]);
  const float total =
      device::block_reduce((sums[0] + sums[1]) + (sums[2] + sums[3]), device::Sum{}, scratch);
  if (threadIdx.x == 0) partials[blockIdx.x] = total;
}

// data[i] = value for i < count (a grid-stride loop).
template <class = void>
__global__ void fill(float* data, std::size_t count, float value) {
  const std::size_t stride = std::size_t(gridDim.x) * blockDim.x;
  for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < count; i += stride)
    data[i] = value;
}

// out[thread] = the sum of the thread's kFmaChains chains after `iterations` FMAs each.
template <class = void>
__global__ void fma_chains(int iterations, float* out) {
  const std::size_t t = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x;
  float x[kFmaChains];
  for (unsigned c = 0; c < kFmaChains; ++c) x[c] = 1.0f + float(t * kFmaChains + c) * 0x1p-20f;
  const float a = 0.9999f, b = 1e-4f;
  for (int i = 0; i < iterations; ++i) {
#pragma unroll
    for (unsigned c = 0; c < kFmaChains; ++c) x[c] = fmaf(x[c], a, b);
  }
  float sum = 0;
  for (unsigned c = 0; c < kFmaChains; ++c) sum += x[c];
  out[t] = sum;
}

}  // namespace kernels

ReadBandwidthProbe::ReadBandwidthProbe(std::size_t bytes) {
  const DeviceInfo info = device_info();
  if (bytes == 0)
    bytes = std::min(std::max(std::size_t(64) * info.l2_bytes, std::size_t(256) << 20),
                     info.free_memory_bytes / 4);
  const std::size_t vectors = bytes / 16;
  require(vectors > 0, "ReadBandwidthProbe: ", bytes, " bytes is less than one 16-byte vector");
  blocks_ = unsigned(std::max(1, info.compute_units)) * kBlocksPerUnit;
  data_.resize(vectors * 4);
  partials_.resize(blocks_);
  const ScopedStream on(stream_);
  launch("fill", kernels::fill<>, dim3(blocks_), dim3(kThreads), data_.data(), data_.size(), 1.0f);
  check(hipStreamSynchronize(stream_.get()), "hipStreamSynchronize");
}

void ReadBandwidthProbe::launch_read() {
  const ScopedStream on(stream_);
  launch("read_sum", kernels::read_sum<>, dim3(blocks_), dim3(kThreads),
         reinterpret_cast<const device::Vector16*>(data_.data()), data_.size() / 4,
         partials_.data());
}

double ReadBandwidthProbe::sum() {
  launch_read();
  // download() waits for the current stream only; the read kernel ran on stream_.
  check(hipStreamSynchronize(stream_.get()), "hipStreamSynchronize");
  std::vector<float> partials(partials_.size());
  partials_.download(partials);
  double total = 0;
  for (const float p : partials) total += p;
  return total;
}

double ReadBandwidthProbe::gbs(int passes) {
  launch_read();  // a first pass, untimed: the kernel's first launch loads its code
  return double(bytes()) / best_stream_seconds(stream_, passes, [&] { launch_read(); }) / 1e9;
}

std::vector<float> fma_chain_results(unsigned blocks, int iterations) {
  DeviceBuffer<float> out(std::size_t(blocks) * kFmaThreads);
  launch("fma_chains", kernels::fma_chains<>, dim3(blocks), dim3(kFmaThreads), iterations,
         out.data());
  std::vector<float> results(out.size());
  out.download(results);
  return results;
}

double fma_peak_gflops(int passes) {
  const unsigned blocks = unsigned(std::max(1, device_info().compute_units)) * 8;
  DeviceBuffer<float> out(std::size_t(blocks) * kFmaThreads);
  const Stream stream;
  const ScopedStream on(stream);
  const auto run = [&](int iterations) {
    return best_stream_seconds(stream, 1, [&] {
      launch("fma_chains", kernels::fma_chains<>, dim3(blocks), dim3(kFmaThreads), iterations,
             out.data());
    });
  };
  int iterations = 256;
  while (run(iterations) < 0.02 && iterations < (1 << 26)) iterations *= 2;
  double best = 1e30;
  for (int pass = 0; pass < passes; ++pass) best = std::min(best, run(iterations));
  const double fmas = double(out.size()) * kFmaChains * double(iterations);
  return 2.0 * fmas / best / 1e9;
}

}  // namespace recurrent_depth::hip
