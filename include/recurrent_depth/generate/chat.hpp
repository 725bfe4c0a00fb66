// Chat with a Huginn model: the chat template (the one huginn-0125's tokenizer_config.json
// carries), the defaults of a model directory's generation_config.json (stop ids, sampling,
// max_new_tokens), a TextStream that turns generated ids into text as they come, and a
// ChatSession that keeps a conversation in one model Session and prefills only each new turn.
//
//   Template: <|begin_text|> before the first message; each message is
//   <|begin_header|>{role}<|end_header|>\n\n{content, trimmed}<|end_turn|> (role "assistant" is
//   written "Huginn"); then <|begin_header|>Huginn<|end_header|>\n\n to ask for a reply, or
//   <|end_text|> without a generation prompt. There is no default system message.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <optional>
#include <span>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "../core/error.hpp"
#include "../io/model_directory.hpp"
#include "../tokenizer/tokenizer.hpp"
#include "generate.hpp"

namespace recurrent_depth {

// ---- Chat template ---------------------------------------------------------------------------

namespace chat_tokens {
inline constexpr std::string_view begin_text = "<|begin_text|>";
inline constexpr std::string_view end_text = "<|end_text|>";
inline constexpr std::string_view begin_header = "<|begin_header|>";
inline constexpr std::string_view end_header = "<|end_header|>";
inline constexpr std::string_view end_turn = "<|end_turn|>";
inline constexpr std::string_view assistant_role = "Huginn";
}  // namespace chat_tokens

struct ChatMessage {
  std::string role;  // "system", "user", "assistant" (written "Huginn") or any other name
  std::string content;
};

// Jinja's `trim`: whitespace removed at both ends.
inline std::string_view trim_whitespace(std::string_view text) {
  constexpr std::string_view space = " \t\n\r\f\v";
  const std::size_t first = text.find_first_not_of(space);
  if (first == std::string_view::npos) return {};
  return text.substr(first, text.find_last_not_of(space) - first + 1);
}

inline std::string chat_header(std::string_view role) {
  const std::string_view name = role == "assistant" ? chat_tokens::assistant_role : role;
  return std::string(chat_tokens::begin_header).append(name).append(chat_tokens::end_header) +
         "\n\n";
}

// One message: header, trimmed content, <|end_turn|>.
inline std::string chat_message_text(const ChatMessage& message) {
  return chat_header(message.role)
      .append(trim_whitespace(message.content))
      .append(chat_tokens::end_turn);
}

// What asks the model for its reply.
inline std::string chat_generation_prompt() {
  return chat_header(chat_tokens::assistant_role);
}

// The whole conversation as text, as the model's Jinja template renders it.
inline std::string apply_chat_template(std::span<const ChatMessage> messages,
                                       bool add_generation_prompt) {
  std::string text = messages.empty() ? "" : std::string(chat_tokens::begin_text);
  for (const ChatMessage& message : messages) text += chat_message_text(message);
  text += add_generation_prompt ? chat_generation_prompt() : std::string(chat_tokens::end_text);
  return text;
}

// ---- generation_config.json --------------------------------------------------------------------

// Generation defaults of a model directory. Fields read (others are ignored; null = absent):
// eos_token_id (an id or a list of ids: the stop ids), do_sample, temperature, top_k, top_p,
// min_p, repetition_penalty, max_new_tokens. As in Hugging Face transformers, sampling is on only
// with "do_sample": true, and then temperature, top_k and top_p default to 1.0, 50 and 1.0.
struct GenerationConfig {
  static constexpr std::int32_t kHuginnEndText = 65505, kHuginnEndTurn = 65508;

  std::vector<std::int32_t> stop_ids{kHuginnEndText, kHuginnEndTurn};
  SamplingOptions sampling;  // greedy unless do_sample
  std::optional<int> max_new_tokens;

  // Huginn's defaults (no file): stop at <|end_text|> or <|end_turn|>, greedy.
  static GenerationConfig huginn_defaults() { return {}; }

  // `path` missing: Huginn's defaults. Unreadable or malformed: an Error naming the file.
  static GenerationConfig load(const std::filesystem::path& path) {
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) return huginn_defaults();
    std::ifstream file(path, std::ios::binary);
    require(file.good(), path.string(), ": cannot open the file");
    std::ostringstream text;
    text << file.rdbuf();
    return parse(text.str(), path.string());
  }

  static GenerationConfig parse(const std::string& text, const std::string& origin) {
    using Json = nlohmann::json;
    Json j;
    try {
      j = Json::parse(text);
    } catch (const Json::exception& e) {  // parse_error, or out_of_range: a number past double
      fail(origin, ": malformed JSON (", e.what(), ")");
    }
    require(j.is_object(), origin, ": expected a JSON object at the top level");
    const auto field = [&](const char* key) -> const Json* {
      const auto it = j.find(key);
      return it == j.end() || it->is_null() ? nullptr : &*it;
    };
    const auto number = [&](const char* key, double low, double high, bool open_low,
                            const char* expected) -> std::optional<float> {
      const Json* v = field(key);
      if (!v) return std::nullopt;
      // The sampler takes floats: the value must stay in range once rounded to one.
      const double x = v->is_number() ? v->get<double>() : low - 1;
      const bool fits = std::abs(x) <= double(std::numeric_limits<float>::max());
      const double f = fits ? double(static_cast<float>(x)) : low - 1;
      const bool ok = v->is_number() && (open_low ? f > low : f >= low) && f <= high;
      require(ok, origin, ": field ", key, ": expected ", expected, " (a float), found ",
              detail::config_excerpt(*v));
      return static_cast<float>(x);
    };
    const auto integer = [&](const Json& v, const char* key, std::int64_t low,
                             std::int64_t high) -> std::int64_t {
      require(
          v.is_number_integer() && v.get<std::int64_t>() >= low && v.get<std::int64_t>() <= high,
          origin, ": field ", key, ": expected an integer in [", low, ", ", high, "], found ",
          detail::config_excerpt(v));
      return v.get<std::int64_t>();
    };
    constexpr std::int64_t most = std::numeric_limits<std::int32_t>::max();
    constexpr double inf = std::numeric_limits<double>::infinity();

    GenerationConfig config;
    if (const Json* eos = field("eos_token_id")) {
      config.stop_ids.clear();
      if (eos->is_array()) {
        for (const Json& id : *eos)
          config.stop_ids.push_back(std::int32_t(integer(id, "eos_token_id", 0, most)));
      } else {
        config.stop_ids.push_back(std::int32_t(integer(*eos, "eos_token_id", 0, most)));
      }
    }
    bool sample = false;
    if (const Json* v = field("do_sample")) {
      require(v->is_boolean(), origin, ": field do_sample: expected true or false, found ",
              detail::config_excerpt(*v));
      sample = v->get<bool>();
    }
    const auto temperature = number("temperature", 0, inf, false, "a number >= 0");
    const auto top_p = number("top_p", 0, 1, true, "a number with 0 < p <= 1");
    const auto min_p = number("min_p", 0, 1, false, "a number with 0 <= p <= 1");
    const auto penalty = number("repetition_penalty", 0, inf, true, "a number > 0");
    std::optional<int> top_k;
    if (const Json* v = field("top_k")) top_k = int(integer(*v, "top_k", 0, most));
    if (const Json* v = field("max_new_tokens"))
      config.max_new_tokens = int(integer(*v, "max_new_tokens", 1, most));

    config.sampling.repetition_penalty = penalty.value_or(1.0f);
    if (sample) {
      config.sampling.temperature = temperature.value_or(1.0f);
      config.sampling.top_k = top_k.value_or(50);
      config.sampling.top_p = top_p.value_or(1.0f);
      config.sampling.min_p = min_p.value_or(0.0f);
    }
    return config;
  }
};

// ---- Streaming text
// ------------------------------------------------------------------------------

// Generated ids to text as they come (whole UTF-8 characters only). An id the tokenizer cannot
// decode (outside its vocabulary, or a gap in it: a model's vocabulary may be larger) shows as
// U+FFFD instead of stopping the stream.
class TextStream {
 public:
  explicit TextStream(const tokenizer::Tokenizer& tokenizer, bool skip_special)
      : tokenizer_(&tokenizer), decoder_(tokenizer, skip_special) {}

  std::string push(std::int32_t id) {
    if (decodable(id)) return decoder_.push(id);
    return decoder_.finish() + "\xEF\xBF\xBD";
  }
  std::string finish() { return decoder_.finish(); }

 private:
  bool decodable(std::int32_t id) const {
    if (id < 0 || std::size_t(id) >= tokenizer_->vocab_size()) return false;
    try {
      tokenizer_->id_to_token(id);
      return true;
    } catch (const Error&) {
      return false;  // a gap in the vocabulary
    }
  }

  const tokenizer::Tokenizer* tokenizer_;
  tokenizer::StreamingDecoder decoder_;
};

// ---- Multi-turn chat ---------------------------------------------------------------------------

struct ChatOptions {
  GenerationOptions generation;       // steps, exit, sampling, stop ids, max_new_tokens, seed ...
  std::optional<std::string> system;  // a system message that opens every conversation
  CacheRule cache;                    // KV cache rule of the session
};

struct ChatTurn {
  std::string text;                  // the reply, special tokens left out
  Generation generation;             // its tokens (a final stop id included) and statistics
  std::vector<std::int32_t> prompt;  // what this turn fed before the reply (the new part only)
  std::size_t cached_before = 0;     // tokens in the KV cache before this turn
  std::size_t cached_after = 0;      // and after it
  bool stopped = false;              // ended by a stop id (not by max_new_tokens)
};

// A conversation held in one Session: a reply ends at a stop id of the options or at
// <|end_turn|> (always a stop). Each send() feeds only the new tokens (the previous
// reply's close, the user's message, the generation prompt) after those already in the KV cache.
// The previous reply's last token is never in the cache (generate() leaves it out): a final stop
// id is replaced by <|end_turn|>, any other last token is fed followed by <|end_turn|>, so the
// tokens equal the template's rendering of the conversation (the reply as the model's own ids).
// The sampler restarts each turn (seed + turn number); its repetition penalty sees the turn only.
template <class Model>
class ChatSession {
 public:
  using TextCallback = std::function<void(std::string_view)>;

  ChatSession(const Model& model, const tokenizer::Tokenizer& tokenizer, ChatOptions options)
      : model_(&model),
        tokenizer_(&tokenizer),
        options_(std::move(options)),
        session_(model.new_session(options_.generation.seed, options_.cache)) {
    const auto end_turn = tokenizer.token_to_id(chat_tokens::end_turn);
    require(end_turn.has_value(), "chat: the tokenizer has no ", chat_tokens::end_turn,
            " token (not a Huginn chat tokenizer)");
    end_turn_ = *end_turn;
    std::vector<std::int32_t>& stops = options_.generation.stop_ids;
    if (std::find(stops.begin(), stops.end(), end_turn_) == stops.end()) stops.push_back(end_turn_);
  }

  GenerationOptions& generation_options() { return options_.generation; }
  std::size_t cached_tokens() const { return session_.cache.length(); }
  // Every token of the conversation so far (a reply's final stop id written as <|end_turn|>);
  // the last one is not in the KV cache yet.
  const std::vector<std::int32_t>& history() const { return history_; }

  // Forgets the conversation: empty cache, next send() starts with <|begin_text|>.
  void reset() {
    model_->restart_session(session_, options_.generation.seed, options_.cache);
    history_.clear();
    pending_.clear();
    turns_ = 0;
  }

  // The tokens send(message) would feed now.
  std::vector<std::int32_t> turn_prompt(std::string_view message) const {
    std::vector<std::int32_t> ids = pending_;
    std::string text;
    if (history_.empty()) {
      text = chat_tokens::begin_text;
      if (options_.system) text += chat_message_text({"system", *options_.system});
    }
    text += chat_message_text({"user", std::string(message)}) + chat_generation_prompt();
    const std::vector<std::int32_t> encoded = tokenizer_->encode(text, false);
    ids.insert(ids.end(), encoded.begin(), encoded.end());
    return ids;
  }

  // The user's message in, the reply out (streamed through on_text as it is produced).
  ChatTurn send(std::string_view message, const TextCallback& on_text = {}) {
    ChatTurn turn;
    turn.prompt = turn_prompt(message);
    turn.cached_before = session_.cache.length();
    const std::size_t context = std::size_t(model_->config().block_size);
    const std::size_t room = context - std::min(context, turn.cached_before);
    require(options_.generation.max_new_tokens >= 1, "chat: max_new_tokens is ",
            options_.generation.max_new_tokens, ", expected >= 1");
    require(turn.prompt.size() <= room, "chat: this turn needs ", turn.prompt.size(),
            " positions after the ", turn.cached_before,
            " in the KV cache, but the model's "
            "context has ",
            context, " (block_size); reset the conversation to go on");
    GenerationOptions options = options_.generation;
    options.seed += turns_;
    // The last reply token is never fed, so N new tokens use prompt + N - 1 positions.
    options.max_new_tokens = int(
        std::min<std::size_t>(std::size_t(options.max_new_tokens), room - turn.prompt.size() + 1));
    TextStream stream(*tokenizer_, true);
    const TokenCallback on_token = [&](const GeneratedToken& token) {
      const std::string piece = stream.push(token.id);
      turn.text += piece;
      if (on_text && !piece.empty()) on_text(piece);
    };
    turn.generation = generate(*model_, session_, turn.prompt, options, on_token);
    const std::string rest = stream.finish();
    turn.text += rest;
    if (on_text && !rest.empty()) on_text(rest);

    history_.insert(history_.end(), turn.prompt.begin() + std::ptrdiff_t(pending_.size()),
                    turn.prompt.end());
    pending_.clear();
    const std::vector<std::int32_t> ids = turn.generation.ids();
    history_.insert(history_.end(), ids.begin(), ids.end());
    const auto& stops = options.stop_ids;
    turn.stopped = !ids.empty() && std::find(stops.begin(), stops.end(), ids.back()) != stops.end();
    if (!ids.empty() && !turn.stopped) pending_.push_back(ids.back());
    pending_.push_back(end_turn_);
    if (turn.stopped)
      history_.back() = end_turn_;
    else
      history_.push_back(end_turn_);
    turn.cached_after = session_.cache.length();
    ++turns_;
    return turn;
  }

 private:
  const Model* model_;
  const tokenizer::Tokenizer* tokenizer_;
  ChatOptions options_;
  typename Model::SessionType session_;
  std::int32_t end_turn_ = 0;
  std::vector<std::int32_t> history_;  // the conversation's tokens (fed or pending)
  std::vector<std::int32_t> pending_;  // tokens to feed before the next message
  std::uint64_t turns_ = 0;
};

}  // namespace recurrent_depth
