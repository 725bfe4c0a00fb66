// recurrent_depth_benchmarks: Google Benchmark suite of the CPU backend. Benchmarks are
// registered here in the order they run (machine limits first, then per shape and weight format:
// kernels, then blocks), because fixtures are built once and dropped when the next one is
// needed (see FixtureCache in fixtures.hpp).
#include <string>

#include "fixtures.hpp"
#include "recurrent_depth/backends/cpu/simd.hpp"

int main(int argc, char** argv) {
  namespace rd = recurrent_depth;
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;

  rdbench::register_machine_benchmarks();
  for (const char* shape : rdbench::kShapes) {
    for (rd::WeightFormat format : {rd::WeightFormat::bf16, rd::WeightFormat::int8,
                                    rd::WeightFormat::q4, rd::WeightFormat::f32}) {
      rdbench::register_kernel_benchmarks(shape, format);
      rdbench::register_block_benchmarks(shape, format);
    }
  }

  benchmark::AddCustomContext("omp_threads", std::to_string(rd::max_threads()));
  const rd::cpu::CpuKernels& kernels = rd::cpu::selected_kernels();
  benchmark::AddCustomContext("kernels", std::string(kernels.name) + " (" + kernels.simd + ")");
  benchmark::AddCustomContext("rotation_MiB", std::to_string(rdbench::rotation_bytes() >> 20));
  benchmark::AddCustomContext("kv_context", std::to_string(rdbench::kContext));
  benchmark::AddCustomContext("prefill_chunk", std::to_string(rdbench::kPrefillChunk));

  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
