// Text in, ids out (and back): loads a Hugging Face tokenizer.json with a byte-level BPE model
// and encodes like the JavaScript library @huggingface/tokenizers (the test oracle): added tokens
// first, then normalizer, pre-tokenizer, BPE and the TemplateProcessing / ByteLevel post-processor.
// Decoding (ByteLevel decoder, or none) lives in decoder.hpp, with the StreamingDecoder.
//
//   auto tokenizer = recurrent_depth::tokenizer::Tokenizer::load("tokenizer.json");
//   std::vector<int32_t> ids = tokenizer.encode("Hello", /*add_special_tokens=*/true);
//   std::string text = tokenizer.decode(ids, /*skip_special=*/true);
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <memory>
#include <optional>
#include <span>
#include <sstream>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <nlohmann/json.hpp>

#include "../core/error.hpp"
#include "added_tokens.hpp"
#include "bpe_model.hpp"
#include "pre_tokenizer.hpp"

namespace recurrent_depth::tokenizer {

class Tokenizer {
 public:
  static Tokenizer load(const std::string& path) {
    std::ifstream file(path, std::ios::binary);
    require(file.good(), "tokenizer: cannot open \"", path, "\"");
    std::ostringstream contents;
    contents << file.rdbuf();
    return from_json_text(contents.str(), path);
  }

  // `origin` names the source (a file path) in error messages.
  static Tokenizer from_json_text(const std::string& text,
                                  const std::string& origin = "tokenizer.json") {
    Json config;
    try {
      config = Json::parse(text);
    } catch (const Json::exception& error) {  // parse_error, or out_of_range: a number past double
      fail(origin, ": malformed JSON (", error.what(), ")");
    }
    require(config.is_object(), origin, ": expected a JSON object at the top level");
    return Tokenizer(config, origin);
  }

  std::vector<int32_t> encode(std::string_view text, bool add_special_tokens = false) const {
    if (const std::size_t bad = first_invalid_utf8(text); bad != std::string_view::npos) {
      char byte[8];
      std::snprintf(byte, sizeof byte, "0x%02X", unsigned(static_cast<unsigned char>(text[bad])));
      fail("tokenizer: the text to encode is not valid UTF-8: byte ", byte, " at offset ", bad,
           " of ", text.size(), " does not start a valid UTF-8 sequence (expected UTF-8 text)");
    }
    std::vector<int32_t> ids;
    for (const std::string& section :
         split_on_added_tokens(text, unnormalized_tokens_, added_by_content_)) {
      if (section.empty()) continue;
      if (const auto it = added_by_content_.find(section); it != added_by_content_.end()) {
        ids.push_back(it->second.id);
        continue;
      }
      const std::string normalized = normalizer_ ? normalizer_->normalize(section) : section;
      for (const std::string& part :
           split_on_added_tokens(normalized, normalized_tokens_, added_by_content_)) {
        if (part.empty()) continue;
        if (const auto it = added_by_content_.find(part); it != added_by_content_.end()) {
          ids.push_back(it->second.id);
          continue;
        }
        for (const std::string& piece : pre_tokenizer_.split(part))
          model_->encode(piece, pre_tokenizer_.byte_level(), ids);
      }
    }
    return add_special_tokens ? apply_template(ids) : ids;
  }

  // Defined in decoder.hpp.
  std::string decode(std::span<const int32_t> ids, bool skip_special = false) const;

  std::optional<int32_t> token_to_id(std::string_view token) const {
    if (const auto it = added_by_content_.find(std::string(token)); it != added_by_content_.end())
      return it->second.id;
    if (const int32_t* id = model_->find(token)) return *id;
    return std::nullopt;
  }

  const std::string& id_to_token(int32_t id) const {
    require(id >= 0 && static_cast<std::size_t>(id) < vocab_size(), "tokenizer: id ", id,
            " is out of range (vocabulary size ", vocab_size(), ")");
    require(model_->is_token(id), "tokenizer: id ", id, " has no token (a gap in the vocabulary)");
    return model_->token(id);
  }

  // One past the largest id (ids inside the range may be unused).
  std::size_t vocab_size() const { return model_->id_count(); }

  bool is_special(int32_t id) const { return special_ids_.count(id) != 0; }
  bool is_added(int32_t id) const { return added_ids_.count(id) != 0; }
  bool has_byte_level_decoder() const { return byte_level_decoder_; }

 private:
  Tokenizer(const Json& config, const std::string& origin) {
    const auto field = [&](const char* key) -> const Json& {
      static const Json null_value;
      const auto it = config.find(key);
      return it == config.end() ? null_value : *it;
    };
    const std::vector<AddedToken> added =
        read_added_tokens(field("added_tokens"), origin + ": added_tokens");
    std::size_t id_count = 0;
    for (const AddedToken& token : added)
      id_count = std::max(id_count, static_cast<std::size_t>(token.id) + 1);
    normalizer_ = Normalizer::create(field("normalizer"), origin + ": normalizer");
    pre_tokenizer_ = PreTokenizer::create(field("pre_tokenizer"), origin + ": pre_tokenizer");
    require(config.contains("model"), origin, ": missing field \"model\"");
    model_ = std::make_unique<BpeModel>(config["model"], id_count, origin + ": model");
    for (const AddedToken& token : added) {
      model_->set_token(token.content, token.id);
      added_ids_.emplace(token.id);
      if (token.special) special_ids_.emplace(token.id);
      added_by_content_.emplace(token.content, token);
      if (token.normalized && normalizer_) {
        const std::string normalized = normalizer_->normalize(token.content);
        normalized_tokens_.insert(normalized);
        added_by_content_.emplace(normalized, token);
      } else {
        unnormalized_tokens_.insert(token.content);
      }
    }
    read_post_processor(field("post_processor"), origin + ": post_processor");
    const Json& decoder = field("decoder");
    if (!decoder.is_null()) {
      const std::string type = json_string(decoder, "type", origin + ": decoder");
      require(type == "ByteLevel", origin, ": decoder.type: unsupported decoder \"", type,
              "\" (supported: ByteLevel, null)");
      byte_level_decoder_ = true;
    }
  }

  static std::vector<AddedToken> read_added_tokens(const Json& list, const std::string& where) {
    std::vector<AddedToken> tokens;
    if (list.is_null()) return tokens;
    require(list.is_array(), where, ": expected an array");
    for (std::size_t i = 0; i < list.size(); ++i) {
      const std::string item = where + "[" + std::to_string(i) + "]";
      AddedToken token;
      token.content = json_string(list[i], "content", item);
      require(!token.content.empty() && is_valid_utf8(token.content), item,
              ".content: expected non-empty UTF-8 text");
      const Json& id = json_field(list[i], "id", item);
      require(id.is_number_integer() && id.get<int64_t>() >= 0 && id.get<int64_t>() < (1 << 30),
              item, ".id: expected a non-negative integer below 2^30");
      token.id = id.get<int32_t>();
      token.special = json_bool(list[i], "special", false, item);
      token.lstrip = json_bool(list[i], "lstrip", false, item);
      token.rstrip = json_bool(list[i], "rstrip", false, item);
      token.single_word = json_bool(list[i], "single_word", false, item);
      token.normalized = json_bool(list[i], "normalized", !token.special, item);
      tokens.push_back(std::move(token));
    }
    return tokens;
  }

  // TemplateProcessing (the "single" template), ByteLevel (no change to ids), or a Sequence of
  // them.
  void read_post_processor(const Json& config, const std::string& where) {
    if (config.is_null()) return;
    const std::string type = json_string(config, "type", where);
    if (type == "ByteLevel") return;
    if (type == "Sequence") {
      const Json& list = json_field(config, "processors", where);
      require(list.is_array(), where, ".processors: expected an array");
      for (std::size_t i = 0; i < list.size(); ++i)
        read_post_processor(list[i], where + ".processors[" + std::to_string(i) + "]");
      return;
    }
    require(type == "TemplateProcessing", where, ".type: unsupported post-processor \"", type,
            "\" (supported: TemplateProcessing, ByteLevel, Sequence)");
    require(!has_template_, where, ": more than one TemplateProcessing");
    has_template_ = true;
    const Json& single = json_field(config, "single", where);
    require(single.is_array(), where, ".single: expected an array");
    const auto special_map = config.find("special_tokens");
    for (std::size_t i = 0; i < single.size(); ++i) {
      const std::string item = where + ".single[" + std::to_string(i) + "]";
      if (single[i].contains("Sequence")) {
        template_.push_back({});
        continue;
      }
      const Json& special = json_field(single[i], "SpecialToken", item);
      const std::string name = json_string(special, "id", item + ".SpecialToken");
      TemplatePart part;
      if (special_map != config.end() && special_map->contains(name)) {
        const Json& ids =
            json_field((*special_map)[name], "ids", where + ".special_tokens." + name);
        require(ids.is_array(), where, ".special_tokens.", name, ".ids: expected an array of ids");
        for (const Json& id : ids) {
          require(id.is_number_integer() && id.get<int64_t>() >= 0 && id.get<int64_t>() < INT32_MAX,
                  where, ".special_tokens.", name, ".ids: expected non-negative integer ids");
          part.ids.push_back(id.get<int32_t>());
        }
      } else {
        const auto id = token_to_id(name);
        require(id.has_value(), item, ".SpecialToken.id: unknown token \"", name, "\"");
        part.ids.push_back(*id);
      }
      template_.push_back(std::move(part));
    }
  }

  std::vector<int32_t> apply_template(const std::vector<int32_t>& ids) const {
    if (!has_template_) return ids;
    std::vector<int32_t> out;
    for (const TemplatePart& part : template_) {
      if (part.ids.empty())
        out.insert(out.end(), ids.begin(), ids.end());
      else
        out.insert(out.end(), part.ids.begin(), part.ids.end());
    }
    return out;
  }

  struct TemplatePart {
    std::vector<int32_t> ids;
  };  // empty: the encoded sequence ($A)

  std::unique_ptr<Normalizer> normalizer_;
  PreTokenizer pre_tokenizer_;
  std::unique_ptr<BpeModel> model_;
  std::unordered_map<std::string, AddedToken> added_by_content_;
  TokenTrie unnormalized_tokens_, normalized_tokens_;
  std::unordered_set<int32_t> added_ids_, special_ids_;
  bool has_template_ = false, byte_level_decoder_ = false;
  std::vector<TemplatePart> template_;
};

}  // namespace recurrent_depth::tokenizer

#include "decoder.hpp"
