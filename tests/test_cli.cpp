// The rdepth command-line tool, driven as a process: forward / generate against the reference
// vectors of tests/data, inspect's figures against the library, and every bad input -> exit 1.
#include <catch2/catch.hpp>

#ifdef RECURRENT_DEPTH_RDEPTH

#include <string>
#include <vector>

#include "cli_support.hpp"

using namespace recurrent_depth;
using namespace recurrent_depth::testing::cli;
using recurrent_depth::testing::Golden;
using recurrent_depth::testing::relative_l2;

namespace {

// tiny_variant's weights are f32; bf16 storage moves its outputs by up to ~0.5%.
double bound(const std::string& model, const std::string& weights) {
  return model == "tiny_variant" && weights == "bf16" ? 2e-2 : 1e-4;
}

// The relative L2 error of q4 logits against the reference (test_golden.cpp states it).
constexpr double kQ4GoldenBound = 0.3;

}  // namespace

TEST_CASE("rdepth forward matches the reference at every r", "[cli]") {
  for (const std::string model : {"tiny_huginn", "tiny_variant"}) {
    const Golden golden(model);
    const int mean = golden.config.mean_recurrence;
    const std::string input = quote((golden.directory / "golden.safetensors").string());
    for (const std::string weights : {"f32", "bf16"}) {
      for (int steps : {0, 1, 4, mean, 2 * mean}) {
        DYNAMIC_SECTION(model << " " << weights << " r=" << steps) {
          const fs::path out = scratch(model + weights + std::to_string(steps) + ".safetensors");
          const Run run = rdepth("forward --model " + model_dir(model) + " --input " + input +
                                 " --output " + quote(out.string()) + " --steps " +
                                 std::to_string(steps) + " --weights " + weights + " --threads 1");
          REQUIRE_SUCCESS(run);
          const SafetensorsFile result = open_safetensors(out);
          const std::string prefix = "forward_r" + std::to_string(steps);
          const TensorInfo& logits = result.at("logits");
          CHECK(logits.dtype == DType::F32);
          CHECK(logits.shape == std::vector<std::int64_t>{std::int64_t(golden.input_ids.size()),
                                                          golden.config.vocab_size});
          CHECK(result.at("latents").shape ==
                std::vector<std::int64_t>{std::int64_t(golden.input_ids.size()),
                                          golden.config.n_embd});
          const double tolerance = bound(model, weights);
          CHECK(relative_l2(matrix(result, "logits"), golden.matrix(prefix + "_logits")) <
                tolerance);
          CHECK(relative_l2(matrix(result, "latents"), golden.matrix(prefix + "_latents")) <
                tolerance);
        }
      }
    }
  }
}

// Every command that has --weights takes q4: forward within the golden bound of q4 storage
// (test_golden.cpp), generate, inspect (fewer weight bytes than int8), trace and eval on the
// shipped model. (bench: test_cli_bench.cpp; chat: test_chat_cli.cpp.)
TEST_CASE("rdepth takes --weights q4 in every command", "[cli][q4]") {
  const Golden golden("tiny_huginn");
  const std::string model = " --model " + model_dir("tiny_huginn") + " --threads 1";
  const fs::path out = scratch("q4_forward.safetensors");
  const Run forward = rdepth("forward" + model + " --input " +
                             quote((golden.directory / "golden.safetensors").string()) +
                             " --output " + quote(out.string()) + " --steps 4 --weights q4");
  REQUIRE_SUCCESS(forward);
  CHECK(relative_l2(matrix(open_safetensors(out), "logits"), golden.matrix("forward_r4_logits")) <
        kQ4GoldenBound);

  const Run generate =
      rdepth("generate" + model + " --prompt-ids 1,2,3 --max-new-tokens 4 --weights q4 --json");
  REQUIRE_SUCCESS(generate);
  CHECK(nlohmann::json::parse(generate.out)["weights"] == "q4");
  CHECK(nlohmann::json::parse(generate.out)["tokens"].size() == 4);

  const auto inspect = [&](const std::string& weights) {
    const Run run = rdepth("inspect" + model + " --json --weights " + weights);
    REQUIRE_SUCCESS(run);
    const nlohmann::json json = nlohmann::json::parse(run.out);
    CHECK(json["weights"] == weights);
    return json["weight_bytes"].get<double>();
  };
  CHECK(inspect("q4") < 0.6 * inspect("int8"));

  const std::string shipped =
      " --model " + quote((fs::path(RECURRENT_DEPTH_MODELS_DIR) / "arithmetic").string());
  const Run trace = rdepth("trace" + shipped + " --prompt '7+3*9=' --steps 2 --json --weights q4");
  REQUIRE_SUCCESS(trace);
  CHECK(nlohmann::json::parse(trace.out)["tokens"].size() == 7);  // BOS first
  const Run eval =
      rdepth("eval" + shipped + " --tasks " +
             quote((fs::path(RECURRENT_DEPTH_MODELS_DIR) / "arithmetic" / "tasks" / "heldout.jsonl")
                       .string()) +
             " --limit 3 --steps 2 --json --weights q4");
  REQUIRE_SUCCESS(eval);
  CHECK(nlohmann::json::parse(eval.out)["weights"] == "q4");
}

TEST_CASE("rdepth forward --prefill decodes through the KV cache", "[cli]") {
  for (const std::string model : {"tiny_huginn", "tiny_variant"}) {
    const Golden golden(model);
    const std::size_t prefill = golden.meta["decode_prefill_len"];
    const std::string common = " --model " + model_dir(model) + " --prefill " +
                               std::to_string(prefill) + " --weights f32 --threads 1";

    DYNAMIC_SECTION(model << ": input_ids only (I32 [T]), zero initial state") {
      const fs::path in = scratch(model + "_ids.safetensors");
      const fs::path out = scratch(model + "_prefill.safetensors");
      SafetensorsWriter writer;
      writer.add_i32("input_ids", {std::int64_t(golden.input_ids.size())}, golden.input_ids);
      writer.write(in);
      const Run run = rdepth("forward" + common + " --input " + quote(in.string()) + " --output " +
                             quote(out.string()));
      REQUIRE_SUCCESS(run);
      const Matrix<float> logits = matrix(open_safetensors(out), "logits");
      REQUIRE(logits.rows() == golden.input_ids.size());
      const ConstMatrixView<float> decoded =
          logits.view().middle_rows(prefill - 1, logits.rows() - prefill + 1);
      CHECK(relative_l2(decoded, golden.matrix("decode_full_logits")) < 1e-4);
    }

    DYNAMIC_SECTION(model << ": given input_states, same as one causal pass") {
      const fs::path out = scratch(model + "_prefill_given.safetensors");
      const Run run = rdepth("forward" + common + " --input " +
                             quote((golden.directory / "golden.safetensors").string()) +
                             " --output " + quote(out.string()));
      REQUIRE_SUCCESS(run);
      const std::string prefix = "forward_r" + std::to_string(golden.config.mean_recurrence);
      const SafetensorsFile result = open_safetensors(out);
      CHECK(relative_l2(matrix(result, "logits"), golden.matrix(prefix + "_logits")) < 1e-4);
      CHECK(relative_l2(matrix(result, "latents"), golden.matrix(prefix + "_latents")) < 1e-4);
    }
  }
}

TEST_CASE("rdepth generate gives the reference's greedy tokens", "[cli]") {
  for (const std::string model : {"tiny_huginn", "tiny_variant"}) {
    const Golden golden(model);
    const std::string prompt = join(golden.input_ids, golden.meta["greedy_prompt_len"]);
    const auto expected = golden.meta["greedy_plain_tokens"].get<std::vector<std::int32_t>>();
    const std::string common =
        "generate --model " + model_dir(model) + " --prompt-ids " + prompt + " --threads 1";

    DYNAMIC_SECTION(model << " --json") {
      const Run run = rdepth(common + " --max-new-tokens 8 --json");
      REQUIRE_SUCCESS(run);
      const nlohmann::json out = nlohmann::json::parse(run.out);
      CHECK(out["tokens"].get<std::vector<std::int32_t>>() == expected);
      CHECK(out["prompt_ids"].get<std::vector<std::int32_t>>() ==
            std::vector<std::int32_t>(golden.input_ids.begin(),
                                      golden.input_ids.begin() + golden.meta["greedy_prompt_len"]));
      CHECK(out["steps"].get<std::vector<int>>() ==
            std::vector<int>(8, golden.config.mean_recurrence));
      for (const char* key : {"tokens_per_second", "prefill_seconds", "decode_seconds", "kv_bytes"})
        CHECK(out[key].is_number());
      CHECK(out["weights"] == "bf16");
    }

    DYNAMIC_SECTION(model << " streamed, f32 weights") {
      const Run run = rdepth(common + " --max-new-tokens 8 --weights f32");
      REQUIRE_SUCCESS(run);
      std::string line;
      for (std::size_t i = 0; i < expected.size(); ++i) {
        if (i > 0) line += ' ';
        line += std::to_string(expected[i]);
      }
      CHECK(run.out == line + "\n");
      CHECK(run.err.find("tokens/s") != std::string::npos);
    }

    DYNAMIC_SECTION(model << " --stop-ids ends after the stop token") {
      const Run run =
          rdepth(common + " --max-new-tokens 8 --json --stop-ids " + std::to_string(expected[2]));
      REQUIRE_SUCCESS(run);
      const auto tokens = nlohmann::json::parse(run.out)["tokens"].get<std::vector<std::int32_t>>();
      const auto stop = std::find(expected.begin(), expected.end(), expected[2]);
      CHECK(tokens == std::vector<std::int32_t>(expected.begin(), stop + 1));
    }
  }
}

TEST_CASE("rdepth inspect reports the loaded model's figures", "[cli]") {
  const Golden golden("tiny_huginn");
  const auto model = load_model<CpuBackend, BF16>(golden.directory);
  const ModelSummary s = model.summary();
  const std::size_t kv = model.kv_bytes_per_token(golden.config.mean_recurrence);

  SECTION("text") {
    const Run run = rdepth("inspect --model " + model_dir("tiny_huginn") + " --threads 1");
    REQUIRE_SUCCESS(run);
    for (const std::string& needle :
         {std::string("transformer.core_block.3.mlp.fc.weight"), std::string("core blocks"),
          std::to_string(s.embedding_parameters), std::to_string(s.prelude_parameters),
          std::to_string(s.core_parameters - s.adapter_parameters),
          std::to_string(s.adapter_parameters), std::to_string(s.total_parameters()),
          std::to_string(s.weight_bytes), std::to_string(kv)}) {
      INFO(needle);
      CHECK(run.out.find(needle) != std::string::npos);
    }
  }
  SECTION("json, f32 weights") {
    const Run run =
        rdepth("inspect --model " + model_dir("tiny_huginn") + " --weights f32 --json --threads 1");
    REQUIRE_SUCCESS(run);
    const nlohmann::json out = nlohmann::json::parse(run.out);
    const auto& p = out["parameters"];
    CHECK(p["embedding"] == s.embedding_parameters);
    CHECK(p["prelude"] == s.prelude_parameters);
    CHECK(p["core"] == s.core_parameters - s.adapter_parameters);
    CHECK(p["adapter"] == s.adapter_parameters);
    CHECK(p["coda"] == s.coda_parameters);
    CHECK(p["final_norm"] == s.final_norm_parameters);
    CHECK(p["total"] == s.total_parameters());
    CHECK(out["weights"] == "f32");
    CHECK(out["weight_bytes"] ==
          load_model<CpuBackend, F32>(golden.directory).summary().weight_bytes);
    CHECK(out["kv_bytes_per_token"] == kv);
    CHECK(out["tensor_counts"]["core"] == 4 * 9);
    CHECK(out["config"]["n_embd"] == golden.config.n_embd);
  }
}

TEST_CASE("rdepth rejects bad input with exit code 1 and a message", "[cli]") {
  const Golden golden("tiny_variant");  // vocab 200, block_size 128
  const std::string model = " --model " + model_dir("tiny_variant");
  const std::string input = " --input " + quote((golden.directory / "golden.safetensors").string());
  const std::string forward =
      "forward" + model + input + " --output " + quote(scratch("bad.safetensors").string());
  const std::string generate = "generate" + model + " --max-new-tokens 2";

  std::string long_prompt = "1";
  for (int i = 1; i <= golden.config.block_size; ++i) long_prompt += ",1";
  const fs::path long_input = scratch("long.safetensors"), no_ids = scratch("no_ids.safetensors"),
                 bad_id = scratch("bad_id.safetensors");
  {
    std::vector<std::int64_t> ids(std::size_t(golden.config.block_size) + 1, 1);
    SafetensorsWriter w;
    w.add_i64("input_ids", {1, std::int64_t(ids.size())}, ids);
    w.write(long_input);
    const std::vector<float> x(4, 0.0f);
    SafetensorsWriter v;
    v.add_f32("tokens", {4}, x);
    v.write(no_ids);
    const std::vector<std::int64_t> big{1, 2, 200};
    SafetensorsWriter b;
    b.add_i64("input_ids", {3}, big);
    b.write(bad_id);
  }

  const std::pair<std::string, std::string> cases[] = {
      {forward + " --steps -1", "--steps"},
      {forward + " --steps many", "--steps"},
      {forward + " --steps", "--steps"},
      {forward + " --prefill 0", "--prefill"},
      {forward + " --prefill 10", "--prefill"},
      {forward + " --weights int3", "int3"},
      {forward + " --weights q5", "expected f32, bf16, int8 or q4"},
      {forward + " --bogus 3", "--bogus"},
      {forward + " stray", "stray"},
      {forward + " --steps 1 --steps 2", "more than once"},
      {forward + " --cache latest-m5", "--cache latest-m5"},
      {forward + " --init random", "--init"},
      {"forward" + model + " --input " + quote(long_input.string()) + " --output x", "block_size"},
      {"forward" + model + " --input " + quote(no_ids.string()) + " --output x", "input_ids"},
      {"forward" + model + " --input " + quote(bad_id.string()) + " --output x", "vocab_size"},
      {"forward" + model + " --input /nonexistent/in.safetensors --output x", "/nonexistent"},
      {"forward --model /nonexistent/model" + input + " --output x", "/nonexistent/model"},
      {generate + " --prompt-ids 1,2,200", "200"},
      {generate + " --prompt-ids 1,x,3", "--prompt-ids"},
      {generate + " --prompt-ids " + long_prompt, "block_size"},
      {generate + " --prompt-ids 1,2 --max-new-tokens 3", "more than once"},
      {"generate" + model + " --prompt-ids 1,2 --max-new-tokens 200", "--max-new-tokens"},
      {"generate" + model + " --prompt-ids 1,2", "--max-new-tokens"},
      {generate + " --prompt hello", "--prompt-ids"},
      {generate + " --prompt-ids 1 --temperature -0.7", "--temperature"},
      {generate + " --prompt-ids 1 --top-k 5", "--top-k needs --temperature"},
      {generate + " --prompt-ids 1 --weights int3", "int3"},
      {generate + " --prompt-ids 1 --threads 0", "--threads"},
      {generate + " --prompt-ids 1 --backend gpu", "--backend gpu is not one of: cpu, hip"},
      {generate + " --prompt-ids 1 --backend hip", "built without the HIP backend"},
      {"serve --port 0 --backend hip --model " +
           quote((fs::path(RECURRENT_DEPTH_MODELS_DIR) / "arithmetic").string()),
       "built without the HIP backend"},
      {"generate --model /nonexistent/model --prompt-ids 1 --max-new-tokens 1", "/nonexistent"},
      {"inspect --model /nonexistent/model", "/nonexistent/model"},
      {"inspect" + model + " --weights int3", "int3"},
      {"tokenize --text hi", "--tokenizer is required"},
  };
  for (const auto& [arguments, needle] : cases) {
    const Run run = rdepth(arguments);
    INFO("rdepth " << arguments << "\nstderr: " << run.err);
    CHECK(run.code == 1);
    CHECK(run.err.rfind("rdepth: ", 0) == 0);
    CHECK(run.err.find(needle) != std::string::npos);
  }
}

TEST_CASE("rdepth usage and --help", "[cli]") {
  const Run none = rdepth("");
  CHECK(none.code == 2);
  CHECK(none.err.find("usage") != std::string::npos);
  const Run unknown = rdepth("frobnicate");
  CHECK(unknown.code == 2);
  CHECK(unknown.err.find("unknown command 'frobnicate'") != std::string::npos);
  CHECK(unknown.err.find("usage") != std::string::npos);
  const Run help = rdepth("--help");
  CHECK(help.code == 0);
  CHECK(help.out.find("generate") != std::string::npos);
  for (const std::string command : {"forward", "generate", "inspect"}) {
    const Run run = rdepth(command + " --help");
    CHECK(run.code == 0);
    CHECK(run.out.find("usage: rdepth " + command) != std::string::npos);
    CHECK(run.out.find("--model") != std::string::npos);
  }
}

#endif  // RECURRENT_DEPTH_RDEPTH
