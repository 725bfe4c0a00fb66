// The chat tests' model: a tiny Huginn-shaped model on seeded random weights over the Huginn
// tokenizer's 65536 ids, written once per test process into a scratch directory with config.json,
// model.safetensors, tokenizer.json (tests/tokenizer/huginn_tokenizer.json) and
// generation_config.json. The embedding (tied to the head) is zero for every id whose text is not
// printable ASCII and for the test tokenizer's unused ids (it has ~3300 tokens), so greedy replies
// are plain text that a terminal shows as it is; the special tokens keep their rows.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "recurrent_depth/generate/chat.hpp"
#include "recurrent_depth/recurrent_depth.hpp"
#include "test_files.hpp"

namespace recurrent_depth::testing::chat {

namespace fs = std::filesystem;
using ChatModel = RecurrentDepthModel<CpuBackend, BF16>;
using testing::write_text;

inline fs::path huginn_tokenizer_path() {
  return fs::path(RECURRENT_DEPTH_TOKENIZER_TEST_DIR) / "huginn_tokenizer.json";
}

inline const tokenizer::Tokenizer& huginn_tokenizer() {
  static const tokenizer::Tokenizer t = tokenizer::Tokenizer::load(huginn_tokenizer_path());
  return t;
}

inline ModelConfig chat_config() {
  ModelConfig c;
  c.n_embd = 64, c.n_heads = 4, c.intermediate_size = 128, c.vocab_size = 65536;
  c.block_size = 320, c.mean_recurrence = 4;
  c.n_layers_in_prelude = 1, c.n_layers_in_recurrent_block = 2, c.n_layers_in_coda = 1;
  c.rope_base = 50000, c.norm_eps = 1e-6, c.tie_embeddings = true, c.qk_bias = true;
  c.bos_token_id = 65504, c.eos_token_id = 65505, c.pad_token_id = 65509;
  c.validate("chat test config");
  return c;
}

inline constexpr const char* kGenerationConfig =
    R"({"bos_token_id": 65504, "eos_token_id": [65505, 65508], "pad_token_id": 65509,
        "do_sample": false, "max_new_tokens": 6})";

// Ids whose rows stay random: the special tokens and the tokens that decode to printable ASCII.
inline std::vector<bool> kept_ids(int vocab) {
  std::vector<bool> kept(std::size_t(vocab), false);
  const tokenizer::Tokenizer& t = huginn_tokenizer();
  std::ifstream file(huginn_tokenizer_path());
  const nlohmann::json j = nlohmann::json::parse(file);
  for (const auto& [token, id] : j["model"]["vocab"].items()) {
    const std::int32_t i = id.get<std::int32_t>();
    const std::string text = t.decode(std::vector<std::int32_t>{i});
    bool printable = !text.empty();
    for (const unsigned char c : text) printable = printable && c >= 0x20 && c < 0x7f;
    if (i < vocab) kept[std::size_t(i)] = printable;
  }
  for (const auto& added : j["added_tokens"]) kept[added["id"].get<std::size_t>()] = true;
  return kept;
}

inline void write_chat_model(const fs::path& dir) {
  fs::create_directories(dir);
  const ModelConfig c = chat_config();
  nlohmann::ordered_json config = {{"architectures", {"RavenForCausalLM"}},
                                   {"model_type", "huginn_raven"},
                                   {"n_embd", c.n_embd},
                                   {"n_heads", c.n_heads},
                                   {"intermediate_size", c.intermediate_size},
                                   {"vocab_size", c.vocab_size},
                                   {"block_size", c.block_size},
                                   {"n_layers_in_prelude", c.n_layers_in_prelude},
                                   {"n_layers_in_recurrent_block", c.n_layers_in_recurrent_block},
                                   {"n_layers_in_coda", c.n_layers_in_coda},
                                   {"mean_recurrence", c.mean_recurrence},
                                   {"rope_base", c.rope_base},
                                   {"norm_eps", c.norm_eps},
                                   {"tie_embeddings", true},
                                   {"qk_bias", true},
                                   {"bos_token_id", c.bos_token_id},
                                   {"eos_token_id", c.eos_token_id},
                                   {"pad_token_id", c.pad_token_id}};
  write_text(dir / "config.json", config.dump(2));
  write_text(dir / "generation_config.json", kGenerationConfig);
  fs::copy_file(huginn_tokenizer_path(), dir / "tokenizer.json",
                fs::copy_options::overwrite_existing);

  const Checkpoint weights = synthetic_checkpoint(c, 2025, DType::BF16, true);
  const std::vector<bool> kept = kept_ids(c.vocab_size);
  SafetensorsWriter writer;
  for (const std::string& name : weights.tensor_names()) {
    const TensorInfo& t = weights.at(name);
    std::vector<std::byte> bytes(t.bytes.begin(), t.bytes.end());
    if (name == std::string(names::kEmbedding) + ".weight") {
      const std::size_t row = bytes.size() / std::size_t(c.vocab_size);
      for (std::size_t id = 0; id < kept.size(); ++id)
        if (!kept[id]) std::fill_n(bytes.begin() + std::ptrdiff_t(id * row), row, std::byte{0});
    }
    writer.add(name, t.dtype, t.shape, bytes);
  }
  writer.write(dir / "model.safetensors");
}

// The model directory, written on first use and removed when the test process exits.
inline const fs::path& chat_model_dir() {
  struct Directory {
    fs::path path = fs::temp_directory_path() / ("rdepth_chat_model_" + std::to_string(::getpid()));
    Directory() { write_chat_model(path); }
    ~Directory() {
      std::error_code ec;
      fs::remove_all(path, ec);
    }
  };
  static const Directory directory;
  return directory.path;
}

inline const ChatModel& chat_model() {
  static const ChatModel model = load_model<CpuBackend, BF16>(chat_model_dir());
  return model;
}

// The library's chat with the test model, as rdepth chat sets it up by default.
inline ChatOptions default_chat_options() {
  const GenerationConfig defaults =
      GenerationConfig::load(chat_model_dir() / "generation_config.json");
  ChatOptions options;
  options.generation.max_new_tokens = defaults.max_new_tokens.value_or(256);
  options.generation.sampling = defaults.sampling;
  options.generation.stop_ids = defaults.stop_ids;
  return options;
}

}  // namespace recurrent_depth::testing::chat
