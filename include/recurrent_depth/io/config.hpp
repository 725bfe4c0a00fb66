// ModelConfig: the sizes of a recurrent-depth model, read from Huginn's config.json (same keys) and
// validated, so that later code can trust every size. Unknown keys are ignored.
#pragma once

#include <cerrno>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <sstream>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "recurrent_depth/core/error.hpp"

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

struct ModelConfig {
  int n_embd = 0;
  int n_heads = 0;
  int intermediate_size = 0;
  int vocab_size = 0;
  int padding_multiple = 1;
  int block_size = 0;
  int n_layers_in_prelude = 0;
  int n_layers_in_recurrent_block = 0;
  int n_layers_in_coda = 0;
  int mean_recurrence = 0;
  double rope_base = 0;
  double norm_eps = 0;
  bool tie_embeddings = true;
  bool qk_bias = true;
  int bos_token_id = -1;  // -1: none
  int eos_token_id = -1;
  int pad_token_id = -1;

  int head_dim() const { return n_heads > 0 ? n_embd / n_heads : 0; }

  // Checks the relations between fields (sizes positive, heads divide the width, even head_dim).
  // from_json calls it; call it on configs built in code.
  void validate(const std::string& source) const {
    const auto positive = [&](int v, const char* key) {
      if (v <= 0) fail(source, ": field ", key, ": expected a positive integer, found ", v);
    };
    positive(n_embd, "n_embd");
    positive(n_heads, "n_heads");
    positive(intermediate_size, "intermediate_size");
    positive(vocab_size, "vocab_size");
    positive(padding_multiple, "padding_multiple");
    positive(block_size, "block_size");
    positive(n_layers_in_recurrent_block, "n_layers_in_recurrent_block");
    positive(mean_recurrence, "mean_recurrence");
    if (n_layers_in_prelude < 0 || n_layers_in_coda < 0) {
      fail(source, ": layer counts must not be negative (prelude ", n_layers_in_prelude, ", coda ",
           n_layers_in_coda, ")");
    }
    if (!(rope_base > 0) || !std::isfinite(rope_base)) {
      fail(source, ": field rope_base: expected a positive number, found ", rope_base);
    }
    if (!(norm_eps > 0) || !std::isfinite(norm_eps)) {
      fail(source, ": field norm_eps: expected a positive number, found ", norm_eps);
    }
    if (n_embd % n_heads != 0) {
      fail(source, ": n_embd ", n_embd, " is not divisible by n_heads ", n_heads);
    }
    if (head_dim() % 2 != 0) {
      fail(source, ": head_dim ", head_dim(), " (n_embd ", n_embd, " / n_heads ", n_heads,
           ") is odd, but RoPE rotates pairs of features");
    }
    const auto token = [&](int id, const char* key) {
      if (id < -1 || id >= vocab_size) {
        fail(source, ": field ", key, ": ", id, " is not a token id below vocab_size ", vocab_size,
             " (or -1 for none)");
      }
    };
    token(bos_token_id, "bos_token_id");
    token(eos_token_id, "eos_token_id");
    token(pad_token_id, "pad_token_id");
  }

  static ModelConfig from_json(const nlohmann::json& j, const std::string& source) {
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

  static ModelConfig parse(std::string_view text, const std::string& source) {
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(text.begin(), text.end());
    } catch (const nlohmann::json::parse_error& e) {
      fail(source, ": malformed JSON at byte ", e.byte, ": ", e.what());
    } catch (const nlohmann::json::exception& e) {
      fail(source, ": malformed JSON: ", e.what());
    }
    return from_json(j, source);
  }

  static ModelConfig load(const std::filesystem::path& config_json_file) {
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
    return parse(text, source);
  }

  // One line, e.g. "n_embd 96, 6 heads x 16, mlp 256, vocab 384, layers 2/4/2, r 8, ...".
  std::string to_string() const {
    std::ostringstream s;
    s << "n_embd " << n_embd << ", " << n_heads << " heads x " << head_dim() << ", mlp "
      << intermediate_size << ", vocab " << vocab_size << " (padding " << padding_multiple
      << "), layers " << n_layers_in_prelude << "/" << n_layers_in_recurrent_block << "/"
      << n_layers_in_coda << ", mean_recurrence " << mean_recurrence << ", block_size "
      << block_size << ", rope_base " << rope_base << ", norm_eps " << norm_eps
      << (tie_embeddings ? ", tied" : ", untied") << " embeddings" << (qk_bias ? ", qk_bias" : "")
      << ", bos " << bos_token_id << ", eos " << eos_token_id << ", pad " << pad_token_id;
    return s.str();
  }
};

}  // namespace recurrent_depth
