// The model on the HIP backend against the reference vectors of tests/data/{tiny_huginn,
// tiny_variant}, as tests/test_golden.cpp and tests/test_golden_features.cpp check the CPU: forward
// at several r, prefill + decode, prefill + chunk, decoding with per-token early exit (exact step
// counts) under the full and latest-m4 caches, greedy generation (plain and warm-started), and the
// latest-m4-compress-s4 cache; f32 weights, and bf16 where they are exact (tiny_huginn's weights
// are bf16 values). Longer decodes (the KV cache's rows grow on the device, entries gathered and
// replaced) against the CPU model.
#include <catch2/catch.hpp>

#include <set>
#include <string>
#include <vector>

#include "../golden.hpp"
#include "../model_runs.hpp"
#include "hip_model_runner.hpp"
#include "skip_without_gpu.hpp"

using namespace recurrent_depth;
using recurrent_depth::testing::Golden;
using recurrent_depth::testing::relative_l2;

namespace {

constexpr double kTolerance = 1e-4;

void check_forward_passes(const std::string& name, const char* precision) {
  const Golden golden(name);
  const hip_test::HipModel model(golden.directory, precision);
  const std::span<const std::int32_t> ids(golden.input_ids);
  const Matrix<float> states = golden.matrix("input_states");
  const int mean = golden.config.mean_recurrence;
  for (int steps : {0, 1, 4, mean, 2 * mean}) {
    INFO(name << " " << precision << " forward r=" << steps);
    const ForwardResult result = model.forward_from_states(ids, states, steps);
    const std::string prefix = "forward_r" + std::to_string(steps);
    CHECK(relative_l2(result.logits, golden.matrix(prefix + "_logits")) < kTolerance);
    CHECK(relative_l2(result.latents, golden.matrix(prefix + "_latents")) < kTolerance);
  }
  const std::size_t prefill = golden.meta["decode_prefill_len"];
  INFO(name << " " << precision << " prefill then decode, prefill then chunk");
  CHECK(relative_l2(model.prefill_then_decode(ids, prefill), golden.matrix("decode_full_logits")) <
        kTolerance);
  CHECK(relative_l2(model.prefill_then_chunk(ids, prefill).logits,
                    golden.matrix("decode_chunk_logits")) < kTolerance);
}

void check_features(const std::string& name) {
  const Golden golden(name);
  const hip_test::HipModel model(golden.directory, "f32");
  const std::span<const std::int32_t> ids(golden.input_ids);
  const nlohmann::json table = golden.adaptive_table();
  const int max_steps = golden.meta["max_steps"].get<int>();
  for (const std::string_view criterion : kExitCriterionNames)
    for (const bool latest : {false, true}) {
      const std::string key = std::string(criterion) + (latest ? "/latest-m4" : "");
      if (!table.contains(key)) continue;
      INFO(name << " early exit " << key);
      const auto run = model.decode_tokens(ids, latest ? "latest-m4" : "full", max_steps, criterion,
                                           table[key]["threshold"].get<double>());
      CHECK(run.steps == table[key]["steps"].get<std::vector<int>>());
      std::string tensor = "adaptive_" + std::string(criterion);
      std::replace(tensor.begin(), tensor.end(), '-', '_');
      CHECK(relative_l2(run.logits, golden.matrix(tensor + (latest ? "_latest_m4" : "") +
                                                  "_logits")) < kTolerance);
    }
  for (const bool continuous : {false, true}) {
    INFO(name << " greedy tokens, continuous " << continuous);
    GenerationOptions options;
    options.max_new_tokens = 8;
    options.continuous = continuous;
    CHECK(model.generated_tokens(ids.first(golden.greedy_prompt()), options) ==
          golden.meta[continuous ? "greedy_continuous_tokens" : "greedy_plain_tokens"]
              .get<std::vector<std::int32_t>>());
  }
  const std::size_t prefill = golden.meta["decode_prefill_len"];
  INFO(name << " latest-m4-compress-s4 decode");
  CHECK(relative_l2(model.prefill_then_decode(ids, prefill, "latest-m4-compress-s4"),
                    golden.matrix("decode_latest_m4_compress_s4_logits")) < kTolerance);
}

}  // namespace

TEST_CASE("hip model: tiny_huginn and tiny_variant match the reference", "[hip][golden]") {
  if (hip_test::skipped_without_gpu("the HIP model's golden tests")) return;
  check_forward_passes("tiny_huginn", "f32");
  check_forward_passes("tiny_huginn", "bf16");
  check_forward_passes("tiny_variant", "f32");
}

// int8 weights within the CPU's stated bound of the reference (tests/test_golden.cpp: 3%).
TEST_CASE("hip model: int8 weights stay within their bound of the reference", "[hip][golden]") {
  if (hip_test::skipped_without_gpu("the HIP model's int8 tests")) return;
  for (const char* name : {"tiny_huginn", "tiny_variant"}) {
    const Golden golden(name);
    const hip_test::HipModel model(golden.directory, "int8");
    const Matrix<float> states = golden.matrix("input_states");
    for (int steps : {0, 4, golden.config.mean_recurrence}) {
      INFO(name << " int8 forward r=" << steps);
      const ForwardResult result = model.forward_from_states(golden.input_ids, states, steps);
      const std::string prefix = "forward_r" + std::to_string(steps);
      CHECK(relative_l2(result.logits, golden.matrix(prefix + "_logits")) < 3e-2);
      CHECK(relative_l2(result.latents, golden.matrix(prefix + "_latents")) < 3e-2);
    }
  }
}

TEST_CASE("hip model: early exit and cache rules match the reference", "[hip][golden]") {
  if (hip_test::skipped_without_gpu("the HIP model's feature tests")) return;
  check_features("tiny_huginn");
  check_features("tiny_variant");
}

TEST_CASE("hip model: long decodes match the CPU model as the device KV cache grows",
          "[hip][model]") {
  if (hip_test::skipped_without_gpu("the HIP model's decode tests")) return;
  const Golden golden("tiny_huginn");
  const auto cpu = load_model<CpuBackend, F32>(golden.directory);
  const hip_test::HipModel gpu(golden.directory, "f32");
  Rng rng(2026);
  std::vector<std::int32_t> ids(70);  // past the first growth (16 rows) and two doublings
  for (std::int32_t& id : ids)
    id = static_cast<std::int32_t>(rng.uniform() * golden.config.vocab_size);
  for (const char* rule : {"full", "latest-m4-compress-s4"}) {
    INFO("prefill 5 then decode, cache " << rule);
    auto session = cpu.new_session(0, CacheRule::parse(rule));
    const Matrix<float> expected = testing::prefill_then_decode(cpu, session, ids, 5);
    CHECK(relative_l2(gpu.prefill_then_decode(ids, 5, rule), expected) < kTolerance);
  }
  // Tokens stop at different depths: latest-m4 gathers entries from deeper slots (positions
  // staged to the device).
  const double threshold = golden.adaptive_table()["latent-diff/latest-m4"]["threshold"];
  CriterionExit exit(ExitOptions{ExitCriterion::latent_diff, threshold});
  const int steps = golden.meta["max_steps"].get<int>();
  const auto expected =
      testing::decode_tokens(cpu, ids, CacheRule::parse("latest-m4"), steps, &exit);
  const auto run = gpu.decode_tokens(ids, "latest-m4", steps, "latent-diff", threshold);
  CHECK(run.steps == expected.steps);
  CHECK(relative_l2(run.logits, expected.logits) < kTolerance);
  CHECK(std::set<int>(expected.steps.begin(), expected.steps.end()).size() > 1);
}
