// The machine's limits, measured in the same run so every figure can be read next to them, with
// the probes of recurrent_depth/backends/cpu/machine_limits.hpp (also behind `rdepth bench`):
// machine/read_bandwidth sums a 1 GiB float array with all OpenMP threads in the fastest read
// pattern (the ReadBandwidthProbe of rdepth bench, larger);
// machine/peak_fma runs independent register-resident FMA chains on all threads with the SIMD
// batch of the selected kernels (kernel_dispatch.hpp), timed per thread;
// machine/peak_int8_dot the same with the int8 kernel's vpdpbusd (kernels with AVX-512 VNNI) or,
// on the AMX table, its tile product tdpbsud; machine/peak_bf16_dot the AMX table's tdpbf16ps;
// machine/peak_bf16_vector_dot AVX-512 BF16's vdpbf16ps where the CPU has it (AVX-512 tables).
#include <algorithm>
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

// One of the selected kernels' peak probes (machine_probes.hpp: per-thread timed passes, summed
// over the team): counter `unit` is the best rate of the iterations, in 1e9 per second.
void peak_probe(benchmark::State& state, double (*probe)(int passes), const char* unit) {
  double best = 0.0;
  for (auto _ : state) best = std::max(best, probe(8));
  state.counters[unit] =
      benchmark::Counter(best * 1e9, benchmark::Counter::kDefaults, benchmark::Counter::kIs1000);
  state.counters["threads"] = benchmark::Counter(rd::max_threads());
}

}  // namespace

void register_machine_benchmarks() {
  benchmark::RegisterBenchmark("machine/read_bandwidth", read_bandwidth)
      ->UseRealTime()
      ->Unit(benchmark::kMillisecond)
      ->MinTime(0.5);
  const rd::cpu::CpuKernels* kernels = &rd::cpu::selected_kernels();  // chosen once, static
  const auto register_peak = [](const char* name, auto probe) {
    benchmark::RegisterBenchmark(name, probe)
        ->UseRealTime()
        ->Unit(benchmark::kMillisecond)
        ->MinTime(0.3);
  };
  register_peak("machine/peak_fma", [kernels](benchmark::State& state) {
    peak_probe(state, kernels->fma_peak, "GFLOP/s");
  });
  if (kernels->int8_dot_peak)
    register_peak("machine/peak_int8_dot", [kernels](benchmark::State& state) {
      peak_probe(state, kernels->int8_dot_peak, "GOP/s");
    });
  if (kernels->bf16_tile_peak)
    register_peak("machine/peak_bf16_dot", [kernels](benchmark::State& state) {
      peak_probe(state, kernels->bf16_tile_peak, "GFLOP/s");
    });
  if (kernels->bf16_vector_dot_peak && rd::cpu::missing_cpu_features(rd::cpu::kAvx512bf16).empty())
    register_peak("machine/peak_bf16_vector_dot", [kernels](benchmark::State& state) {
      peak_probe(state, kernels->bf16_vector_dot_peak, "GFLOP/s");
    });
}

}  // namespace rdbench
