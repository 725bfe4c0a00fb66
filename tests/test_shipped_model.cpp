// The shipped model (models/arithmetic, trained by tools/train/train.py): the engine
// reproduces PyTorch's float32 logits and latents (reference.safetensors, written by
// tools/train/dump_reference.py) to a relative L2 below 1e-4; the tokenizer gives the training
// ids; `rdepth eval` on 200 held-out problems stays within the stated margin of the model card's
// accuracy at the training mean (not below) and at r = 1 (not above); `rdepth trace` agrees with
// `rdepth generate`, and `eval --plot --show` run on it.
#include <catch2/catch.hpp>

#include <fstream>

#include "cli_support.hpp"
#include "test_models.hpp"

using namespace recurrent_depth;
using namespace recurrent_depth::testing;

namespace {

const std::filesystem::path kModel =
    std::filesystem::path(RECURRENT_DEPTH_MODELS_DIR) / "arithmetic";

// The accuracy CI accepts: the card's held-out accuracy at the training mean (PyTorch, 1000
// problems) minus this margin, for 200 problems with bf16 weights (a standard error of about
// 2 points at 90%, plus answers that bf16 rounding may flip).
constexpr double kAccuracyMargin = 0.06;

nlohmann::json read_json(const std::filesystem::path& path) {
  std::ifstream in(path);
  REQUIRE(in.good());
  return nlohmann::json::parse(in);
}

}  // namespace

TEST_CASE("shipped model: the engine reproduces PyTorch's logits and latents", "[shipped]") {
  const auto reference = open_safetensors(kModel / "reference.safetensors");
  const nlohmann::json meta = read_json(kModel / "reference.json");
  std::vector<std::int32_t> ids;
  for (std::int64_t id : read_integers(reference.at("input_ids")))
    ids.push_back(static_cast<std::int32_t>(id));
  const auto tokenizer = tokenizer::Tokenizer::load((kModel / "tokenizer.json").string());
  CHECK(tokenizer.encode(meta["text"].get<std::string>(), true) == ids);

  const auto model = load_model<CpuBackend, F32>(kModel);
  for (int steps : {1, model.config().mean_recurrence}) {
    Session session = model.new_session();
    const ForwardResult out = model.forward(session, ids, with_steps(steps));
    const std::string prefix = "forward_r" + std::to_string(steps) + "_";
    INFO("r = " << steps);
    CHECK(relative_l2(out.logits.view(), tensor_matrix(reference, prefix + "logits").view()) <
          1e-4);
    CHECK(relative_l2(out.latents.view(), tensor_matrix(reference, prefix + "latents").view()) <
          1e-4);
  }
}

#ifdef RECURRENT_DEPTH_RDEPTH

using namespace recurrent_depth::testing::cli;

TEST_CASE("shipped model: rdepth eval keeps the model card's accuracy at r = 1 and the mean",
          "[shipped][cli]") {
  const nlohmann::json card = read_json(kModel / "evaluation.json");
  const int mean = card["mean_recurrence"].get<int>();
  const double expected = card["heldout_accuracy_at_mean"].get<double>();
  const double expected_shallow = card["table"][0]["heldout"].get<double>();  // r = 1
  REQUIRE(card["table"][0]["steps"] == 1);
  const std::string tasks = quote((kModel / "tasks" / "heldout.jsonl").string());
  const Run run = rdepth("eval --model " + quote(kModel.string()) + " --tasks " + tasks +
                         " --limit 200 --steps 1," + std::to_string(mean) + " --json");
  REQUIRE_SUCCESS(run);
  const nlohmann::json out = nlohmann::json::parse(run.out);
  const nlohmann::json& results = out["results"];
  REQUIRE(results.size() == 2);
  CHECK(results[1]["problems"] == 200);
  CHECK(results[1]["steps"] == mean);
  const double shallow = results[0]["accuracy"], at_mean = results[1]["accuracy"];
  INFO("accuracy at r = 1: " << shallow << ", at r = " << mean << ": " << at_mean
                             << ", model card: " << expected);
  CHECK(at_mean >= expected - kAccuracyMargin);
  CHECK(shallow <= expected_shallow + kAccuracyMargin);  // depth matters as the card says
}

TEST_CASE("shipped model: rdepth trace and eval --plot --show", "[shipped][cli]") {
  const std::string prompt = "7+3*9+4=";
  const Run run = rdepth("trace --model " + quote(kModel.string()) + " --prompt " + quote(prompt) +
                         " --steps 12 --json --states");
  REQUIRE_SUCCESS(run);
  const nlohmann::json trace = nlohmann::json::parse(run.out);
  REQUIRE(trace["tokens"].size() == prompt.size() + 1);  // BOS first
  const nlohmann::json& last = trace["tokens"].back();
  CHECK(last["text"] == "=");
  REQUIRE(last["iterations"].size() == 12);
  REQUIRE(last["states"].size() == 13);
  CHECK(last["iterations"].back()["distance_to_last"] == 0.0);
  const Run answer = rdepth("generate --model " + quote(kModel.string()) + " --prompt " +
                            quote(prompt) + " --steps 12 --max-new-tokens 1");
  REQUIRE_SUCCESS(answer);
  CHECK(last["iterations"].back()["argmax_text"] == answer.out.substr(0, 1));

  const fs::path svg = scratch("accuracy.svg");
  const Run eval = rdepth("eval --model " + quote(kModel.string()) + " --tasks " +
                          quote((kModel / "tasks" / "harder.jsonl").string()) +
                          " --limit 5 --steps 1,2 --show 2 --plot " + quote(svg.string()));
  REQUIRE_SUCCESS(eval);
  CHECK_THAT(eval.out, Catch::Contains("expected") && Catch::Contains("r=2"));
  CHECK_THAT(read_text(svg), Catch::StartsWith("<svg") && Catch::Contains("harder"));
}

#endif  // RECURRENT_DEPTH_RDEPTH
