// Checkpoint: single-file and sharded model directories (tiny_huginn split into shards must give
// identical tensors; the released Huginn-0125 layout loads as the same tied model), in-memory
// checkpoints, exact shape checks and the errors for bad directories.
#include <catch2/catch.hpp>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "recurrent_depth/recurrent_depth.hpp"
#include "test_files.hpp"

namespace fs = std::filesystem;
using namespace recurrent_depth;
using Catch::Contains;

namespace {

using recurrent_depth::testing::TempDir;
using recurrent_depth::testing::write_sharded;
using recurrent_depth::testing::write_text;

const fs::path kTinyDir = recurrent_depth::testing::tiny_huginn_dir();

}  // namespace

TEST_CASE("checkpoint: single file", "[io][checkpoint]") {
  const Checkpoint c = open_checkpoint(kTinyDir);
  CHECK(c.directory() == kTinyDir);
  const std::vector<std::string> names = c.tensor_names();
  CHECK(names.size() == 76);
  CHECK(std::is_sorted(names.begin(), names.end()));
  CHECK(c.find("transformer.adapter.weight") != nullptr);
  CHECK(c.find("lm_head.weight") == nullptr);
  CHECK(c.at("transformer.adapter.weight").shape_string() == "[96, 192]");

  std::size_t bytes = 0;
  for (const auto& n : names) bytes += c.at(n).bytes.size();
  CHECK(c.total_bytes() == bytes);
  CHECK(bytes > 1'800'000);

  std::vector<float> wqkv(288 * 96);
  c.read("transformer.prelude.0.attn.Wqkv.weight", {288, 96}, std::span<float>(wqkv));
  std::vector<bf16> wqkv_b(288 * 96);
  c.read("transformer.prelude.0.attn.Wqkv.weight", {288, 96}, std::span<bf16>(wqkv_b));
  for (std::size_t i = 0; i < wqkv.size(); ++i) REQUIRE(to_float(wqkv_b[i]) == wqkv[i]);

  // F32 tensor read as bf16: rounded.
  std::vector<float> freqs(256 * 8 * 2);
  c.read("freqs_cis", {1, 256, 1, 8, 2}, std::span<float>(freqs));
  std::vector<bf16> freqs_b(freqs.size());
  c.read("freqs_cis", {1, 256, 1, 8, 2}, std::span<bf16>(freqs_b));
  for (std::size_t i = 0; i < freqs.size(); ++i) REQUIRE(freqs_b[i].bits == to_bf16(freqs[i]).bits);
}

TEST_CASE("checkpoint: read errors", "[io][checkpoint]") {
  const Checkpoint c = open_checkpoint(kTinyDir);
  std::vector<float> out(288 * 96);
  REQUIRE_THROWS_WITH(
      c.read("transformer.prelude.0.attn.Wqkv.weight", {288, 95}, std::span<float>(out)),
      Contains("tensor transformer.prelude.0.attn.Wqkv.weight in ") &&
          Contains("model.safetensors: shape [288, 96], expected [288, 95]"));
  REQUIRE_THROWS_WITH(
      c.read("transformer.prelude.0.attn.Wqkv.weight", {288, 96, 1}, std::span<float>(out)),
      Contains("expected [288, 96, 1]"));
  REQUIRE_THROWS_WITH(
      c.read("transformer.prelude.0.attn.Wqkv.weight", {288, 96}, std::span<float>(out).first(100)),
      Contains("Wqkv") && Contains("100"));
  REQUIRE_THROWS_WITH(
      c.read("transformer.nope.weight", {1}, std::span<float>(out)),
      Contains("checkpoint " + kTinyDir.string() + ": missing tensor transformer.nope.weight"));
  REQUIRE_THROWS_WITH(c.at("lm_head.weight"), Contains("missing tensor lm_head.weight"));
}

TEST_CASE("checkpoint: sharded directory gives identical tensors", "[io][checkpoint]") {
  const Checkpoint single = open_checkpoint(kTinyDir);
  for (int shards : {2, 3, 4}) {
    TempDir dir;
    write_sharded(dir.path, shards);
    const Checkpoint sharded = open_checkpoint(dir.path);
    CHECK(sharded.directory() == dir.path);
    REQUIRE(sharded.tensor_names() == single.tensor_names());
    CHECK(sharded.total_bytes() == single.total_bytes());
    for (const std::string& name : single.tensor_names()) {
      const TensorInfo& a = single.at(name);
      const TensorInfo& b = sharded.at(name);
      REQUIRE(a.dtype == b.dtype);
      REQUIRE(a.shape == b.shape);
      REQUIRE(a.bytes.size() == b.bytes.size());
      REQUIRE(std::memcmp(a.bytes.data(), b.bytes.data(), a.bytes.size()) == 0);
      std::vector<float> va(a.numel()), vb(b.numel());
      read_values(a, std::span<float>(va));
      read_values(b, std::span<float>(vb));
      REQUIRE(va == vb);
    }
    std::set<std::string> sources;  // every shard is used
    for (const std::string& name : sharded.tensor_names()) sources.insert(sharded.at(name).source);
    CHECK(sources.size() == std::size_t(shards));
  }
}

TEST_CASE("checkpoint: bad directories and indexes", "[io][checkpoint]") {
  TempDir dir;
  REQUIRE_THROWS_WITH(
      open_checkpoint(dir.path),
      Contains(dir.path.string() + ": no model.safetensors or model.safetensors.index.json"));

  const nlohmann::json good = write_sharded(dir.path, 2);
  CHECK_NOTHROW(open_checkpoint(dir.path));
  const fs::path index_path = dir.path / "model.safetensors.index.json";

  write_text(index_path, "{\"weight_map\": {");
  REQUIRE_THROWS_WITH(open_checkpoint(dir.path),
                      Contains("model.safetensors.index.json: malformed JSON"));
  write_text(index_path, "[]");
  REQUIRE_THROWS_WITH(open_checkpoint(dir.path), Contains("model.safetensors.index.json"));
  write_text(index_path, R"({"metadata": {}})");
  REQUIRE_THROWS_WITH(open_checkpoint(dir.path),
                      Contains("model.safetensors.index.json: missing \"weight_map\""));
  write_text(index_path, R"({"weight_map": ["a"]})");
  REQUIRE_THROWS_WITH(open_checkpoint(dir.path), Contains("\"weight_map\" must be an object"));
  write_text(index_path, R"({"weight_map": {"freqs_cis": 3}})");
  REQUIRE_THROWS_WITH(open_checkpoint(dir.path), Contains("weight_map entry freqs_cis"));

  nlohmann::json missing_shard = good;
  missing_shard["weight_map"]["transformer.ln_f.weight"] = "model-00009-of-00009.safetensors";
  write_text(index_path, missing_shard.dump());
  REQUIRE_THROWS_WITH(open_checkpoint(dir.path),
                      Contains("model.safetensors.index.json") &&
                          Contains("shard model-00009-of-00009.safetensors") &&
                          Contains("does not exist"));

  nlohmann::json wrong_shard = good;  // freqs_cis is in shard 1, not 2
  wrong_shard["weight_map"]["freqs_cis"] = "model-00002-of-00002.safetensors";
  write_text(index_path, wrong_shard.dump());
  REQUIRE_THROWS_WITH(open_checkpoint(dir.path),
                      Contains("tensor freqs_cis is listed in shard "
                               "model-00002-of-00002.safetensors but absent from it"));

  nlohmann::json extra = good;
  extra["weight_map"]["lm_head.weight"] = "model-00001-of-00002.safetensors";
  write_text(index_path, extra.dump());
  REQUIRE_THROWS_WITH(open_checkpoint(dir.path), Contains("lm_head.weight"));

  // A shard is a file of the model directory: no path elsewhere, no NUL cutting the name short.
  for (const std::string& shard :
       {std::string("../model.safetensors"), std::string("/etc/passwd"), std::string("a\0b", 3)}) {
    nlohmann::json elsewhere = good;
    elsewhere["weight_map"]["freqs_cis"] = shard;
    write_text(index_path, elsewhere.dump());
    REQUIRE_THROWS_WITH(open_checkpoint(dir.path),
                        Contains("weight_map entry freqs_cis: shard \"") &&
                            Contains("is not a file name in the model directory"));
  }

  // A corrupt shard reports the shard's own path.
  write_text(index_path, good.dump());
  write_text(dir.path / "model-00002-of-00002.safetensors", "garbage");
  REQUIRE_THROWS_WITH(open_checkpoint(dir.path),
                      Contains("model-00002-of-00002.safetensors") && Contains("too short"));
}

TEST_CASE("checkpoint: in-memory files", "[io][checkpoint]") {
  SafetensorsWriter w1, w2;
  w1.add_f32("x", {2, 2}, std::vector<float>{1, 2, 3, 4});
  w2.add_bf16("y", {3}, std::vector<float>{0.5f, -1, 2});
  std::vector<SafetensorsFile> files;
  files.push_back(parse_safetensors(w1.bytes(), "one"));
  files.push_back(parse_safetensors(w2.bytes(), "two"));
  const Checkpoint c = Checkpoint::from_files(std::move(files), "synthetic");
  CHECK(c.tensor_names() == std::vector<std::string>{"x", "y"});
  CHECK(c.total_bytes() == 16 + 6);
  std::vector<float> y(3);
  c.read("y", {3}, std::span<float>(y));
  CHECK(y == std::vector<float>{0.5f, -1, 2});
  REQUIRE_THROWS_WITH(c.at("z"), Contains("checkpoint synthetic: missing tensor z"));
  REQUIRE_THROWS_WITH(c.read("x", {4}, std::span<float>(y)),
                      Contains("tensor x in one: shape [2, 2], expected [4]"));

  std::vector<SafetensorsFile> dup;
  dup.push_back(parse_safetensors(w1.bytes(), "one"));
  dup.push_back(parse_safetensors(w1.bytes(), "again"));
  REQUIRE_THROWS_WITH(Checkpoint::from_files(std::move(dup), "dup"),
                      Contains("tensor x is in both one and again"));
}

TEST_CASE("checkpoint: the released layout (4 float32 shards, lm_head copy, freqs_cis) loads",
          "[io][checkpoint]") {
  TempDir dir;
  const nlohmann::json index = write_sharded(dir.path, 4, /*released=*/true);
  fs::copy_file(kTinyDir / "config.json", dir.path / "config.json");
  CHECK(index["weight_map"].contains("freqs_cis"));
  CHECK(index["weight_map"].contains("lm_head.weight"));
  const Checkpoint released = open_checkpoint(dir.path);
  CHECK(released.at("transformer.core_block.3.mlp.fc.weight").dtype == DType::F32);

  const auto original = load_model<CpuBackend, F32>(kTinyDir);
  const auto loaded = load_model<CpuBackend, BF16>(dir.path);  // converted to bf16 at load
  CHECK(loaded.summary().tied_head);  // the stored copy is recognised, not loaded twice
  CHECK(loaded.summary().weight_bytes * 2 == original.summary().weight_bytes);
  const std::vector<std::int32_t> ids = {5, 17, 3, 99, 42};
  Session a = original.new_session(), b = loaded.new_session();
  const ForwardResult expected = original.forward(a, ids), actual = loaded.forward(b, ids);
  double largest = 0.0;  // tiny_huginn's weights are bf16 values: every path is exact
  for (std::size_t t = 0; t < ids.size(); ++t)
    for (std::size_t v = 0; v < expected.logits.cols(); ++v)
      largest = std::max(largest, double(std::abs(actual.logits(t, v) - expected.logits(t, v))));
  CHECK(largest < 1e-5);
}
