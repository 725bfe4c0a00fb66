// Memory limits: a model that would not fit (LoadOptions::memory_limit, or the machine's memory)
// is refused before anything is allocated, and a session's KV cache bounded in tokens or bytes
// (KvCacheLimit) refuses the forward or generation that would pass the bound, leaving the
// session as it was.
#include <catch2/catch.hpp>

#include <climits>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "recurrent_depth/recurrent_depth.hpp"
#include "test_files.hpp"

namespace fs = std::filesystem;
using namespace recurrent_depth;
using namespace recurrent_depth::testing;
using Catch::Contains;

namespace {

using TinyModel = RecurrentDepthModel<CpuBackend, F32>;

const TinyModel& tiny_huginn() {
  static const TinyModel model = load_model<CpuBackend, F32>(tiny_huginn_dir());
  return model;
}

std::vector<std::int32_t> ids(std::size_t count) {
  std::vector<std::int32_t> result(count);
  for (std::size_t i = 0; i < count; ++i) result[i] = std::int32_t(3 + 7 * i % 300);
  return result;
}

}  // namespace

TEST_CASE("memory: the load estimate covers the loaded weights", "[memory]") {
  const Checkpoint checkpoint = open_checkpoint(tiny_huginn_dir());
  const ModelConfig config = load_model_config(tiny_huginn_dir() / "config.json");
  const std::size_t f32 = estimate_load_bytes<F32>(config, checkpoint);
  const std::size_t bf16 = estimate_load_bytes<BF16>(config, checkpoint);
  const std::size_t weights = tiny_huginn().summary().weight_bytes;
  CHECK(f32 >= weights);
  CHECK(f32 < 2 * weights);
  CHECK(bf16 < f32);
  CHECK(saturating_product(std::size_t(1) << 40, std::size_t(1) << 40) == kUnknownMemory);
  CHECK(format_bytes(3 << 20) == "3.00 MiB");
}

TEST_CASE("memory: a model over the memory limit is refused before loading", "[memory]") {
  LoadOptions options;
  options.memory_limit = 1'000'000;  // tiny_huginn takes ~2 MB as f32
  CHECK_THROWS_WITH(
      (load_model<CpuBackend, F32>(tiny_huginn_dir(), options)),
      Contains(std::string("loading ") + tiny_huginn_dir().string() + " (f32 weights): needs ") &&
          Contains("MiB of memory, over the limit of 977 KiB"));
  options.memory_limit = 8'000'000;
  CHECK_NOTHROW((load_model<CpuBackend, F32>(tiny_huginn_dir(), options)));
}

TEST_CASE("memory: a config whose tables would not fit in the machine is refused", "[memory]") {
  // A RoPE table of 2^31 positions x 96 floats (768 GiB): refused before it is allocated.
  TempDir dir("rd_memory");
  fs::copy_file(tiny_huginn_dir() / "model.safetensors", dir.path / "model.safetensors");
  nlohmann::json config = nlohmann::json::parse(read_text(tiny_huginn_dir() / "config.json"));
  config["block_size"] = INT_MAX;
  config["n_heads"] = 1;
  write_text(dir.path / "config.json", config.dump());
  CHECK_THROWS_WITH((load_model<CpuBackend, BF16>(dir.path)),
                    Contains("(bf16 weights): needs 768 GiB of memory, the machine has") &&
                        Contains("available"));
}

TEST_CASE("memory: a KV cache bounded in tokens", "[memory]") {
  const TinyModel& model = tiny_huginn();
  ForwardOptions options;
  options.steps = 2;
  Session bounded = model.new_session(0, {}, KvCacheLimit{.tokens = 10});
  Session free = model.new_session();
  model.forward(bounded, ids(8), options);
  model.forward(free, ids(8), options);
  CHECK_THROWS_WITH(model.forward(bounded, ids(3), options),
                    Contains("forward: 3 tokens after 8 cached ones exceed the session's KV cache "
                             "limit of 10 tokens"));
  REQUIRE(bounded.cache.length() == 8);  // refused before anything was written
  const ForwardResult last = model.forward(bounded, ids(2), options);
  const ForwardResult expected = model.forward(free, ids(2), options);
  for (std::size_t v = 0; v < last.logits.cols(); ++v)
    REQUIRE(last.logits(1, v) == expected.logits(1, v));

  GenerationOptions generation;
  generation.steps = 2;
  generation.max_new_tokens = 6;  // 8 + 6 - 1 = 13 positions > 12
  Session session = model.new_session(0, {}, KvCacheLimit{.tokens = 12});
  CHECK_THROWS_WITH(generate(model, session, ids(8), generation),
                    Contains("generate: max_new_tokens 6 after a prompt of 8 tokens and 0 cached "
                             "ones needs 13 positions, more than the session's KV cache limit of "
                             "12 tokens (at most 5 new tokens fit)"));
  CHECK(session.cache.length() == 0);
  generation.max_new_tokens = 5;
  CHECK(generate(model, session, ids(8), generation).tokens.size() == 5);
  CHECK(session.cache.length() == 12);
}

TEST_CASE("memory: a KV cache bounded in bytes", "[memory]") {
  const TinyModel& model = tiny_huginn();
  for (const char* rule_name : {"full", "compress-s4"}) {
    const CacheRule rule = CacheRule::parse(rule_name);
    const std::size_t per_token = model.kv_bytes_per_token(3, rule);
    const KvCacheLimit limit{.bytes = 6 * per_token};
    Session session = model.new_session(0, rule, limit);
    ForwardOptions options;
    options.steps = 3;
    model.forward(session, ids(4), options);
    CHECK(session.cache.bytes() == 4 * per_token);
    INFO(rule_name);
    CHECK_THROWS_WITH(model.forward(session, ids(3), options),
                      Contains(std::string("forward: 3 tokens at r = 3 could take the KV cache (") +
                               std::string(rule_name) + ")") &&
                          Contains("over the session's limit of") &&
                          Contains(std::string("(") + std::to_string(limit.bytes) + " bytes)"));
    CHECK(session.cache.length() == 4);
    model.forward(session, ids(2), options);  // exactly at the limit
    CHECK(session.cache.bytes() == limit.bytes);
    options.steps = 1;  // fewer iterations write fewer core slots (full cache): 1 more fits
    if (rule.compress == 0) {
      session.cache.set_limit({.bytes = limit.bytes + model.kv_bytes_per_token(1, rule)});
      model.forward(session, ids(1), options);
      CHECK(session.cache.bytes() <= session.cache.limit().bytes);
    }
  }
}
