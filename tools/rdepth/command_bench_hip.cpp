// rdepth bench --backend hip: bench_measure.hpp's measurement of a model on HipBackend, reported
// against the GPU's own measured limits (backends/hip/device_limits.hpp): each decode step against
// the read bandwidth of the probe kernel taken right before it (the decode roofline: bandwidth /
// weight bytes per token), the prefill against the float FMA peak (the units the GEMM runs on: it
// has no matrix-core version yet, so no tensor peak is quoted) and against reading the weights
// once per core iteration for the whole prompt; HIP's device-to-device copy as the peer of the
// read kernel. Also the device, the device memory in use after the prefill and the KV cache bytes.
// In an rdepth built without HIP, bench_on_hip refuses.
#include <algorithm>
#include <cstdio>
#include <iostream>
#include <string>

#include <nlohmann/json.hpp>

#include "bench_measure.hpp"
#include "common.hpp"
#if defined(RDEPTH_WITH_HIP)
#include "recurrent_depth/backends/hip/device_limits.hpp"
#endif

namespace rdepth {

#if defined(RDEPTH_WITH_HIP)
namespace {

template <class Model>
int run_bench_hip(const Model& model, const Arguments& args, const std::string& source,
                  double load_seconds) {
  const BenchPlan plan = bench_plan(args, model.config());
  const rd::hip::DeviceInfo device = rd::hip::device_info();
  auto session = bench_session(model, args);
  const double prefill_seconds = time_prefill(model, session, plan);
  // Device memory in use (by anything) with the model loaded and the prompt in the cache.
  const std::size_t in_use = device.memory_bytes - rd::hip::device_info().free_memory_bytes;
  const rd::TokenCost cost = model.token_cost(plan.steps);
  rd::hip::ReadBandwidthProbe probe;
  const DecodeTimes decode =
      time_decode(model, session, plan, cost.weight_bytes, [&] { return probe.gbs(2); });

  if (!plan.json) std::fprintf(stderr, "measuring the device's limits and the peer ...\n");
  const double bandwidth = median(decode.bandwidth_gbs), copy_gbs = probe.copy_gbs(3);
  const double fma_peak = rd::hip::fma_peak_gflops();
  const double decode_tps = 1.0 / median(decode.seconds),
               prefill_tps = double(plan.prompt_length) / prefill_seconds;
  const double decode_roofline = bandwidth * 1e9 / cost.weight_bytes;
  const double prefill_gflops = cost.flops * prefill_tps / 1e9;
  const double prefill_roofline = fma_peak * 1e9 / cost.flops;
  const double prefill_bandwidth_roofline = decode_roofline * double(plan.prompt_length);
  const double prefill_attainable = std::min(prefill_roofline, prefill_bandwidth_roofline);
  const std::string weights(rd::weight_format_name(weight_format(args)));

  nlohmann::ordered_json out;
  out["model"] = source;
  out["weights"] = weights;
  out["steps"] = plan.steps;
  out["backend"] = "hip";
  out["device"] = {{"name", device.name},
                   {"compute_units", device.compute_units},
                   {"l2_bytes", device.l2_bytes},
                   {"memory_bytes", device.memory_bytes}};
  out["prompt_tokens"] = plan.prompt_length;
  out["prefill_runs"] = plan.prefill_runs;
  out["decode_tokens"] = plan.gen;
  out["load_seconds"] = load_seconds;
  out["prefill_tokens_per_second"] = prefill_tps;
  out["decode_tokens_per_second"] = decode_tps;
  out["decode_step_seconds_median"] = median(decode.seconds);
  out["weight_bytes"] = model.summary().weight_bytes;
  out["weight_bytes_per_token"] = cost.weight_bytes;
  out["flops_per_token"] = cost.flops;
  out["read_bandwidth_gbs"] = bandwidth;
  out["read_probe_bytes"] = probe.bytes();
  out["fma_peak_gflops"] = fma_peak;
  out["decode_roofline_tokens_per_second"] = decode_roofline;
  out["decode_fraction_of_roofline"] = median(decode.fraction);
  out["decode_kv_bytes_read_median"] = median(decode.kv_bytes);
  out["decode_fraction_of_roofline_with_kv"] = median(decode.fraction_with_kv);
  out["decode_step_seconds"] = decode.seconds;
  out["read_bandwidth_gbs_per_step"] = decode.bandwidth_gbs;
  out["decode_weight_gbs"] = cost.weight_bytes * decode_tps / 1e9;
  out["prefill_gflops"] = prefill_gflops;
  out["prefill_roofline_tokens_per_second"] = prefill_roofline;
  out["prefill_fraction_of_fma_peak"] = prefill_tps / prefill_roofline;
  out["prefill_bandwidth_roofline_tokens_per_second"] = prefill_bandwidth_roofline;
  out["prefill_attainable_tokens_per_second"] = prefill_attainable;
  out["prefill_fraction_of_attainable"] = prefill_tps / prefill_attainable;
  out["peer"] = {{"what", "HIP's device-to-device copy (bytes read + written), vs the read probe"},
                 {"copy_gbs", copy_gbs},
                 {"read_gbs", bandwidth}};
  out["device_memory_in_use_bytes"] = in_use;
  out["kv_bytes"] = session.cache.bytes();
  out["kv_format"] = rd::kv_format_name(session.cache.format());
  if (plan.json) {
    std::cout << out.dump() << std::endl;
    return 0;
  }
  std::printf("%s, %s weights, r = %d, on %s (%d compute units, %.1f GB)\n", source.c_str(),
              weights.c_str(), plan.steps, device.name.c_str(), device.compute_units,
              device.memory_bytes / 1e9);
  std::printf(
      "  prefill  %9.2f tok/s  %8.1f GFLOP/s  = %5.1f%% of the float FMA peak (%.0f GFLOP/s)\n"
      "           %5.1f%% of the attainable %.2f tok/s: the lower of that peak and reading the "
      "weights once per iteration for the %zu tokens (%.2f tok/s)\n",
      prefill_tps, prefill_gflops, 100.0 * prefill_tps / prefill_roofline, fma_peak,
      100.0 * prefill_tps / prefill_attainable, prefill_attainable, plan.prompt_length,
      prefill_bandwidth_roofline);
  const auto [low, high] =
      std::minmax_element(decode.bandwidth_gbs.begin(), decode.bandwidth_gbs.end());
  std::printf(
      "  decode   %9.3f tok/s  %8.1f GB/s     = %5.1f%% of the read bandwidth (%.1f GB/s; "
      "%.1f-%.1f over the steps; probe over %.0f MB)\n",
      decode_tps, cost.weight_bytes * decode_tps / 1e9, 100.0 * median(decode.fraction), bandwidth,
      *low, *high, probe.bytes() / 1e6);
  print_decode_kv(decode, session.cache.format());
  std::printf(
      "  per token: %.3g weight bytes, %.3g FLOP; rooflines: decode %.3f tok/s, prefill %.2f "
      "tok/s\n",
      cost.weight_bytes, cost.flops, decode_roofline, prefill_roofline);
  std::printf(
      "  peer: HIP's device-to-device copy %.1f GB/s (read + write) vs the read probe %.1f\n",
      copy_gbs, bandwidth);
  std::printf("  memory: weights %.2f GB, device memory in use %.2f GB, KV cache %.1f MB (%s)\n",
              model.summary().weight_bytes / 1e9, in_use / 1e9, session.cache.bytes() / 1e6,
              rd::kv_format_name(session.cache.format()).data());
  return 0;
}

}  // namespace
#endif

int bench_on_hip(const Arguments& args, const ModelSource& source, BenchClock::time_point start) {
#if defined(RDEPTH_WITH_HIP)
  return with_hip_model(source.config, source.checkpoint, weight_format(args), source.label,
                        !args.has("--json"), [&](const auto& model) {
                          return run_bench_hip(model, args, source.name, seconds_since(start));
                        });
#else
  (void)args, (void)source, (void)start;
  fail_without_hip();
#endif
}

}  // namespace rdepth
