// The machine's limits, measured in the same run so every figure can be read next to them, with
// the probes of recurrent_depth/backends/cpu/machine_limits.hpp (also behind `rdepth bench`):
// machine/read_bandwidth sums a 1 GiB float array with all OpenMP threads in the fastest read
// pattern (the ReadBandwidthProbe of rdepth bench, larger);
// machine/peak_fma runs independent register-resident FMA chains on all threads with the SIMD
// batch of the selected kernels (kernel_dispatch.hpp);
// machine/peak_int8_dot the same with the int8 kernel's vpdpbusd (kernels with AVX-512 VNNI).
#include <cstddef>

#include "fixtures.hpp"
#include "recurrent_depth/backends/cpu/machine_limits.hpp"

namespace rdbench {
namespace {

void read_bandwidth(benchmark::State& state) {
  const rd::cpu::ReadBandwidthProbe& probe = fixture_cache().get<rd::cpu::ReadBandwidthProbe>(
      "machine/read_bandwidth",
      [] { return std::make_unique<rd::cpu::ReadBandwidthProbe>(std::size_t(1) << 30); });
  for (auto _ : state) {
    float total = probe.read();
    benchmark::DoNotOptimize(total);
  }
  state.counters["read_GB/s"] =
      benchmark::Counter(double(probe.bytes()), benchmark::Counter::kIsIterationInvariantRate,
                         benchmark::Counter::kIs1000);
  state.counters["threads"] = benchmark::Counter(rd::max_threads());
  state.counters["streams"] = benchmark::Counter(probe.pattern().streams);
  state.counters["prefetch"] = benchmark::Counter(probe.pattern().prefetch);
}

constexpr long kSteps = 1 << 22;

void peak_fma(benchmark::State& state) {
  for (auto _ : state) {
    float sink = rd::cpu::selected_kernels().fma_chains(kSteps);
    benchmark::DoNotOptimize(sink);
  }
  const double flops = rd::cpu::selected_kernels().fma_chains_flops(kSteps);
  state.counters["GFLOP/s"] = benchmark::Counter(
      flops, benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
  state.counters["threads"] = benchmark::Counter(rd::max_threads());
}

void peak_int8_dot(benchmark::State& state) {
  for (auto _ : state) {
    int sink = rd::cpu::selected_kernels().int8_dot_chains(kSteps);
    benchmark::DoNotOptimize(sink);
  }
  const double ops = rd::cpu::selected_kernels().int8_dot_chains_ops(kSteps);
  state.counters["GOP/s"] = benchmark::Counter(ops, benchmark::Counter::kIsIterationInvariantRate,
                                               benchmark::Counter::kIs1000);
  state.counters["threads"] = benchmark::Counter(rd::max_threads());
}

void peak_bf16_dot(benchmark::State& state) {
  for (auto _ : state) {
    int sink = rd::cpu::selected_kernels().bf16_dot_chains(kSteps);
    benchmark::DoNotOptimize(sink);
  }
  const double flops = rd::cpu::selected_kernels().bf16_dot_chains_flops(kSteps);
  state.counters["GFLOP/s"] = benchmark::Counter(
      flops, benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
  state.counters["threads"] = benchmark::Counter(rd::max_threads());
}

}  // namespace

void register_machine_benchmarks() {
  benchmark::RegisterBenchmark("machine/read_bandwidth", read_bandwidth)
      ->UseRealTime()
      ->Unit(benchmark::kMillisecond)
      ->MinTime(0.5);
  benchmark::RegisterBenchmark("machine/peak_fma", peak_fma)
      ->UseRealTime()
      ->Unit(benchmark::kMillisecond)
      ->MinTime(0.3);
  if (rd::cpu::selected_kernels().int8_dot_chains)
    benchmark::RegisterBenchmark("machine/peak_int8_dot", peak_int8_dot)
        ->UseRealTime()
        ->Unit(benchmark::kMillisecond)
        ->MinTime(0.3);
  if (rd::cpu::selected_kernels().bf16_dot_chains)
    benchmark::RegisterBenchmark("machine/peak_bf16_dot", peak_bf16_dot)
        ->UseRealTime()
        ->Unit(benchmark::kMillisecond)
        ->MinTime(0.3);
}

}  // namespace rdbench
