// Reading a model directory: config.json -> ModelConfig (Huginn's keys; unknown keys are ignored,
// every field is checked), model.safetensors or the shards model.safetensors.index.json lists ->
// Checkpoint. All JSON the model needs is parsed here, on the host.
#pragma once

#include <cerrno>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "recurrent_depth/core/error.hpp"
#include "recurrent_depth/io/checkpoint.hpp"
#include "recurrent_depth/io/config.hpp"
#include "recurrent_depth/io/safetensors.hpp"

namespace recurrent_depth {

namespace detail {

inline std::string config_excerpt(const nlohmann::json& value) {
  if (value.is_structured()) return value.is_array() ? "an array" : "an object";
  std::string s = value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  if (s.size() > 60) s = s.substr(0, 57) + "...";
  return s;
}

[[noreturn]] inline void config_field_error(const std::string& source, std::string_view key,
                                            std::string_view expected,
                                            const nlohmann::json* found) {
  if (found == nullptr) fail(source, ": field ", key, ": missing (expected ", expected, ")");
  fail(source, ": field ", key, ": expected ", expected, ", found ", config_excerpt(*found));
}

// An integer field >= `minimum`; `fallback` is used when the key is absent (or null, when
// `null_is_fallback`); without a fallback the field is required.
inline int config_int(const nlohmann::json& j, std::string_view key, const std::string& source,
                      long long minimum, std::string_view expected, const int* fallback = nullptr,
                      bool null_is_fallback = false) {
  const auto it = j.find(key);
  if (it == j.end() || (null_is_fallback && it->is_null())) {
    if (fallback == nullptr) config_field_error(source, key, expected, nullptr);
    return *fallback;
  }
  if (!it->is_number_integer()) config_field_error(source, key, expected, &*it);
  if (it->is_number_unsigned()) {
    const auto v = it->get<unsigned long long>();
    if (v > static_cast<unsigned long long>(INT_MAX))
      config_field_error(source, key, expected, &*it);
    if (static_cast<long long>(v) < minimum) config_field_error(source, key, expected, &*it);
    return static_cast<int>(v);
  }
  const auto v = it->get<long long>();
  if (v < minimum || v > INT_MAX) config_field_error(source, key, expected, &*it);
  return static_cast<int>(v);
}

inline double config_positive_number(const nlohmann::json& j, std::string_view key,
                                     const std::string& source) {
  const auto it = j.find(key);
  if (it == j.end()) config_field_error(source, key, "a positive number", nullptr);
  if (!it->is_number()) config_field_error(source, key, "a positive number", &*it);
  const double v = it->get<double>();
  if (!(v > 0) || !std::isfinite(v)) config_field_error(source, key, "a positive number", &*it);
  return v;
}

inline bool config_bool(const nlohmann::json& j, std::string_view key, const std::string& source,
                        const bool* fallback = nullptr) {
  const auto it = j.find(key);
  if (it == j.end()) {
    if (fallback == nullptr) config_field_error(source, key, "true or false", nullptr);
    return *fallback;
  }
  if (!it->is_boolean()) config_field_error(source, key, "true or false", &*it);
  return it->get<bool>();
}

}  // namespace detail

// The fields of a parsed config.json, each checked (`source` names the file in messages).
inline ModelConfig model_config_from_json(const nlohmann::json& j, const std::string& source) {
  using namespace detail;
  if (!j.is_object()) fail(source, ": expected a JSON object, found ", config_excerpt(j));
  constexpr std::string_view kPositive = "a positive integer";
  constexpr std::string_view kNonNegative = "a non-negative integer";
  constexpr std::string_view kTokenId = "an integer token id, -1 or null";
  const int one = 1, none = -1;
  const bool yes = true;
  ModelConfig c;
  c.n_embd = config_int(j, "n_embd", source, 1, kPositive);
  c.n_heads = config_int(j, "n_heads", source, 1, kPositive);
  c.intermediate_size = config_int(j, "intermediate_size", source, 1, kPositive);
  c.vocab_size = config_int(j, "vocab_size", source, 1, kPositive);
  c.padding_multiple = config_int(j, "padding_multiple", source, 1, kPositive, &one);
  c.block_size = config_int(j, "block_size", source, 1, kPositive);
  c.n_layers_in_prelude = config_int(j, "n_layers_in_prelude", source, 0, kNonNegative);
  c.n_layers_in_recurrent_block =
      config_int(j, "n_layers_in_recurrent_block", source, 1, kPositive);
  c.n_layers_in_coda = config_int(j, "n_layers_in_coda", source, 0, kNonNegative);
  c.mean_recurrence = config_int(j, "mean_recurrence", source, 1, kPositive);
  c.rope_base = config_positive_number(j, "rope_base", source);
  c.norm_eps = config_positive_number(j, "norm_eps", source);
  c.tie_embeddings = config_bool(j, "tie_embeddings", source);
  c.qk_bias = config_bool(j, "qk_bias", source, &yes);
  c.bos_token_id = config_int(j, "bos_token_id", source, -1, kTokenId, &none, true);
  c.eos_token_id = config_int(j, "eos_token_id", source, -1, kTokenId, &none, true);
  c.pad_token_id = config_int(j, "pad_token_id", source, -1, kTokenId, &none, true);
  c.validate(source);
  return c;
}

// The text of a config.json.
inline ModelConfig parse_model_config(std::string_view text, const std::string& source) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text.begin(), text.end());
  } catch (const nlohmann::json::parse_error& e) {
    fail(source, ": malformed JSON at byte ", e.byte, ": ", e.what());
  } catch (const nlohmann::json::exception& e) {
    fail(source, ": malformed JSON: ", e.what());
  }
  return model_config_from_json(j, source);
}

// Reads and parses a config.json file.
inline ModelConfig load_model_config(const std::filesystem::path& config_json_file) {
  const std::string source = config_json_file.string();
  std::error_code ec;
  if (std::filesystem::is_directory(config_json_file, ec)) {
    fail("cannot read ", source, ": it is a directory");
  }
  std::FILE* file = std::fopen(config_json_file.c_str(), "rb");
  if (file == nullptr) fail("cannot open ", source, ": ", std::strerror(errno));
  std::string text;
  char buffer[4096];
  std::size_t n = 0;
  while ((n = std::fread(buffer, 1, sizeof buffer, file)) > 0) text.append(buffer, n);
  const bool failed = std::ferror(file) != 0;
  std::fclose(file);
  if (failed) fail("cannot read ", source);
  return parse_model_config(text, source);
}

// The shards in `dir` that the text of an index file names (open_checkpoint reads the text from
// dir/model.safetensors.index.json; `index_name` names it in messages).
inline Checkpoint checkpoint_from_index(const std::filesystem::path& dir,
                                        std::string_view index_text,
                                        const std::string& index_name) {
  nlohmann::json index;
  try {
    index = nlohmann::json::parse(index_text.begin(), index_text.end());
  } catch (const nlohmann::json::exception& e) {
    fail(index_name, ": malformed JSON: ", e.what());
  }
  if (!index.is_object()) fail(index_name, ": expected a JSON object");
  const auto map_it = index.find("weight_map");
  if (map_it == index.end()) fail(index_name, ": missing \"weight_map\"");
  if (!map_it->is_object()) fail(index_name, ": \"weight_map\" must be an object");

  // Each distinct shard is opened once; a tensor must be in the shard the index names.
  std::map<std::string, std::size_t> shard_slot;
  std::vector<SafetensorsFile> shards;
  std::map<std::string, const TensorInfo*, std::less<>> by_name;
  for (const auto& [name, shard] : map_it->items()) {
    if (!shard.is_string()) {
      fail(index_name, ": weight_map entry ", name, " must be a shard file name (a string)");
    }
    const auto& shard_name = shard.get_ref<const std::string&>();
    auto slot = shard_slot.find(shard_name);
    if (slot == shard_slot.end()) {
      // A file of the model directory itself: no path (an index names no file elsewhere).
      if (shard_name.empty() || shard_name == "." || shard_name == ".." ||
          shard_name.find_first_of(std::string_view("/\0", 2)) != std::string::npos) {
        fail(index_name, ": weight_map entry ", name, ": shard ", detail::json_excerpt(shard),
             " is not a file name in the model directory (expected e.g. "
             "model-00001-of-00004.safetensors)");
      }
      const std::filesystem::path shard_path = dir / shard_name;
      std::error_code ec;
      if (!std::filesystem::is_regular_file(shard_path, ec)) {
        fail(index_name, ": shard ", shard_name, " (for tensor ", name, ") does not exist");
      }
      shards.push_back(open_safetensors(shard_path));
      slot = shard_slot.emplace(shard_name, shards.size() - 1).first;
    }
    const TensorInfo* t = shards[slot->second].find(name);
    if (t == nullptr) {
      fail(index_name, ": tensor ", name, " is listed in shard ", shard_name,
           " but absent from it");
    }
    by_name.emplace(name, t);
  }
  return Checkpoint::from_tensor_map(std::move(shards), dir, std::move(by_name));
}

// `dir/model.safetensors` if present, else the shards named by
// `dir/model.safetensors.index.json`.
inline Checkpoint open_checkpoint(const std::filesystem::path& dir) {
  namespace fs = std::filesystem;
  const fs::path single = dir / "model.safetensors";
  const fs::path index = dir / "model.safetensors.index.json";
  std::error_code ec;
  if (fs::exists(single, ec)) {
    std::vector<SafetensorsFile> files;
    files.push_back(open_safetensors(single));
    return Checkpoint::from_files(std::move(files), dir.string());
  }
  if (!fs::exists(index, ec)) {
    fail(dir.string(), ": no model.safetensors or model.safetensors.index.json");
  }
  const std::string index_name = index.string();
  std::ifstream in(index, std::ios::binary);
  if (!in) fail("cannot open ", index_name);
  std::ostringstream text;
  text << in.rdbuf();
  return checkpoint_from_index(dir, text.str(), index_name);
}

}  // namespace recurrent_depth
