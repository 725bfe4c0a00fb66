// rdepth bench's measurement, the same on every backend: the flags' plan (r, a prompt of P seeded
// random token ids, N decode steps), the prefill's time, and the decode steps' times, each next to
// a bandwidth probe taken right before it (the bandwidth of a shared machine moves, so each step is
// compared with its own probe) and the KV cache's bytes it reads. command_bench.cpp reports them
// against the CPU's limits, command_bench_hip.cpp against the GPU's.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <span>
#include <string>
#include <vector>

#include "common.hpp"
#include "test_time.hpp"

namespace rdepth {

using BenchClock = std::chrono::steady_clock;

inline double seconds_since(BenchClock::time_point start) {
  return std::chrono::duration<double>(BenchClock::now() - start).count();
}

inline double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const std::size_t n = values.size();
  return n % 2 ? values[n / 2] : 0.5 * (values[n / 2 - 1] + values[n / 2]);
}

// The measured sequence, its KV cache in the model's format or --kv-format's.
template <class Model>
auto bench_session(const Model& model, const Arguments& args) {
  rd::CacheRule rule;
  rule.format = kv_format(args);
  return model.new_session(0, rule);
}

struct BenchPlan {
  int steps = 0;
  std::size_t prompt_length = 0, gen = 0;
  std::size_t prefill_runs = 0;  // measured prefills after the warm-up; their median counts
  bool json = false;
  std::vector<std::int32_t> ids;  // the prompt, then one id per decode step
};

inline BenchPlan bench_plan(const Arguments& args, const rd::ModelConfig& config) {
  BenchPlan plan;
  plan.steps = rdepth::steps(args).value_or(config.mean_recurrence);
  plan.prompt_length = std::size_t(args.integer("--prompt", 1, config.block_size - 1).value_or(64));
  plan.gen = std::size_t(args.integer("--gen", 1, 100000).value_or(8));
  plan.prefill_runs = std::size_t(args.integer("--prefill-runs", 1, 100).value_or(3));
  if (plan.prompt_length + plan.gen > std::size_t(config.block_size))
    fail("--prompt ", plan.prompt_length, " + --gen ", plan.gen, " exceed the context of ",
         config.block_size, " positions (block_size)");
  plan.json = args.has("--json");
  rd::Rng rng(1);
  plan.ids.resize(plan.prompt_length + plan.gen);
  for (auto& id : plan.ids)
    id = std::int32_t(rng.uniform() * config.vocab_size) % config.vocab_size;
  return plan;
}

inline rd::ForwardOptions bench_options(const BenchPlan& plan) {
  rd::ForwardOptions options;
  options.steps = plan.steps;
  options.all_logits = false;
  return options;
}

// Seconds of the prefill: the median of plan.prefill_runs forwards over the prompt (each returns
// after the last position's logits reached the host, on every backend), after one unmeasured
// warm-up forward that starts the thread team and touches the KV cache's and the scratch
// buffers' memory first (as llama-bench's warm-up run does). The cache is emptied between the
// runs, keeping its memory, and holds the prompt afterwards.
template <class Model>
double time_prefill(const Model& model, typename Model::SessionType& session,
                    const BenchPlan& plan) {
  if (!plan.json)
    std::fprintf(stderr, "prefill of %zu tokens at r = %d (a warm-up and %zu runs) ...\n",
                 plan.prompt_length, plan.steps, plan.prefill_runs);
  const auto prompt = std::span(plan.ids).first(plan.prompt_length);
  model.forward(session, prompt, bench_options(plan));
  std::vector<double> seconds;
  for (std::size_t run = 0; run < plan.prefill_runs; ++run) {
    session.cache.truncate(0);
    const auto start = BenchClock::now();
    model.forward(session, prompt, bench_options(plan));
    seconds.push_back(seconds_since(start));
  }
  return median(seconds);
}

struct DecodeTimes {
  std::vector<double> seconds;        // per step
  std::vector<double> bandwidth_gbs;  // the probe right before each step
  std::vector<double> fraction;       // each step's weight bytes per second over its probe's
  // The KV cache's bytes before each step (what its attention reads under the full rule), and
  // the fraction counting them with the weights.
  std::vector<double> kv_bytes, fraction_with_kv;
};

// N one-token steps after the prompt; probe_gbs() measures the bandwidth before each.
template <class Model, class Probe>
DecodeTimes time_decode(const Model& model, typename Model::SessionType& session,
                        const BenchPlan& plan, double weight_bytes_per_token, Probe&& probe_gbs) {
  DecodeTimes times;
  for (std::size_t t = 0; t < plan.gen; ++t) {
    times.bandwidth_gbs.push_back(probe_gbs());
    times.kv_bytes.push_back(double(session.cache.bytes()));
    const auto start = BenchClock::now();
    model.forward(session, std::span(plan.ids).subspan(plan.prompt_length + t, 1),
                  bench_options(plan));
    times.seconds.push_back(seconds_since(start));
    const double gbs = times.bandwidth_gbs.back() * 1e9 * times.seconds.back();
    times.fraction.push_back(weight_bytes_per_token / gbs);
    times.fraction_with_kv.push_back((weight_bytes_per_token + times.kv_bytes.back()) / gbs);
  }
  return times;
}

// The KV cache the decode steps read, and their fraction of the bandwidth with it counted.
inline void print_decode_kv(const DecodeTimes& decode, rd::KvFormat format) {
  std::printf(
      "  decode with its KV cache: %.3g bytes read per step (%s), weights and cache %5.1f%% of "
      "the read bandwidth\n",
      median(decode.kv_bytes), rd::kv_format_name(format).data(),
      100.0 * median(decode.fraction_with_kv));
}

// rdepth bench --backend hip (command_bench_hip.cpp; refuses in a build without HIP).
int bench_on_hip(const Arguments& args, const ModelSource& source, BenchClock::time_point start);

}  // namespace rdepth
