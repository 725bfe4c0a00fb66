// The whole model against the reference vectors of tests/data/{tiny_huginn,tiny_variant} (computed
// by the original PyTorch implementation): forward at several r, prefill + decode, prefill + chunk
// and greedy generation, with f32 and bf16 weight storage; int8 and q4 storage within stated
// bounds.
#include <catch2/catch.hpp>

#include "golden.hpp"

using namespace recurrent_depth;
using recurrent_depth::testing::Golden;
using recurrent_depth::testing::relative_l2;

namespace {

// tiny_huginn's weights are bf16 values, so bf16 storage is exact there; tiny_variant's are f32,
// and rounding them to bf16 moves its logits by about 0.4% (measured: <= 4.4e-3).
double bound(const std::string& model, std::string_view precision) {
  return model == "tiny_variant" && precision == "bf16" ? 1e-2 : 1e-4;
}

template <class Precision>
void check_model(const std::string& name) {
  const Golden golden(name);
  const auto model = load_model<CpuBackend, Precision>(golden.directory);
  const std::span<const std::int32_t> ids(golden.input_ids);
  const double tolerance = bound(name, Precision::name);
  const int mean = golden.config.mean_recurrence;

  for (int steps : {0, 1, 4, mean, 2 * mean}) {
    DYNAMIC_SECTION(name << " " << Precision::name << " forward r=" << steps) {
      const ForwardResult result = golden.forward_from_states(model, steps);
      const std::string prefix = "forward_r" + std::to_string(steps);
      CHECK(relative_l2(result.logits, golden.matrix(prefix + "_logits")) < tolerance);
      CHECK(relative_l2(result.latents, golden.matrix(prefix + "_latents")) < tolerance);
    }
  }

  const std::size_t prefill = golden.meta["decode_prefill_len"];
  DYNAMIC_SECTION(name << " " << Precision::name << " prefill then decode") {
    Session session = model.new_session();
    const Matrix<float> logits = golden.prefill_then_decode(model, session);
    CHECK(relative_l2(logits, golden.matrix("decode_full_logits")) < tolerance);
    CHECK(session.cache.length() == ids.size());
  }

  DYNAMIC_SECTION(name << " " << Precision::name << " prefill then chunk") {
    Session session = model.new_session();
    model.forward(session, ids.first(prefill));
    const ForwardResult chunk = model.forward(session, ids.subspan(prefill));
    CHECK(relative_l2(chunk.logits, golden.matrix("decode_chunk_logits")) < tolerance);
  }

  DYNAMIC_SECTION(name << " " << Precision::name << " greedy tokens") {
    CHECK(golden.generated_tokens(model, GenerationOptions{}) ==
          golden.meta["greedy_plain_tokens"].get<std::vector<std::int32_t>>());
  }
}

TEST_CASE("tiny_huginn matches the reference with f32 weights", "[golden]") {
  check_model<F32>("tiny_huginn");
}
TEST_CASE("tiny_huginn matches the reference with bf16 weights", "[golden]") {
  check_model<BF16>("tiny_huginn");
}
TEST_CASE("tiny_variant matches the reference with f32 weights", "[golden]") {
  check_model<F32>("tiny_variant");
}
TEST_CASE("tiny_variant stays close to the reference with bf16 weights", "[golden]") {
  check_model<BF16>("tiny_variant");
}

// The bounds a quantised weight format is held to against the reference vectors: the relative L2
// error of the logits and latents, the share of positions where the argmax agrees, and the greedy
// tokens (of 8) that must agree, on tiny_huginn and on tiny_variant.
struct QuantisedBounds {
  double relative_l2;
  double argmax_share;
  std::size_t greedy_same[2];
};

template <class Precision>
void check_quantised(const QuantisedBounds& bounds) {
  for (const std::string name : {"tiny_huginn", "tiny_variant"}) {
    const std::size_t greedy_same = bounds.greedy_same[name == "tiny_huginn" ? 0 : 1];
    const Golden golden(name);
    const auto model = load_model<CpuBackend, Precision>(golden.directory);
    const int mean = golden.config.mean_recurrence;
    for (int steps : {0, 1, 4, mean, 2 * mean}) {
      INFO(name << " " << Precision::name << " r=" << steps);
      const ForwardResult result = golden.forward_from_states(model, steps);
      const std::string prefix = "forward_r" + std::to_string(steps);
      const Matrix<float> expected = golden.matrix(prefix + "_logits");
      CHECK(relative_l2(result.logits, expected) < bounds.relative_l2);
      CHECK(relative_l2(result.latents, golden.matrix(prefix + "_latents")) < bounds.relative_l2);
      std::size_t agree = 0;
      for (std::size_t t = 0; t < expected.rows(); ++t)
        agree += argmax(result.logits.row_span(t)) == argmax(expected.row_span(t));
      CHECK(double(agree) >= bounds.argmax_share * double(expected.rows()) - 1e-9);
    }
    const std::vector<std::int32_t> tokens = golden.generated_tokens(model, GenerationOptions{});
    const auto expected = golden.meta["greedy_plain_tokens"].get<std::vector<std::int32_t>>();
    std::size_t same = 0;
    for (std::size_t i = 0; i < tokens.size(); ++i) same += tokens[i] == expected[i];
    INFO(name << " " << Precision::name);
    CHECK(same >= greedy_same);
  }
}

}  // namespace

// int8 weights (per-row symmetric, activations quantised per position and matmul) against the
// same vectors: logits and latents within 3% relative L2 (measured: at most 2.2%), the reference's
// argmax at 80% of the positions or more (measured: 9/11 to all), at least 6 of the 8 greedy
// tokens (measured: 8/8).
TEST_CASE("int8 weights stay within their stated bounds of the reference", "[golden][int8]") {
  check_quantised<INT8>({3e-2, 0.8, {6, 6}});
}

// q4 weights (4 bits, a bf16 scale per 32 weights of a row; the embedding table and head in int8;
// activations quantised per position to 8 bits) against the same vectors. These models' weights
// are uniform random, the worst case of a 16-level grid (each weight off by 6% of its row's size
// in the mean square), and the error grows through the core iterations: logits and latents
// within 30% relative L2 (measured: 1.1% at r = 0, 9-13% on tiny_huginn, up to 22% on
// tiny_variant at r = 12), the reference's argmax at 60% of the positions or more (measured: 8/11
// to all, 7/9 to all), all 8 greedy tokens of tiny_variant (measured: 8/8). tiny_huginn's first
// greedy step is a near tie (logits 1.871 and 1.836, a 1.9% margin) that q4 reverses: its first
// token must be the reference's runner-up there, and the rest follows another path (measured
// 0/8 equal).
TEST_CASE("q4 weights stay within their stated bounds of the reference", "[golden][q4]") {
  check_quantised<Q4>({0.3, 0.6, {0, 8}});

  const Golden golden("tiny_huginn");
  const auto model = load_model<CpuBackend, Q4>(golden.directory);
  const std::vector<std::int32_t> tokens = golden.generated_tokens(model, GenerationOptions{});
  const std::vector<std::int32_t> expected = golden.meta["greedy_plain_tokens"];
  const auto reference = load_model<CpuBackend, F32>(golden.directory);
  Session session = reference.new_session();
  const std::size_t prompt = golden.meta["greedy_prompt_len"];
  const ForwardResult first = reference.forward(session, std::span(golden.input_ids).first(prompt));
  std::vector<float> last(first.logits.row_span(prompt - 1).begin(),
                          first.logits.row_span(prompt - 1).end());
  REQUIRE(argmax(last) == expected[0]);
  last[std::size_t(expected[0])] = -1e30f;
  CHECK(tokens[0] == argmax(last));  // the runner-up
}
