// The whole model against the reference vectors of tests/data/{tiny_huginn,tiny_variant} (computed
// by the original PyTorch implementation): forward at several r, prefill + decode, prefill + chunk
// and greedy generation, with f32 and bf16 weight storage; int8 storage within stated bounds.
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

}  // namespace

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

// int8 weights (per-row symmetric, activations quantised per position and matmul) against the
// same vectors, with the bounds this format is held to: logits and latents within 3% relative L2
// (measured: at most 2.2%), the reference's argmax at 80% of the positions or more (measured:
// 9/11 to all), at least 6 of the 8 greedy tokens (measured: 8/8).
TEST_CASE("int8 weights stay within their stated bounds of the reference", "[golden][int8]") {
  for (const std::string name : {"tiny_huginn", "tiny_variant"}) {
    const Golden golden(name);
    const auto model = load_model<CpuBackend, INT8>(golden.directory);
    const int mean = golden.config.mean_recurrence;
    for (int steps : {0, 1, 4, mean, 2 * mean}) {
      INFO(name << " r=" << steps);
      const ForwardResult result = golden.forward_from_states(model, steps);
      const std::string prefix = "forward_r" + std::to_string(steps);
      const Matrix<float> expected = golden.matrix(prefix + "_logits");
      CHECK(relative_l2(result.logits, expected) < 3e-2);
      CHECK(relative_l2(result.latents, golden.matrix(prefix + "_latents")) < 3e-2);
      std::size_t agree = 0;
      for (std::size_t t = 0; t < expected.rows(); ++t)
        agree += argmax(result.logits.row_span(t)) == argmax(expected.row_span(t));
      CHECK(agree >= (expected.rows() * 4 + 4) / 5);
    }
    const std::vector<std::int32_t> tokens = golden.generated_tokens(model, GenerationOptions{});
    const auto expected = golden.meta["greedy_plain_tokens"].get<std::vector<std::int32_t>>();
    std::size_t same = 0;
    for (std::size_t i = 0; i < tokens.size(); ++i) same += tokens[i] == expected[i];
    INFO(name);
    CHECK(same >= 6);
  }
}
