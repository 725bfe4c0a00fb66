// The test-time features against the reference vectors of tests/data/{tiny_huginn,tiny_variant}:
// token-by-token decoding with per-token early exit for the six criteria (exact step counts and
// logits) under the full and latest-m4 cache rules, the latest-m4 + compress-s4 cache, and greedy
// generation warm-started from the previous token's latent (continuous).
#include <catch2/catch.hpp>

#include "golden.hpp"

using namespace recurrent_depth;
using recurrent_depth::testing::decode_tokens;
using recurrent_depth::testing::DecodeRun;
using recurrent_depth::testing::Golden;
using recurrent_depth::testing::relative_l2;

namespace {

constexpr double kTolerance = 1e-4;

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
        const DecodeRun run = decode_tokens(model, golden.input_ids, rule,
                                            golden.meta["max_steps"].get<int>(), &exit);
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
