// The device probes (backends/hip/device_limits.hpp): the read kernel sums a buffer of fresh random
// values of a size that is not a multiple of its grid's threads to what the host sums; the FMA
// kernel's chains give bit for bit what std::fma gives on the host; the timed figures are finite
// and positive; the device's properties are read. Skipped without a GPU.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstddef>
#include <vector>

#include "recurrent_depth/backends/hip/device_limits.hpp"
#include "recurrent_depth/core/random.hpp"
#include "skip_without_gpu.hpp"

using namespace recurrent_depth;
namespace rdhip = recurrent_depth::hip;  // HIP-CPU has a global namespace hip

TEST_CASE("the device's properties are read", "[hip][limits]") {
  if (hip_test::skipped_without_gpu("the device probes")) return;
  const rdhip::DeviceInfo info = rdhip::device_info();
  CHECK(!info.name.empty());
  CHECK(info.compute_units > 0);
  CHECK(info.memory_bytes > 0);
  CHECK(info.free_memory_bytes <= info.memory_bytes);
}

TEST_CASE("the read probe sums its buffer as the host does", "[hip][limits]") {
  if (hip_test::skipped_without_gpu("the device probes")) return;
  Rng rng(31);
  // Vectors not a multiple of the grid's threads (nor of four loads per thread).
  const std::size_t vectors = 3 * rdhip::ReadBandwidthProbe::kThreads * 7 + 13;
  rdhip::ReadBandwidthProbe probe(vectors * 16 + 9);  // the 9 bytes are rounded away
  REQUIRE(probe.bytes() == vectors * 16);
  std::vector<float> values(vectors * 4);
  double sum = 0, magnitude = 0;
  for (float& v : values) {
    v = float(rng.uniform() - 0.3);
    sum += v;
    magnitude += std::abs(v);
  }
  probe.buffer().upload(values);
  // float partial sums of n values: each within n * 2^-24 of the magnitude (a bound, generous).
  const double bound = double(values.size()) * 0x1p-24 * magnitude;
  CHECK(std::abs(probe.sum() - sum) <= bound);
  // The buffer's default contents: ones.
  rdhip::ReadBandwidthProbe ones(4096 * 16);
  CHECK(ones.sum() == 4096.0 * 4);
}

TEST_CASE("the FMA probe's chains give what std::fma gives", "[hip][limits]") {
  if (hip_test::skipped_without_gpu("the device probes")) return;
  const unsigned blocks = 3;
  const int iterations = 1001;
  const std::vector<float> device = rdhip::fma_chain_results(blocks, iterations);
  REQUIRE(device.size() == blocks * rdhip::kFmaThreads);
  for (std::size_t t = 0; t < device.size(); t += 37) {
    float sum = 0;
    for (unsigned c = 0; c < rdhip::kFmaChains; ++c) {
      float x = 1.0f + float(t * rdhip::kFmaChains + c) * 0x1p-20f;
      for (int i = 0; i < iterations; ++i) x = std::fma(x, 0.9999f, 1e-4f);
      sum += x;
    }
    INFO("thread " << t);
    CHECK(device[t] == sum);
  }
}

TEST_CASE("the timed probes give finite positive figures", "[hip][limits]") {
  if (hip_test::skipped_without_gpu("the device probes")) return;
  rdhip::ReadBandwidthProbe probe(std::size_t(8) << 20);
  const double read = probe.gbs(2), copy = probe.copy_gbs(2), fma = rdhip::fma_peak_gflops(1);
  CHECK(std::isfinite(read));
  CHECK(read > 0);
  CHECK(std::isfinite(copy));
  CHECK(copy > 0);
  CHECK(std::isfinite(fma));
  CHECK(fma > 0);
}
