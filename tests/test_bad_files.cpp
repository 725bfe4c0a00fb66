// Bad files, end to end: each broken model directory, tokenizer or prompt is refused by the
// public API with one recurrent_depth::Error naming the file, tensor or field and what was
// expected, and by rdepth with exit code 1 and that message; nothing crashes, hangs or makes a
// huge allocation (the sanitizer build runs these too).
#include <catch2/catch.hpp>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli_support.hpp"
#include "recurrent_depth/recurrent_depth.hpp"
#include "test_files.hpp"

namespace fs = std::filesystem;
using namespace recurrent_depth;
using namespace recurrent_depth::testing;
using Catch::Contains;

namespace {

const fs::path kShippedModel = fs::path(RECURRENT_DEPTH_MODELS_DIR) / "arithmetic";

// A copy of a model directory's files (not its subdirectories).
void copy_model(const fs::path& from, const fs::path& to) {
  for (const fs::directory_entry& entry : fs::directory_iterator(from))
    if (entry.is_regular_file()) fs::copy_file(entry.path(), to / entry.path().filename());
}

// tiny_huginn's config.json with `edit` applied, written to `dir`.
void write_config(const fs::path& dir, const std::function<void(nlohmann::json&)>& edit) {
  nlohmann::json config = nlohmann::json::parse(read_text(tiny_huginn_dir() / "config.json"));
  edit(config);
  write_text(dir / "config.json", config.dump(2));
}

// tiny_huginn's model.safetensors with its JSON header edited (the data section kept), in `dir`.
void write_edited_weights(const fs::path& dir, const std::function<void(nlohmann::json&)>& edit) {
  const std::vector<std::byte> file = read_bytes(tiny_huginn_dir() / "model.safetensors");
  std::uint64_t length = 0;
  std::memcpy(&length, file.data(), 8);
  const char* text = reinterpret_cast<const char*>(file.data() + 8);
  nlohmann::json header = nlohmann::json::parse(text, text + length);
  edit(header);
  const std::string dumped = header.dump();
  const std::uint64_t new_length = dumped.size();
  std::vector<std::byte> out(8 + dumped.size());
  std::memcpy(out.data(), &new_length, 8);
  std::memcpy(out.data() + 8, dumped.data(), dumped.size());
  out.insert(out.end(), file.begin() + std::ptrdiff_t(8 + length), file.end());
  write_bytes(dir / "model.safetensors", out);
}

// The message of the Error that loading `dir` gives ("" when it loads).
std::string load_error(const fs::path& dir) {
  try {
    (void)load_model<CpuBackend, F32>(dir);
  } catch (const Error& error) {
    return error.what();
  }
  return "";
}

// rdepth refuses `arguments` with exit code 1 and one line "rdepth: ..." containing `needle`.
void require_cli_refuses(const std::string& arguments, const std::string& needle) {
#ifdef RECURRENT_DEPTH_RDEPTH
  const cli::Run run = cli::rdepth(arguments);
  INFO("rdepth " << arguments << "\nstderr: " << run.err);
  CHECK(run.code == 1);
  CHECK(run.err.rfind("rdepth: ", 0) == 0);
  CHECK(run.err.find('\n') == run.err.size() - 1);
  CHECK(run.err.find(needle) != std::string::npos);
#else
  (void)arguments;
  (void)needle;
#endif
}

std::string model_flag(const fs::path& dir) {
  return std::string(" --model ") + cli::quote(dir.string());
}

// A prompt of `count` tokens for the shipped model (one character each: "1;1;1;...").
std::string long_prompt(std::size_t count) {
  std::string text;
  for (std::size_t i = 0; i < count; ++i) text += i % 2 == 0 ? '1' : ';';
  return text;
}

}  // namespace

TEST_CASE("bad files: a truncated shard", "[bad_files]") {
  for (const bool in_header : {true, false}) {
    TempDir dir("rd_bad_files");
    write_sharded(dir.path, 2);
    fs::copy_file(tiny_huginn_dir() / "config.json", dir.path / "config.json");
    const fs::path shard = dir.path / shard_name(1, 2);
    const std::vector<std::byte> bytes = read_bytes(shard);
    std::uint64_t header = 0;
    std::memcpy(&header, bytes.data(), 8);
    const std::size_t data = bytes.size() - 8 - header;
    const std::size_t keep = in_header ? 8 + header / 2 : 8 + header + data / 2;
    fs::resize_file(shard, keep);
    const std::string expected =
        in_header ? "runs past the end of the file" : "is past the end of the data section";
    INFO("cut in the " << (in_header ? "header" : "data"));
    CHECK_THAT(load_error(dir.path), Contains(shard.string()) && Contains(expected));
    require_cli_refuses(std::string("inspect") + model_flag(dir.path), shard_name(1, 2));
  }
}

TEST_CASE("bad files: a shard header claiming 10^15 elements", "[bad_files]") {
  const std::string tensor = "transformer.ln_f.weight";
  for (const bool offsets_too : {false, true}) {
    TempDir dir("rd_bad_files");
    fs::copy_file(tiny_huginn_dir() / "config.json", dir.path / "config.json");
    write_edited_weights(dir.path, [&](nlohmann::json& header) {
      header[tensor]["shape"] = {1'000'000'000'000'000LL};
      if (offsets_too) {  // the offsets agree with the shape: they run past the file instead
        const auto begin = header[tensor]["data_offsets"][0].get<std::uint64_t>();
        header[tensor]["data_offsets"][1] = begin + 2'000'000'000'000'000ULL;
      }
    });
    const std::string expected =
        offsets_too ? "is past the end of the data section" : "needs 2000000000000000";
    CHECK_THAT(load_error(dir.path),
               Contains(std::string("model.safetensors: tensor ") + tensor) && Contains(expected));
    require_cli_refuses(std::string("inspect") + model_flag(dir.path), tensor);
  }
}

TEST_CASE("bad files: a shard named by the index is missing", "[bad_files]") {
  TempDir dir("rd_bad_files");
  write_sharded(dir.path, 3);
  fs::copy_file(tiny_huginn_dir() / "config.json", dir.path / "config.json");
  fs::remove(dir.path / shard_name(1, 3));
  const std::string expected = std::string("shard ") + shard_name(1, 3);
  CHECK_THAT(load_error(dir.path),
             Contains(std::string("model.safetensors.index.json: ") + expected) &&
                 Contains("does not exist"));
  require_cli_refuses(std::string("inspect") + model_flag(dir.path), expected);
}

TEST_CASE("bad files: tensors of the wrong shape or dtype for the config", "[bad_files]") {
  const std::string fc = "transformer.prelude.0.mlp.fc.weight";  // [512, 96] in tiny_huginn
  SECTION("transposed shape, same bytes") {
    TempDir dir("rd_bad_files");
    fs::copy_file(tiny_huginn_dir() / "config.json", dir.path / "config.json");
    write_edited_weights(dir.path, [&](nlohmann::json& h) { h[fc]["shape"] = {96, 512}; });
    CHECK_THAT(load_error(dir.path), Contains(std::string("tensor ") + fc + " in ") &&
                                         Contains("shape [96, 512], expected [512, 96]"));
    require_cli_refuses(std::string("inspect") + model_flag(dir.path), "expected [512, 96]");
  }
  SECTION("an integer dtype, same bytes") {
    TempDir dir("rd_bad_files");
    fs::copy_file(tiny_huginn_dir() / "config.json", dir.path / "config.json");
    write_edited_weights(dir.path, [&](nlohmann::json& h) {
      REQUIRE(h[fc]["dtype"] == "BF16");
      h[fc]["dtype"] = "I16";
    });
    CHECK_THAT(load_error(dir.path), Contains(std::string("tensor ") + fc + " in ") &&
                                         Contains("dtype I16, expected F32, BF16 or F16"));
    require_cli_refuses(std::string("inspect") + model_flag(dir.path), "dtype I16");
  }
  SECTION("a config far larger than its tensors: no allocation for the config's sizes") {
    TempDir dir("rd_bad_files");
    fs::copy_file(tiny_huginn_dir() / "model.safetensors", dir.path / "model.safetensors");
    write_config(dir.path, [](nlohmann::json& c) { c["intermediate_size"] = 1 << 30; });
    CHECK_THAT(load_error(dir.path), Contains("tensor transformer.prelude.0.mlp.fc.weight") &&
                                         Contains("expected [2147483648, 96]"));
    require_cli_refuses(std::string("inspect") + model_flag(dir.path), "expected [2147483648, 96]");
  }
}

TEST_CASE("bad files: a config with zero or negative sizes, or heads not dividing the width",
          "[bad_files]") {
  const std::pair<nlohmann::json, std::string> cases[] = {
      {{{"n_embd", 0}}, "field n_embd: expected a positive integer, found 0"},
      {{{"intermediate_size", -256}}, "field intermediate_size: expected a positive integer"},
      {{{"n_layers_in_coda", -1}}, "field n_layers_in_coda: expected a non-negative integer"},
      {{{"block_size", 0}}, "field block_size: expected a positive integer, found 0"},
      {{{"n_heads", 5}}, "n_embd 96 is not divisible by n_heads 5"},
  };
  for (const auto& [fields, expected] : cases) {
    TempDir dir("rd_bad_files");
    fs::copy_file(tiny_huginn_dir() / "model.safetensors", dir.path / "model.safetensors");
    write_config(dir.path, [&](nlohmann::json& c) { c.update(fields); });
    INFO(fields.dump());
    CHECK_THAT(load_error(dir.path), Contains("config.json: ") && Contains(expected));
    require_cli_refuses(std::string("inspect") + model_flag(dir.path), expected);
  }
}

TEST_CASE("bad files: a tokenizer.json with an invalid regex", "[bad_files]") {
  TempDir dir("rd_bad_files");
  copy_model(kShippedModel, dir.path);
  const fs::path path = dir.path / "tokenizer.json";
  nlohmann::json tokenizer = nlohmann::json::parse(read_text(path));
  tokenizer["pre_tokenizer"] = {
      {"type", "Sequence"},
      {"pretokenizers",
       {{{"type", "Split"}, {"pattern", {{"Regex", "(unclosed"}}}, {"behavior", "Isolated"}},
        tokenizer["pre_tokenizer"]}}};
  fs::remove(path);
  write_text(path, tokenizer.dump());
  const std::string where = "pre_tokenizer.pretokenizers[0].pattern.Regex";
  CHECK_THROWS_WITH(tokenizer::Tokenizer::load(path.string()),
                    Contains(path.string()) && Contains(where) && Contains("invalid regex"));
  require_cli_refuses(
      std::string("tokenize --tokenizer ") + cli::quote(path.string()) + " --text x", where);
  require_cli_refuses(
      std::string("generate") + model_flag(dir.path) + " --prompt x --max-new-tokens 1", where);
}

TEST_CASE("bad files: a prompt longer than the model's block_size", "[bad_files]") {
  const auto model = load_model<CpuBackend, F32>(kShippedModel);
  const auto tokenizer = tokenizer::Tokenizer::load((kShippedModel / "tokenizer.json").string());
  const std::size_t context = std::size_t(model.config().block_size);
  const std::vector<std::int32_t> prompt = tokenizer.encode(long_prompt(context), true);
  REQUIRE(prompt.size() == context + 1);  // with <|begin_text|>
  Session session = model.new_session();
  CHECK_THROWS_WITH(model.forward(session, prompt),
                    Contains("forward: 257 tokens after 0 cached ones exceed the context of 256 "
                             "positions (block_size)"));
  GenerationOptions options;
  options.max_new_tokens = 1;
  CHECK_THROWS_WITH(generate(model, session, prompt, options),
                    Contains("generate: the prompt of 257 tokens after 0 cached ones exceeds the "
                             "model's context of 256 positions (block_size)"));
  CHECK(session.cache.length() == 0);
  require_cli_refuses(std::string("generate") + model_flag(kShippedModel) + " --prompt " +
                          cli::quote(long_prompt(context)) + " --max-new-tokens 1",
                      "--prompt: the prompt has 257 tokens, more than the model's context of 256");
}

TEST_CASE("bad files: generation past the model's block_size", "[bad_files]") {
  const auto model = load_model<CpuBackend, F32>(kShippedModel);
  const auto tokenizer = tokenizer::Tokenizer::load((kShippedModel / "tokenizer.json").string());
  const std::vector<std::int32_t> prompt = tokenizer.encode(long_prompt(249), true);  // 250 ids
  Session session = model.new_session();
  GenerationOptions options;
  options.max_new_tokens = 8;  // 250 + 8 - 1 = 257 positions
  int produced = 0;
  CHECK_THROWS_WITH(
      generate(model, session, prompt, options, [&](const GeneratedToken&) { ++produced; }),
      Contains("generate: max_new_tokens 8 after a prompt of 250 tokens and 0 cached ones needs "
               "257 positions, more than the model's context of 256 positions (block_size) (at "
               "most 7 new tokens fit)"));
  CHECK(produced == 0);  // refused before the first forward
  options.max_new_tokens = 7;
  CHECK(generate(model, session, prompt, options).tokens.size() <= 7);
  require_cli_refuses(std::string("generate") + model_flag(kShippedModel) + " --prompt " +
                          cli::quote(long_prompt(249)) + " --max-new-tokens 8",
                      "--max-new-tokens 8: the prompt of 250 tokens leaves room for at most 7");
}

TEST_CASE("bad files: a prompt that is not UTF-8", "[bad_files]") {
  const auto tokenizer = tokenizer::Tokenizer::load((kShippedModel / "tokenizer.json").string());
  const std::string expected = "not valid UTF-8: byte 0xFF at offset 4 of 6";
  CHECK_THROWS_WITH(tokenizer.encode("x=1;\xFF?"), Contains(expected));
  CHECK_THROWS_WITH(tokenizer.encode("x=\xC3("), Contains("byte 0xC3 at offset 2"));  // cut short
  require_cli_refuses(std::string("generate") + model_flag(kShippedModel) +
                          " --prompt 'x=1;\xFF?' --max-new-tokens 1",
                      expected);
  require_cli_refuses(std::string("tokenize --tokenizer ") +
                          cli::quote((kShippedModel / "tokenizer.json").string()) +
                          " --text 'x=1;\xFF?'",
                      expected);
}
