// The test-time features against the reference vectors of tests/data/{tiny_huginn,tiny_variant}:
// token-by-token decoding with per-token early exit for the six criteria (exact step counts and
// logits) under the full and latest-m4 cache rules, the latest-m4 + compress-s4 cache, and greedy
// generation warm-started from the previous token's latent (continuous).
#include <catch2/catch.hpp>

#include "golden.hpp"

using namespace recurrent_depth;
using recurrent_depth::testing::Golden;
using recurrent_depth::testing::relative_l2;

namespace {

constexpr double kTolerance = 1e-4;

struct DecodeRun {
  Matrix<float> logits;
  std::vector<int> steps;
};

// Every token of the golden input run alone through the cache (zero initial state, at most
// max_steps iterations), optionally with early exit.
template <class Model>
DecodeRun decode_tokens(const Model& model, const Golden& golden, CacheRule rule,
                        ExitDecider* exit) {
  Session session = model.new_session(0, rule);
  const std::span<const std::int32_t> ids(golden.input_ids);
  DecodeRun run{Matrix<float>(ids.size(), model.vocab_rows()), {}};
  ForwardOptions options;
  options.steps = golden.meta["max_steps"].get<int>();
  options.exit = exit;
  for (std::size_t t = 0; t < ids.size(); ++t) {
    const ForwardResult result = model.forward(session, ids.subspan(t, 1), options);
    std::copy_n(result.logits.row(0), run.logits.cols(), run.logits.row(t));
    run.steps.push_back(result.steps.front());
  }
  return run;
}

std::string tensor_name(std::string_view criterion) {
  std::string name(criterion);
  std::replace(name.begin(), name.end(), '-', '_');
  return "adaptive_" + name;
}

template <class Precision>
void check_features(const std::string& name) {
  const Golden golden(name);
  const auto model = load_model<CpuBackend, Precision>(golden.directory);
  const nlohmann::json table = golden.adaptive_table();

  for (const std::string_view criterion : kExitCriterionNames) {
    for (const bool latest : {false, true}) {
      const std::string key = std::string(criterion) + (latest ? "/latest-m4" : "");
      if (!table.contains(key)) continue;
      DYNAMIC_SECTION(name << " " << Precision::name << " early exit " << key) {
        ExitOptions exit_options;
        exit_options.criterion = parse_exit_criterion(criterion);
        exit_options.threshold = table[key]["threshold"].get<double>();
        CriterionExit exit(exit_options);
        CacheRule rule;
        rule.latest_same_layer = latest;
        const DecodeRun run = decode_tokens(model, golden, rule, &exit);
        CHECK(run.steps == table[key]["steps"].get<std::vector<int>>());
        const std::string tensor = tensor_name(criterion) + (latest ? "_latest_m4" : "");
        CHECK(relative_l2(run.logits, golden.matrix(tensor + "_logits")) < kTolerance);
      }
    }
  }

  DYNAMIC_SECTION(name << " " << Precision::name << " latest-m4-compress-s4 decode") {
    Session session = model.new_session(0, CacheRule::parse("latest-m4-compress-s4"));
    const Matrix<float> logits = golden.prefill_then_decode(model, session);
    CHECK(relative_l2(logits, golden.matrix("decode_latest_m4_compress_s4_logits")) < kTolerance);
  }

  DYNAMIC_SECTION(name << " " << Precision::name << " continuous greedy tokens") {
    GenerationOptions options;
    options.continuous = true;
    CHECK(golden.generated_tokens(model, options) ==
          golden.meta["greedy_continuous_tokens"].get<std::vector<std::int32_t>>());
  }
}

}  // namespace

TEST_CASE("tiny_huginn test-time features match the reference (f32 weights)", "[golden]") {
  check_features<F32>("tiny_huginn");
}
TEST_CASE("tiny_huginn test-time features match the reference (bf16 weights)", "[golden]") {
  check_features<BF16>("tiny_huginn");
}
TEST_CASE("tiny_variant test-time features match the reference (f32 weights)", "[golden]") {
  check_features<F32>("tiny_variant");
}
