// Compiled by an outside project against an installed recurrent_depth with its HIP backend: a
// seeded random model of the tiny shape built on HipBackend from a plain C++ file must give the
// CPU model's logits (relative L2 below 1e-4) where HIP sees a GPU, and refuse with HIP's "no GPU"
// message where it sees none. Exit code 0 on success.
#include <recurrent_depth/backends/hip/hip_backend.hpp>
#include <recurrent_depth/recurrent_depth.hpp>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace rd = recurrent_depth;

int main() {
  try {
    rd::HipBackend::check_machine();
  } catch (const rd::Error& e) {
    const bool expected = std::string(e.what()).find("HIP finds no GPU") != std::string::npos;
    std::printf("recurrent_depth hip consumer: %s (%s)\n", expected ? "no GPU" : "unexpected error",
                e.what());
    return expected ? 0 : 1;
  }
  const rd::ModelConfig config = rd::shape_config("tiny");
  const rd::Checkpoint checkpoint = rd::synthetic_checkpoint(config, 5, rd::DType::F32);
  const rd::RecurrentDepthModel<rd::CpuBackend, rd::F32> cpu(config, checkpoint);
  const rd::RecurrentDepthModel<rd::HipBackend, rd::F32> gpu(config, checkpoint);
  const std::vector<std::int32_t> ids = {3, 1, 4, 1, 5, 9, 2, 6};
  rd::ForwardOptions options;
  options.steps = 4;
  auto cpu_session = cpu.new_session();
  auto gpu_session = gpu.new_session();
  const rd::ForwardResult expected = cpu.forward(cpu_session, ids, options);
  const rd::ForwardResult actual = gpu.forward(gpu_session, ids, options);
  double difference = 0, norm = 0;
  for (std::size_t r = 0; r < expected.logits.rows(); ++r)
    for (std::size_t c = 0; c < expected.logits.cols(); ++c) {
      const double e = expected.logits(r, c), d = actual.logits(r, c) - e;
      difference += d * d;
      norm += e * e;
    }
  const double relative = std::sqrt(difference / norm);
  std::printf("recurrent_depth hip consumer: logits %.3g relative L2 from the CPU's\n", relative);
  return relative < 1e-4 ? 0 : 1;
}
