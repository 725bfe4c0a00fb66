// ModelConfig: the golden models' and Huginn-0125's config.json, defaults for optional keys, and
// one check per kind of bad field (each message names the source and the field).
#include <unistd.h>

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "recurrent_depth/io/model_directory.hpp"

namespace fs = std::filesystem;
using namespace recurrent_depth;
using Catch::Contains;

namespace {

const fs::path kData = fs::path(RECURRENT_DEPTH_TEST_DATA);

// Huginn-0125's config.json (the keys this library reads, plus a few it ignores).
const char* const kHuginnConfig = R"({
  "architectures": ["RavenForCausalLM"], "model_type": "huginn_raven",
  "n_embd": 5280, "n_heads": 55, "n_layers": 8, "block_size": 4096, "vocab_size": 65536,
  "padding_multiple": 4096, "tie_embeddings": true, "intermediate_size": 17920, "bias": false,
  "norm_eps": 1e-06, "n_layers_in_recurrent_block": 4, "mean_recurrence": 32,
  "n_layers_in_prelude": 2, "n_layers_in_coda": 2, "qk_bias": true, "rope_base": 50000,
  "bos_token_id": 65504, "eos_token_id": 65505, "pad_token_id": 65509, "torch_dtype": "float32"
})";

nlohmann::json tiny_json() {
  std::ifstream in(kData / "tiny_huginn" / "config.json");
  return nlohmann::json::parse(in);
}

ModelConfig parse_json(const nlohmann::json& j) {
  return parse_model_config(j.dump(), "config.json");
}

}  // namespace

TEST_CASE("config: golden models and Huginn-0125", "[io][config]") {
  const ModelConfig tiny = load_model_config(kData / "tiny_huginn" / "config.json");
  CHECK(tiny.n_embd == 96);
  CHECK(tiny.n_heads == 6);
  CHECK(tiny.head_dim() == 16);
  CHECK(tiny.intermediate_size == 256);
  CHECK(tiny.vocab_size == 384);
  CHECK(tiny.padding_multiple == 4096);
  CHECK(tiny.block_size == 256);
  CHECK(tiny.n_layers_in_prelude == 2);
  CHECK(tiny.n_layers_in_recurrent_block == 4);
  CHECK(tiny.n_layers_in_coda == 2);
  CHECK(tiny.mean_recurrence == 8);
  CHECK(tiny.rope_base == 50000.0);
  CHECK(tiny.norm_eps == 1e-6);
  CHECK(tiny.tie_embeddings);
  CHECK(tiny.qk_bias);
  CHECK(tiny.bos_token_id == 0);
  CHECK(tiny.eos_token_id == 1);
  CHECK(tiny.pad_token_id == 2);

  const ModelConfig variant = load_model_config(kData / "tiny_variant" / "config.json");
  CHECK(variant.n_embd == 64);
  CHECK(variant.head_dim() == 32);
  CHECK(variant.n_layers_in_prelude == 1);
  CHECK(variant.n_layers_in_recurrent_block == 2);
  CHECK(variant.n_layers_in_coda == 1);
  CHECK(variant.vocab_size == 200);

  const ModelConfig huginn = parse_model_config(kHuginnConfig, "huginn/config.json");
  CHECK(huginn.n_embd == 5280);
  CHECK(huginn.head_dim() == 96);
  CHECK(huginn.intermediate_size == 17920);
  CHECK(huginn.vocab_size == 65536);
  CHECK(huginn.mean_recurrence == 32);
  CHECK(huginn.bos_token_id == 65504);
  CHECK(huginn.eos_token_id == 65505);
  CHECK(huginn.pad_token_id == 65509);
  const std::string summary = huginn.to_string();
  CHECK(summary.find('\n') == std::string::npos);
  CHECK_THAT(summary, Contains("5280") && Contains("55 heads x 96") && Contains("2/4/2") &&
                          Contains("mean_recurrence 32"));
}

TEST_CASE("config: defaults for optional fields", "[io][config]") {
  nlohmann::json j = tiny_json();
  j.erase("padding_multiple");
  j.erase("qk_bias");
  j.erase("bos_token_id");
  j["eos_token_id"] = nullptr;
  j.erase("pad_token_id");
  const ModelConfig c = parse_json(j);
  CHECK(c.padding_multiple == 1);
  CHECK(c.qk_bias);
  CHECK(c.bos_token_id == -1);
  CHECK(c.eos_token_id == -1);
  CHECK(c.pad_token_id == -1);
  j["qk_bias"] = false;
  j["norm_eps"] = 1e-5;
  j["rope_base"] = 10000.5;
  j["n_layers_in_prelude"] = 0;
  j["n_layers_in_coda"] = 0;
  const ModelConfig d = parse_json(j);
  CHECK_FALSE(d.qk_bias);
  CHECK(d.rope_base == 10000.5);
  CHECK(d.n_layers_in_prelude == 0);
}

TEST_CASE("config: file and JSON errors", "[io][config]") {
  REQUIRE_THROWS_WITH(load_model_config(kData / "no_such_model" / "config.json"),
                      Contains("no_such_model/config.json") && Contains("No such file"));
  REQUIRE_THROWS_WITH(load_model_config(kData / "tiny_huginn"),
                      Contains("tiny_huginn") && Contains("directory"));
  REQUIRE_THROWS_WITH(parse_model_config("{\"n_embd\": 96,", "config.json"),
                      Contains("config.json: malformed JSON at byte") && Contains("parse error"));
  REQUIRE_THROWS_WITH(parse_model_config("", "config.json"),
                      Contains("config.json: malformed JSON"));
  REQUIRE_THROWS_WITH(parse_model_config("[1, 2]", "config.json"),
                      Contains("config.json: expected a JSON object"));
}

TEST_CASE("config: bad fields", "[io][config]") {
  const auto expect = [](const char* key, const nlohmann::json& value, const std::string& what) {
    nlohmann::json j = tiny_json();
    j[key] = value;
    INFO(key << " = " << value.dump());
    REQUIRE_THROWS_WITH(parse_json(j), Contains("config.json") && Contains(what));
  };
  expect("n_embd", "abc", "config.json: field n_embd: expected a positive integer, found \"abc\"");
  expect("n_embd", 96.5, "field n_embd: expected a positive integer, found 96.5");
  expect("n_embd", 0, "field n_embd: expected a positive integer, found 0");
  expect("n_embd", -96, "field n_embd: expected a positive integer, found -96");
  expect("n_embd", 10000000000LL, "field n_embd: expected a positive integer");
  expect("n_heads", nlohmann::json::array({6}),
         "field n_heads: expected a positive integer, found an array");
  expect("intermediate_size", 0, "field intermediate_size");
  expect("vocab_size", -1, "field vocab_size");
  expect("block_size", true, "field block_size");
  expect("padding_multiple", 0, "field padding_multiple");
  expect("mean_recurrence", 0, "field mean_recurrence");
  expect("n_layers_in_prelude", -1, "field n_layers_in_prelude: expected a non-negative integer");
  expect("n_layers_in_coda", -2, "field n_layers_in_coda: expected a non-negative integer");
  expect("n_layers_in_recurrent_block", 0, "field n_layers_in_recurrent_block");
  expect("rope_base", 0, "field rope_base: expected a positive number, found 0");
  expect("rope_base", "50000", "field rope_base");
  expect("norm_eps", -1e-6, "field norm_eps: expected a positive number");
  expect("norm_eps", 0.0, "field norm_eps");
  expect("tie_embeddings", 1, "field tie_embeddings: expected true or false, found 1");
  expect("qk_bias", "yes", "field qk_bias: expected true or false");
  expect("bos_token_id", -2, "field bos_token_id");
  expect("eos_token_id", nlohmann::json::array({1, 2}), "field eos_token_id");
  expect("pad_token_id", 384, "field pad_token_id: 384 is not a token id below vocab_size 384");
  expect("n_heads", 5, "n_embd 96 is not divisible by n_heads 5");
  expect("n_heads", 32, "head_dim 3");  // 96 / 32 = 3: odd

  for (const char* key : {"n_embd", "n_heads", "intermediate_size", "vocab_size", "block_size",
                          "n_layers_in_prelude", "n_layers_in_recurrent_block", "n_layers_in_coda",
                          "mean_recurrence", "rope_base", "norm_eps", "tie_embeddings"}) {
    nlohmann::json j = tiny_json();
    j.erase(key);
    INFO(key);
    REQUIRE_THROWS_WITH(parse_json(j),
                        Contains(std::string("config.json: field ") + key + ": missing"));
  }

  ModelConfig built;  // configs built in code are checked the same way
  REQUIRE_THROWS_WITH(built.validate("synthetic"), Contains("synthetic: field n_embd"));
}
