// rdepth bench: end-to-end speed of a model (a directory, or seeded random weights of a named
// shape) at r core iterations: prefill tokens/s over a prompt of P tokens and decode tokens/s
// (median per-token time of N one-token steps), each next to this machine's measured limits (read
// bandwidth -> decode roofline, probed right before each decode step, the fraction being the
// median over the steps of each step's against its own probe; FMA, vector bf16, int8 and tile
// peaks -> prefill rooflines; the attainable prefill rate, the lower of the peak of the units the
// prompt runs on and the bandwidth roofline times the prompt's positions per weight read) and
// to a peer measured in the same run (Eigen's float matrix-vector and matrix-matrix products on the
// core MLP's weight shape, against this library's kernel on the same matrix). Also weight bytes and
// FLOPs per token, resident memory (after the prefill) and KV cache bytes. The measurement itself
// is bench_measure.hpp's; with --backend hip, command_bench_hip.cpp reports it against the GPU.
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include <Eigen/Dense>
#include <nlohmann/json.hpp>

#include "bench_measure.hpp"
#include "common.hpp"
#include "recurrent_depth/backends/cpu/machine_limits.hpp"

namespace rdepth {
namespace {

Arguments bench_arguments() {
  return Arguments(
      "bench",
      "(--model DIR | --shape tiny|huginn-mini|huginn-0125) [--weights f32|bf16|int8|q4]\n"
      "                    [--backend cpu|hip] [--steps R] [--prompt P] [--gen N]\n"
      "                    [--prefill-runs K] [--kv-format f32|bf16] [--threads N] [--json]",
      "Measures prefill (forwards over P random token ids: the median of K after a warm-up) and\n"
      "decode (N further tokens, one at a time; the median step) at r core iterations, and prints\n"
      "them with the weight bytes and FLOPs one token costs, the machine's measured read\n"
      "bandwidth (probed before each decode step) and peaks (FMA; int8, bf16 tile and bf16 vector\n"
      "dot products where the kernels have them), the rooflines these give (decode: bandwidth /\n"
      "bytes per token; prefill: peak / FLOPs per token, and the attainable rate: the lower of\n"
      "the peak of the units the prompt runs on and P times the decode roofline, every weight\n"
      "being read once per core iteration for the P positions) and the fractions reached, Eigen's\n"
      "float GEMV/GEMM on the core MLP's weight shape as a peer next to this library's kernel on\n"
      "the same matrix, the resident memory after the prefill and the KV cache bytes. --shape\n"
      "builds seeded random weights in memory (one block's values repeated: the model still holds\n"
      "every block). --backend hip measures the GPU's instead: its read bandwidth (a kernel over\n"
      "a buffer far beyond its L2, before each decode step), HIP's device-to-device copy as the\n"
      "peer, its float FMA peak, and the device memory in use.",
      {model_flag(),
       shape_flag(),
       weights_flag(),
       backend_flag(),
       steps_flag(),
       {"--prompt", "P", "prompt tokens for the prefill measurement (default 64)"},
       {"--gen", "N", "decoded tokens for the decode measurement (default 8)"},
       {"--prefill-runs", "K",
        "measured prefills after the warm-up, their median reported (default 3)"},
       kv_format_flag(),
       threads_flag(),
       {"--json", "", "print one JSON object on stdout"}});
}

// VmRSS / VmHWM of this process in bytes (0 where /proc is missing).
std::size_t proc_status_bytes(const std::string& key) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(key + ":", 0) == 0) return std::stoull(line.substr(key.size() + 1)) * 1024;
  return 0;
}

struct PeerFigures {
  double eigen_gemv_gbs, library_gemv_gbs, eigen_gemm_gflops, library_gemm_gflops;
};

// Eigen's float GEMV (one position) and GEMM (P positions) on a [rows, cols] float matrix, and
// this library's f32 kernel on the same matrix: best of a few repetitions each.
PeerFigures measure_peer(std::size_t rows, std::size_t cols, std::size_t positions) {
  rd::Rng rng(7);
  Eigen::MatrixXf w(rows, cols);
  for (Eigen::Index i = 0; i < w.size(); ++i) w.data()[i] = float(rng.uniform() - 0.5);
  Eigen::MatrixXf x = Eigen::MatrixXf::Random(cols, Eigen::Index(positions));
  Eigen::MatrixXf y(rows, Eigen::Index(positions));
  Eigen::VectorXf v = x.col(0), yv(rows);
  std::vector<float> flat(rows * cols);
  Eigen::Map<Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(
      flat.data(), Eigen::Index(rows), Eigen::Index(cols)) = w;
  const auto packed =
      rd::cpu::PackedWeights<float>::from_rows(std::span<const float>(flat), rows, cols);
  rd::Matrix<float> xs(positions, cols), ys(positions, rows);
  for (std::size_t p = 0; p < positions; ++p)
    for (std::size_t c = 0; c < cols; ++c) xs(p, c) = x(Eigen::Index(c), Eigen::Index(p));
  const rd::cpu::CpuKernels& kernels = rd::cpu::selected_kernels();
  using rd::cpu::best_seconds;
  const double bytes = double(rows * cols * sizeof(float));
  const double flops = 2.0 * double(rows * cols * positions);
  PeerFigures f{};
  f.eigen_gemv_gbs = bytes / best_seconds(9, [&] { yv.noalias() = w * v; }) / 1e9;
  const auto library_gemv = [&] {
    kernels.linear(xs.view().middle_rows(0, 1), packed, ys.view().middle_rows(0, 1));
  };
  f.library_gemv_gbs = bytes / best_seconds(9, library_gemv) / 1e9;
  f.eigen_gemm_gflops = flops / best_seconds(5, [&] { y.noalias() = w * x; }) / 1e9;
  f.library_gemm_gflops =
      flops / best_seconds(5, [&] { kernels.linear(xs.view(), packed, ys.view()); }) / 1e9;
  return f;
}

template <class Model>
int run_bench(const Model& model, const Arguments& args, const std::string& source,
              double load_seconds) {
  const rd::ModelConfig& config = model.config();
  const BenchPlan plan = bench_plan(args, config);
  auto session = bench_session(model, args);
  const double prefill_seconds = time_prefill(model, session, plan);
  // Memory with the model loaded and the prompt in the cache, before the probe below exists.
  const std::size_t resident = proc_status_bytes("VmRSS"),
                    peak_resident = proc_status_bytes("VmHWM");
  const rd::TokenCost cost = model.token_cost(plan.steps);
  const rd::cpu::ReadBandwidthProbe probe;
  const DecodeTimes decode =
      time_decode(model, session, plan, cost.weight_bytes, [&] { return probe.gbs(2); });
  const double decode_step = median(decode.seconds);

  if (!plan.json) std::fprintf(stderr, "measuring the machine's limits and the peer ...\n");
  const double bandwidth = median(decode.bandwidth_gbs);
  const double peak = rd::cpu::fma_peak_gflops();
  // int8 and q4 matmuls run on the integer dot products (q4's nibbles meet int8 activations).
  const bool int8_weights =
      weight_format(args) == rd::WeightFormat::int8 || weight_format(args) == rd::WeightFormat::q4;
  const double int8_peak = int8_weights ? rd::cpu::int8_dot_peak_gops() : 0.0;
  const bool bf16_weights = weight_format(args) == rd::WeightFormat::bf16;
  const double bf16_peak = bf16_weights ? rd::cpu::bf16_dot_peak_gflops() : 0.0;
  const double bf16_vector_peak = bf16_weights ? rd::cpu::bf16_vector_dot_peak_gflops() : 0.0;
  const PeerFigures peer = measure_peer(2 * std::size_t(config.intermediate_size),
                                        std::size_t(config.n_embd), plan.prompt_length);

  const double prefill_tps = double(plan.prompt_length) / prefill_seconds,
               decode_tps = 1.0 / decode_step;
  const double decode_roofline = bandwidth * 1e9 / cost.weight_bytes;
  // A core iteration's weights, read r times per token, may fit a cache (a large L3): their
  // bandwidth from a buffer of their size, and the roofline of reading them at it and the rest
  // from memory.
  const std::size_t iteration_bytes = std::size_t(cost.iteration_bytes);
  const double iteration_bandwidth = iteration_bytes < probe.bytes()
                                         ? rd::cpu::ReadBandwidthProbe(iteration_bytes).gbs(4)
                                         : bandwidth;
  const double decode_cached_roofline =
      1e9 / (cost.once_bytes / bandwidth + plan.steps * cost.iteration_bytes / iteration_bandwidth);
  const double prefill_gflops = cost.flops * prefill_tps / 1e9;
  const double prefill_roofline = peak * 1e9 / cost.flops;
  // What a prompt can reach: the peak of the units its products run on (the tiles or the int8
  // dot products where the kernels use them; for bf16 on vectors the faster of the FMAs and
  // AVX-512 BF16's dot products: the default tables use the FMAs, x86_64_v4_bf16 the dot
  // products; else the FMAs), or reading
  // every weight once per core iteration for all P positions at the measured bandwidth,
  // whichever is lower.
  const double units_peak = int8_peak > 0   ? int8_peak
                            : bf16_peak > 0 ? bf16_peak
                                            : std::max(peak, bf16_vector_peak);
  const double prefill_bandwidth_roofline = decode_roofline * double(plan.prompt_length);
  const double prefill_attainable =
      std::min(units_peak * 1e9 / cost.flops, prefill_bandwidth_roofline);
  const std::string weights(rd::weight_format_name(weight_format(args)));

  nlohmann::ordered_json out;
  out["model"] = source;
  out["weights"] = weights;
  out["steps"] = plan.steps;
  out["threads"] = rd::max_threads();
  const rd::cpu::CpuKernels& kernels = rd::cpu::selected_kernels();
  out["kernels"] = kernels.name;
  out["simd"] = kernels.simd;
  out["prompt_tokens"] = plan.prompt_length;
  out["prefill_runs"] = plan.prefill_runs;
  out["decode_tokens"] = plan.gen;
  out["load_seconds"] = load_seconds;
  out["prefill_tokens_per_second"] = prefill_tps;
  out["decode_tokens_per_second"] = decode_tps;
  out["decode_step_seconds_median"] = decode_step;
  out["weight_bytes"] = model.summary().weight_bytes;
  out["weight_bytes_per_token"] = cost.weight_bytes;
  out["flops_per_token"] = cost.flops;
  out["read_bandwidth_gbs"] = bandwidth;
  out["read_probe_bytes"] = probe.bytes();
  out["read_pattern"] = {{"streams", probe.pattern().streams},
                         {"prefetch", probe.pattern().prefetch}};
  out["peak_gflops"] = peak;
  out["decode_roofline_tokens_per_second"] = decode_roofline;
  out["decode_fraction_of_roofline"] = median(decode.fraction);
  out["decode_kv_bytes_read_median"] = median(decode.kv_bytes);
  out["decode_fraction_of_roofline_with_kv"] = median(decode.fraction_with_kv);
  out["once_weight_bytes"] = cost.once_bytes;
  out["iteration_weight_bytes"] = cost.iteration_bytes;
  out["iteration_read_bandwidth_gbs"] = iteration_bandwidth;
  out["decode_cached_roofline_tokens_per_second"] = decode_cached_roofline;
  out["decode_fraction_of_cached_roofline"] = decode_tps / decode_cached_roofline;
  out["decode_step_seconds"] = decode.seconds;
  out["read_bandwidth_gbs_per_step"] = decode.bandwidth_gbs;
  out["decode_weight_gbs"] = cost.weight_bytes * decode_tps / 1e9;
  out["prefill_roofline_tokens_per_second"] = prefill_roofline;
  out["prefill_fraction_of_peak"] = prefill_tps / prefill_roofline;
  out["prefill_gflops"] = prefill_gflops;
  out["prefill_units_peak_gflops"] = units_peak;
  out["prefill_bandwidth_roofline_tokens_per_second"] = prefill_bandwidth_roofline;
  out["prefill_attainable_tokens_per_second"] = prefill_attainable;
  out["prefill_fraction_of_attainable"] = prefill_tps / prefill_attainable;
  if (int8_peak > 0) {  // int8 matmuls run on the integer dot-product units, not the FMAs
    out["int8_dot_peak_gops"] = int8_peak;
    out["prefill_fraction_of_int8_peak"] = prefill_gflops / int8_peak;
  }
  if (bf16_peak > 0) {  // bf16 matmuls of a prompt run on the AMX tiles, not the FMAs
    out["bf16_dot_peak_gflops"] = bf16_peak;
    out["prefill_fraction_of_bf16_peak"] = prefill_gflops / bf16_peak;
  }
  if (bf16_vector_peak > 0) {  // AVX-512 BF16's dot products: the vector units' bf16 peak
    out["bf16_vector_dot_peak_gflops"] = bf16_vector_peak;
    out["prefill_fraction_of_bf16_vector_peak"] = prefill_gflops / bf16_vector_peak;
  }
  out["peer"] = {
      {"what", "Eigen float GEMV/GEMM on the core MLP fc shape, vs this library's f32 kernel"},
      {"eigen_gemv_gbs", peer.eigen_gemv_gbs},
      {"library_gemv_gbs", peer.library_gemv_gbs},
      {"eigen_gemm_gflops", peer.eigen_gemm_gflops},
      {"library_gemm_gflops", peer.library_gemm_gflops}};
  out["resident_bytes"] = resident;
  out["peak_resident_bytes"] = peak_resident;
  out["kv_bytes"] = session.cache.bytes();
  out["kv_format"] = rd::kv_format_name(session.cache.format());
  if (plan.json) {
    std::cout << out.dump() << std::endl;
    return 0;
  }
  std::printf("%s, %s weights, r = %d, %d threads, kernels %s (%s)\n", source.c_str(),
              weights.c_str(), plan.steps, rd::max_threads(), kernels.name, kernels.simd);
  std::printf("  prefill  %9.2f tok/s  %8.1f GFLOP/s  = %5.1f%% of the FMA peak (%.0f GFLOP/s)\n",
              prefill_tps, prefill_gflops, 100.0 * prefill_tps / prefill_roofline, peak);
  if (int8_peak > 0)
    std::printf("           (integer matmuls: %5.1f%% of the int8 dot-product peak, %.0f GOP/s)\n",
                100.0 * prefill_gflops / int8_peak, int8_peak);
  if (bf16_peak > 0)
    std::printf("           (bf16 matmuls: %5.1f%% of the AMX bf16 tile peak, %.0f GFLOP/s)\n",
                100.0 * prefill_gflops / bf16_peak, bf16_peak);
  if (bf16_vector_peak > 0)
    std::printf("           (%5.1f%% of the AVX-512 BF16 vector dot-product peak, %.0f GFLOP/s)\n",
                100.0 * prefill_gflops / bf16_vector_peak, bf16_vector_peak);
  std::printf(
      "           %5.1f%% of the attainable %.2f tok/s: the lower of the units' peak (%.2f tok/s) "
      "and reading the weights once per iteration for the %zu tokens (%.2f tok/s)\n",
      100.0 * prefill_tps / prefill_attainable, prefill_attainable, units_peak * 1e9 / cost.flops,
      plan.prompt_length, prefill_bandwidth_roofline);
  const auto [low, high] =
      std::minmax_element(decode.bandwidth_gbs.begin(), decode.bandwidth_gbs.end());
  std::printf(
      "  decode   %9.3f tok/s  %8.1f GB/s     = %5.1f%% of the read bandwidth (%.1f GB/s; "
      "%.1f-%.1f over the steps; %d streams per thread%s)\n",
      decode_tps, cost.weight_bytes * decode_tps / 1e9, 100.0 * median(decode.fraction), bandwidth,
      *low, *high, probe.pattern().streams, probe.pattern().prefetch ? ", prefetched" : "");
  print_decode_kv(decode, session.cache.format());
  std::printf(
      "           %5.1f%% of %.3f tok/s, a core iteration's %.1f MB of weights read at %.1f GB/s "
      "(a buffer of their size: they may fit a cache)\n",
      100.0 * decode_tps / decode_cached_roofline, decode_cached_roofline,
      cost.iteration_bytes / 1e6, iteration_bandwidth);
  std::printf(
      "  per token: %.3g weight bytes, %.3g FLOP; rooflines: decode %.3f tok/s, prefill %.2f "
      "tok/s\n",
      cost.weight_bytes, cost.flops, decode_roofline, prefill_roofline);
  std::printf(
      "  peer (float, core MLP fc %d x %d): Eigen GEMV %.1f GB/s vs ours %.1f; Eigen GEMM %.1f "
      "GFLOP/s vs ours %.1f\n",
      2 * config.intermediate_size, config.n_embd, peer.eigen_gemv_gbs, peer.library_gemv_gbs,
      peer.eigen_gemm_gflops, peer.library_gemm_gflops);
  std::printf("  memory: weights %.2f GB, resident %.2f GB (peak %.2f GB), KV cache %.1f MB (%s)\n",
              model.summary().weight_bytes / 1e9, resident / 1e9, peak_resident / 1e9,
              session.cache.bytes() / 1e6, rd::kv_format_name(session.cache.format()).data());
  return 0;
}

}  // namespace

int command_bench(const std::vector<std::string>& words) {
  Arguments args = bench_arguments();
  if (!args.parse(words)) {
    std::cout << args.help();
    return 0;
  }
  const rd::WeightFormat format = weight_format(args);
  apply_threads(args);
  const bool quiet = args.has("--json");
  const ModelSource source = model_source(args, quiet);
  const auto start = BenchClock::now();
  if (backend(args) == BackendChoice::hip) return bench_on_hip(args, source, start);
  return with_cpu_model(
      source.config, source.checkpoint, format, source.label, !quiet,
      [&](const auto& model) { return run_bench(model, args, source.name, seconds_since(start)); });
}

}  // namespace rdepth
