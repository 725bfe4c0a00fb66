// The rdepth tool's test-time flags, driven as a process: forward --exit / --cache and generate
// --continuous against the reference vectors; speculative decoding, seeded sampling and the --json
// statistics as properties; and every bad combination of the new flags -> exit 1 with a message.
#include <catch2/catch.hpp>

#include "cli_support.hpp"

#ifdef RECURRENT_DEPTH_RDEPTH

#include <algorithm>
#include <numeric>
#include <string>
#include <vector>

using namespace recurrent_depth;
using namespace recurrent_depth::testing::cli;
using recurrent_depth::testing::Golden;
using recurrent_depth::testing::relative_l2;

namespace {

constexpr double kTolerance = 1e-4;

// The golden input ids alone (no input_states: the adaptive and decode vectors start from zero).
std::string ids_only_input(const Golden& golden, const std::string& model) {
  const fs::path in = scratch(model + "_features_ids.safetensors");
  if (!fs::exists(in)) {
    SafetensorsWriter writer;
    writer.add_i32("input_ids", {std::int64_t(golden.input_ids.size())}, golden.input_ids);
    writer.write(in);
  }
  return quote(in.string());
}

// `rdepth forward` on the golden ids with f32 weights and `flags`; the output file.
SafetensorsFile forward(const Golden& golden, const std::string& model, const std::string& flags,
                        const std::string& name) {
  const fs::path out = scratch(name + ".safetensors");
  const Run run =
      rdepth("forward --model " + model_dir(model) + " --input " + ids_only_input(golden, model) +
             " --output " + quote(out.string()) + " --weights f32 --threads 1 " + flags);
  REQUIRE_SUCCESS(run);
  return open_safetensors(out);
}

std::vector<int> steps_of(const SafetensorsFile& file) {
  const TensorInfo& t = file.at("steps");
  CHECK(t.dtype == DType::I32);
  std::vector<int> steps;
  for (std::int64_t s : read_integers(t)) steps.push_back(int(s));
  return steps;
}

// Runs `rdepth generate ... --json` and parses its output.
nlohmann::json generate_json(const std::string& arguments) {
  const Run run = rdepth("generate " + arguments + " --json --threads 1");
  REQUIRE_SUCCESS(run);
  return nlohmann::json::parse(run.out);
}

std::vector<std::int32_t> tokens(const nlohmann::json& out) {
  return out["tokens"].get<std::vector<std::int32_t>>();
}

}  // namespace

TEST_CASE("rdepth forward --exit matches the reference's adaptive runs", "[cli]") {
  for (const std::string model : {"tiny_huginn", "tiny_variant"}) {
    const Golden golden(model);
    const nlohmann::json table = golden.adaptive_table();
    const std::string steps = " --steps " + std::to_string(golden.meta["max_steps"].get<int>());
    for (const std::string_view name : kExitCriterionNames) {
      for (const bool latest : {false, true}) {
        const std::string criterion(name);
        const std::string key = criterion + (latest ? "/latest-m4" : "");
        if (latest && criterion != "kl" && criterion != "latent-diff") continue;
        DYNAMIC_SECTION(model << " " << key) {
          REQUIRE(table.contains(key));
          const std::string threshold = nlohmann::json(table[key]["threshold"]).dump();
          const SafetensorsFile out =
              forward(golden, model,
                      "--exit " + criterion + " --exit-threshold " + threshold + steps +
                          (latest ? " --cache latest-m4" : ""),
                      model + "_exit_" + criterion + (latest ? "_m4" : ""));
          CHECK(steps_of(out) == table[key]["steps"].get<std::vector<int>>());
          std::string tensor = "adaptive_" + criterion;
          std::replace(tensor.begin(), tensor.end(), '-', '_');
          tensor += latest ? "_latest_m4_logits" : "_logits";
          CHECK(relative_l2(matrix(out, "logits"), golden.matrix(tensor)) < kTolerance);
          CHECK(out.metadata().at("exit") == criterion);
        }
      }
    }
  }
}

TEST_CASE("rdepth forward --prefill with a compressed cache and generate --continuous", "[cli]") {
  for (const std::string model : {"tiny_huginn", "tiny_variant"}) {
    const Golden golden(model);
    DYNAMIC_SECTION(model << " --prefill P --cache latest-m4-compress-s4") {
      const std::size_t prefill = golden.meta["decode_prefill_len"];
      const SafetensorsFile out = forward(
          golden, model, "--prefill " + std::to_string(prefill) + " --cache latest-m4-compress-s4",
          model + "_compressed");
      const Matrix<float> logits = matrix(out, "logits");
      REQUIRE(logits.rows() == golden.input_ids.size());
      CHECK(relative_l2(logits.view().middle_rows(prefill - 1, logits.rows() - prefill + 1),
                        golden.matrix("decode_latest_m4_compress_s4_logits")) < kTolerance);
      CHECK(out.metadata().at("cache") == "latest-m4-compress-s4");
      CHECK(out.find("steps") == nullptr);
    }
    DYNAMIC_SECTION(model << " generate --continuous") {
      const std::string prompt = join(golden.input_ids, golden.meta["greedy_prompt_len"]);
      const nlohmann::json out =
          generate_json("--model " + model_dir(model) + " --prompt-ids " + prompt +
                        " --max-new-tokens 8 --continuous --weights f32");
      CHECK(tokens(out) ==
            golden.meta["greedy_continuous_tokens"].get<std::vector<std::int32_t>>());
    }
  }
}

TEST_CASE("rdepth generate: speculative decoding and sampling flags", "[cli]") {
  const Golden golden("tiny_huginn");
  const std::string base = "--model " + model_dir("tiny_huginn") + " --prompt-ids " +
                           join(golden.input_ids, 5) + " --max-new-tokens 20 --weights f32";
  const std::vector<std::int32_t> greedy = tokens(generate_json(base));
  REQUIRE(greedy.size() == 20);

  SECTION("--draft-steps D --lookahead L gives the greedy tokens") {
    for (const auto& [draft, lookahead] : {std::pair{2, 4}, std::pair{4, 8}, std::pair{1, 1}}) {
      INFO("--draft-steps " << draft << " --lookahead " << lookahead);
      const nlohmann::json out = generate_json(base + " --draft-steps " + std::to_string(draft) +
                                               " --lookahead " + std::to_string(lookahead));
      CHECK(tokens(out) == greedy);
      const std::size_t drafted = out["drafted"], accepted = out["accepted"],
                        rounds = out["rounds"];
      CHECK(drafted > 0);
      CHECK(accepted <= drafted);
      CHECK(rounds > 0);
      CHECK(out["acceptance_rate"].get<double>() == Approx(double(accepted) / double(drafted)));
      // Every round yields its accepted drafts and one verified token; the first token is the
      // prompt's.
      CHECK(accepted + rounds == greedy.size() - 1);
      CHECK(out["draft_steps"] == draft);
      CHECK(out["lookahead"] == lookahead);
    }
  }
  SECTION("a fixed --seed repeats; --top-k 1 is greedy") {
    const std::string sampled = base + " --temperature 1 --seed 7";
    const nlohmann::json first = generate_json(sampled), second = generate_json(sampled);
    CHECK(tokens(first) == tokens(second));
    CHECK(first["seed"] == 7);
    CHECK(tokens(generate_json(base + " --temperature 1 --top-k 1 --seed 3")) == greedy);
    const nlohmann::json chain = generate_json(
        base + " --temperature 0.8 --top-p 0.9 --min-p 0.05 --repetition-penalty 1.2 --seed 5");
    CHECK(tokens(chain).size() == greedy.size());
  }
}

TEST_CASE("rdepth generate --json statistics are present and consistent", "[cli]") {
  const Golden golden("tiny_huginn");
  const int r = golden.config.mean_recurrence;
  const std::size_t prompt = 5, count = 12;
  const std::string base = "--model " + model_dir("tiny_huginn") + " --prompt-ids " +
                           join(golden.input_ids, prompt) + " --max-new-tokens " +
                           std::to_string(count) + " --weights f32";

  const nlohmann::json full = generate_json(base);
  for (const char* key :
       {"tokens_per_second", "prefill_seconds", "decode_seconds", "iterations_per_token",
        "exit_probes", "forwards", "core_iterations", "kv_bytes", "cached_tokens",
        "kv_bytes_per_token", "kv_bytes_per_token_formula"})
    CHECK(full[key].is_number());
  CHECK(full["cache"] == "full");
  CHECK_FALSE(full.contains("exit_values"));
  CHECK_FALSE(full.contains("drafted"));
  CHECK(full["cached_tokens"] == prompt + count - 1);
  CHECK(full["forwards"] == count);
  CHECK(full["core_iterations"] == (prompt + count - 1) * std::size_t(r));
  CHECK(full["iterations_per_token"].get<double>() == Approx(r));
  CHECK(full["exit_probes"] == 0);
  CHECK(full["kv_bytes"].get<double>() ==
        full["kv_bytes_per_token"].get<double>() * double(prompt + count - 1));
  CHECK(full["kv_bytes_per_token"].get<double>() ==
        full["kv_bytes_per_token_formula"].get<double>());

  CHECK(full["kv_format"] == "f32");  // f32 weights
  const nlohmann::json halved = generate_json(base + " --kv-format bf16");
  CHECK(halved["kv_format"] == "bf16");
  CHECK(halved["kv_bytes_per_token"].get<double>() * 2 == full["kv_bytes_per_token"].get<double>());
  CHECK(halved["kv_bytes_per_token"].get<double>() ==
        halved["kv_bytes_per_token_formula"].get<double>());

  const nlohmann::json compressed = generate_json(base + " --cache compress-s4");
  CHECK(compressed["cache"] == "compress-s4");
  CHECK(compressed["kv_bytes_per_token"].get<double>() < full["kv_bytes_per_token"].get<double>());
  CHECK(compressed["kv_bytes_per_token"].get<double>() ==
        compressed["kv_bytes_per_token_formula"].get<double>());

  const nlohmann::json table = golden.adaptive_table();
  for (const std::string criterion : {"kl", "latent-diff"}) {
    INFO("--exit " << criterion);
    const std::string threshold = nlohmann::json(table[criterion]["threshold"]).dump();
    const nlohmann::json out = generate_json(base + " --exit " + criterion + " --exit-threshold " +
                                             threshold + " --cache latest-m4");
    const auto steps = out["steps"].get<std::vector<int>>();
    const auto values = out["exit_values"].get<std::vector<std::vector<double>>>();
    REQUIRE(steps.size() == count);
    REQUIRE(values.size() == count);
    CHECK(values[0].empty());  // the prompt's forward runs all r iterations
    CHECK(steps[0] == r);
    std::size_t checks = 0;
    for (std::size_t i = 1; i < count; ++i) {
      CHECK(steps[i] >= 1);
      CHECK(steps[i] <= r);
      CHECK(values[i].size() == std::size_t(steps[i]));  // a check after every iteration
      checks += values[i].size();
    }
    const double decoded_steps = std::accumulate(steps.begin() + 1, steps.end(), 0.0);
    CHECK(out["iterations_per_token"].get<double>() == Approx(decoded_steps / double(count - 1)));
    CHECK(out["exit_probes"] == (criterion == "kl" ? checks : 0));
    CHECK(out["exit"] == criterion);
    CHECK(out["cache"] == "latest-m4");
  }
  const nlohmann::json sparse =
      generate_json(base + " --exit kl --exit-threshold 0.03 --exit-min-steps 3 --exit-every 2");
  for (const int s : sparse["steps"].get<std::vector<int>>())
    CHECK((s == r || (s >= 3 && s % 2 == 0)));
}

TEST_CASE("rdepth rejects bad test-time flags with exit code 1 and a message", "[cli]") {
  const Golden golden("tiny_variant");
  const std::string model = " --model " + model_dir("tiny_variant");
  const std::string forward = "forward" + model + " --input " +
                              quote((golden.directory / "golden.safetensors").string()) +
                              " --output " + quote(scratch("bad_features.safetensors").string());
  const std::string generate = "generate" + model + " --max-new-tokens 2 --prompt-ids 1,2";

  const std::pair<std::string, std::string> cases[] = {
      {forward + " --exit bogus --exit-threshold 0.1", "--exit bogus: unknown criterion"},
      {forward + " --exit kl", "--exit kl needs --exit-threshold"},
      {forward + " --exit-threshold 0.1", "--exit-threshold needs --exit"},
      {forward + " --exit kl --exit-threshold abc", "--exit-threshold expects a finite number"},
      {forward + " --exit kl --exit-threshold nan", "--exit-threshold expects a finite number"},
      {forward + " --exit kl --exit-threshold inf", "--exit-threshold expects a finite number"},
      {forward + " --exit kl --exit-threshold -1", "--exit-threshold is -1"},
      {forward + " --exit kl --exit-threshold 0.1 --prefill 2", "--prefill"},
      {forward + " --cache compress-s0", "--cache compress-s0"},
      {forward + " --cache latest-m4-compress-s", "--cache latest-m4-compress-s"},
      {forward + " --cache half", "--cache half: unknown cache rule"},
      {generate + " --cache compress-s-1", "--cache compress-s-1"},
      {generate + " --exit cosine", "--exit cosine needs --exit-threshold"},
      {generate + " --exit-threshold 1", "--exit-threshold needs --exit"},
      {generate + " --exit-min-steps 2", "--exit-min-steps needs --exit"},
      {generate + " --exit kl --exit-threshold 1e999", "--exit-threshold"},
      {generate + " --exit kl --exit-threshold 0.1 --exit-min-steps 0", "--exit-min-steps is 0"},
      {generate + " --exit kl --exit-threshold 0.1 --exit-every 0", "--exit-every is 0"},
      {generate + " --exit entropy --exit-threshold 0.1", "--exit entropy: unknown criterion"},
      {generate + " --draft-steps 2 --lookahead 0", "--lookahead is 0"},
      {generate + " --draft-steps -1", "--draft-steps is -1"},
      {generate + " --lookahead 4", "--lookahead needs --draft-steps"},
      {generate + " --accept-ratio 0.5", "--accept-ratio needs --draft-steps"},
      {generate + " --draft-steps 2 --accept-ratio 1.5", "--accept-ratio is 1.5"},
      {generate + " --draft-steps 2 --continuous",
       "--continuous does not combine with --draft-steps"},
      {generate + " --draft-steps 2 --exit kl --exit-threshold 0.1",
       "--exit does not combine with --draft-steps"},
      {generate + " --temperature -1", "--temperature is -1, expected a number >= 0"},
      {generate + " --temperature nan", "--temperature expects a finite number"},
      {generate + " --temperature 1e300", "--temperature is 1e300"},
      {generate + " --temperature 1 --top-p 0", "--top-p is 0"},
      {generate + " --temperature 1 --top-p 1.5", "--top-p is 1.5"},
      {generate + " --temperature 1 --min-p 2", "--min-p is 2"},
      {generate + " --temperature 1 --top-k -3", "--top-k is -3"},
      {generate + " --top-p 0.9", "--top-p needs --temperature"},
      {generate + " --repetition-penalty 0", "--repetition-penalty is 0"},
      {generate + " --seed -4", "--seed"},
      {generate + " --continuous 1", "unexpected argument '1'"},
  };
  for (const auto& [arguments, needle] : cases) {
    const Run run = rdepth(arguments);
    INFO("rdepth " << arguments << "\nstderr: " << run.err);
    CHECK(run.code == 1);
    CHECK(run.err.rfind("rdepth: ", 0) == 0);
    CHECK(run.err.find(needle) != std::string::npos);
  }
}

#endif  // RECURRENT_DEPTH_RDEPTH
