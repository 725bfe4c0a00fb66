// rdepth serve, the request side: an OpenAI request body (JSON) turned into what a generation
// needs (prompt ids, GenerationOptions, cache rule, stop texts, streaming), and the OpenAI-style
// error that answers a bad one. The recurrence settings are the CLI's: each body field is handed
// to the flag parsers of generation_flags.hpp and test_time.hpp under its flag's name
// ("exit_threshold" -> --exit-threshold), so names, ranges and combination rules are the same,
// and an error names the field as the request wrote it.
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common.hpp"
#include "generation_flags.hpp"
#include "test_time.hpp"

namespace rdepth::serve {

using Json = nlohmann::json;

// A message from any streamable parts (no string + chains: GCC 12 warns on them, -Wrestrict).
template <class... Parts>
std::string cat(Parts&&... parts) {
  std::ostringstream text;
  (text << ... << std::forward<Parts>(parts));
  return text.str();
}

// JSON text; bytes that are not UTF-8 (a prompt's, or a token's that ends inside a character)
// are written as U+FFFD rather than failing.
inline std::string json_text(const Json& json) {
  return json.dump(-1, ' ', false, Json::error_handler_t::replace);
}

// An error answered with an HTTP status and OpenAI's body:
// {"error": {"message": ..., "type": ..., "param": ..., "code": ...}}.
struct ApiError {
  int status = 400;
  std::string type = "invalid_request_error";
  std::string message;
  std::optional<std::string> param;
  std::optional<std::string> code;

  std::string body() const {
    Json error = {{"message", message},
                  {"type", type},
                  {"param", param ? Json(*param) : Json(nullptr)},
                  {"code", code ? Json(*code) : Json(nullptr)}};
    return json_text(Json{{"error", std::move(error)}});
  }
};

inline ApiError invalid_request(std::string message, std::optional<std::string> param = {}) {
  return {400, "invalid_request_error", std::move(message), std::move(param), std::nullopt};
}

// Any other error: no parameter to blame.
inline ApiError api_error(int status, std::string type, std::string message,
                          std::optional<std::string> code = {}) {
  return {status, std::move(type), std::move(message), std::nullopt, std::move(code)};
}

enum class Endpoint { completions, chat };

// What the server was started with and what every request needs from the model directory.
struct ServeContext {
  const rd::ModelConfig& config;
  const rd::tokenizer::Tokenizer& tokenizer;
  const rd::GenerationConfig& defaults;  // generation_config.json: stop ids, sampling, length
  int max_steps;                         // most core iterations a request may ask for
};

// A request, checked and ready for the scheduler.
struct ServeRequest {
  Endpoint endpoint = Endpoint::completions;
  std::vector<std::int32_t> prompt;
  rd::GenerationOptions generation;
  rd::CacheRule cache;
  std::vector<std::string> stop_texts;  // "stop": the text ends before the first of these
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage: a last chunk with the usage
};

// A body field that is one of the CLI's flags: its JSON kind and the flag it goes to.
struct FlagField {
  enum Kind { integer, number, string, boolean };
  const char* field;
  const char* flag;
  Kind kind;
};

inline constexpr FlagField kFlagFields[] = {
    {"max_tokens", "--max-new-tokens", FlagField::integer},
    {"max_completion_tokens", "--max-new-tokens", FlagField::integer},
    {"temperature", "--temperature", FlagField::number},
    {"top_p", "--top-p", FlagField::number},
    {"top_k", "--top-k", FlagField::integer},
    {"min_p", "--min-p", FlagField::number},
    {"repetition_penalty", "--repetition-penalty", FlagField::number},
    {"seed", "--seed", FlagField::integer},
    {"steps", "--steps", FlagField::integer},
    {"init", "--init", FlagField::string},
    {"exit", "--exit", FlagField::string},
    {"exit_threshold", "--exit-threshold", FlagField::number},
    {"exit_min_steps", "--exit-min-steps", FlagField::integer},
    {"exit_every", "--exit-every", FlagField::integer},
    {"cache", "--cache", FlagField::string},
    {"continuous", "--continuous", FlagField::boolean},
    {"draft_steps", "--draft-steps", FlagField::integer},
    {"lookahead", "--lookahead", FlagField::integer},
    {"accept_ratio", "--accept-ratio", FlagField::number},
};

inline Arguments request_arguments() {
  return Arguments("serve", "(request body)", "",
                   concat(concat(concat({{"--max-new-tokens", "N", ""},
                                         steps_flag(),
                                         init_flag(),
                                         {"--seed", "S", ""},
                                         {"--continuous", "", ""},
                                         cache_flag(),
                                         kv_format_flag()},
                                        exit_flags()),
                                 concat(sampling_flags(), speculative_flags())),
                          {}));
}

// Whether a field holds a value (JSON null counts as absent, as OpenAI's clients send it).
inline bool present(const Json& body, const char* field) {
  const auto it = body.find(field);
  return it != body.end() && !it->is_null();
}

// The CLI's message with each flag written as the request's field ("--exit-threshold X" ->
// "exit_threshold X"). A flag followed by '-' or a letter is a longer flag's start.
inline std::string with_field_names(std::string message, const Json& body) {
  for (const FlagField& f : kFlagFields) {
    const std::string_view field = f.field, flag = f.flag;
    if (field == "max_completion_tokens" &&
        (present(body, "max_tokens") || !present(body, field.data())))
      continue;  // --max-new-tokens is named after the field the request used
    for (std::size_t at = message.find(flag); at != std::string::npos;
         at = message.find(flag, at)) {
      const char next = at + flag.size() < message.size() ? message[at + flag.size()] : ' ';
      if (next == '-' || (next >= 'a' && next <= 'z')) {
        at += flag.size();
        continue;
      }
      message.replace(at, flag.size(), field);
      at += field.size();
    }
  }
  return message;
}

// The flag words for the body's CLI fields, every value type-checked first.
inline std::vector<std::string> flag_words(const Json& body, bool greedy) {
  std::vector<std::string> words;
  for (const FlagField& f : kFlagFields) {
    if (!present(body, f.field)) continue;
    const Json& value = body.at(f.field);
    const bool ok = f.kind == FlagField::integer  ? value.is_number_integer()
                    : f.kind == FlagField::number ? value.is_number()
                    : f.kind == FlagField::string ? value.is_string()
                                                  : value.is_boolean();
    if (!ok) {
      const char* expected = f.kind == FlagField::integer  ? "an integer"
                             : f.kind == FlagField::number ? "a number"
                             : f.kind == FlagField::string ? "a string"
                                                           : "true or false";
      throw invalid_request(cat(f.field, ": expected ", expected, ", got ", value.dump()), f.field);
    }
    // At temperature 0 decoding is greedy; the filters' "off" values are what clients send.
    const bool off =
        (f.kind == FlagField::number && value.get<double>() == 1.0 &&
         std::string_view(f.field) == "top_p") ||
        (value.is_number() && value.get<double>() == 0.0 &&
         (std::string_view(f.field) == "top_k" || std::string_view(f.field) == "min_p"));
    if (greedy && off) continue;
    if (f.kind == FlagField::boolean) {
      if (value.get<bool>()) words.emplace_back(f.flag);
      continue;
    }
    words.push_back(std::string(f.flag).append("=").append(
        value.is_string() ? value.get<std::string>() : value.dump()));
  }
  return words;
}

// The prompt of a completion: a string (encoded with BOS, as rdepth generate --prompt does),
// one string in an array, or an array of token ids.
inline std::vector<std::int32_t> completion_prompt(const Json& body, const ServeContext& context) {
  if (!present(body, "prompt")) throw invalid_request("prompt is required", "prompt");
  const Json& prompt = body.at("prompt");
  if (prompt.is_string()) return context.tokenizer.encode(prompt.get<std::string>(), true);
  if (prompt.is_array() && prompt.size() == 1 && prompt[0].is_string())
    return context.tokenizer.encode(prompt[0].get<std::string>(), true);
  if (prompt.is_array() && !prompt.empty() && prompt[0].is_number_integer()) {
    std::vector<std::int32_t> ids;
    for (const Json& id : prompt) {
      if (!id.is_number_integer() || id.get<std::int64_t>() < 0 ||
          id.get<std::int64_t>() >= context.config.vocab_size)
        throw invalid_request(cat("prompt: item ", ids.size(), " is ", id.dump(),
                                  ", not a token id (0 <= id < ", context.config.vocab_size, ")"),
                              "prompt");
      ids.push_back(id.get<std::int32_t>());
    }
    return ids;
  }
  throw invalid_request(
      "prompt: expected a string, an array of one string or an array of token ids (one prompt "
      "per request)",
      "prompt");
}

// A message's content: a string, or an array of {"type": "text", "text": ...} parts.
inline std::string message_content(const Json& content, std::size_t index) {
  const std::string where = cat("messages[", index, "].content");
  if (content.is_string()) return content.get<std::string>();
  std::string text;
  if (content.is_array()) {
    for (const Json& part : content) {
      if (!part.is_object() || part.value("type", Json()) != "text" || !part.contains("text") ||
          !part.at("text").is_string())
        throw invalid_request(cat(where, ": only text parts ({\"type\": \"text\", \"text\": ...})"),
                              "messages");
      text += part.at("text").get<std::string>();
    }
    return text;
  }
  throw invalid_request(cat(where, ": expected a string or an array of text parts"), "messages");
}

// The prompt of a chat: the messages written with the model's chat template.
inline std::vector<std::int32_t> chat_prompt(const Json& body, const ServeContext& context) {
  if (!context.tokenizer.token_to_id(rd::chat_tokens::end_turn))
    throw invalid_request(cat("this model's tokenizer has no chat template tokens (",
                              rd::chat_tokens::end_turn, "); use /v1/completions"));
  if (!present(body, "messages") || !body.at("messages").is_array() || body.at("messages").empty())
    throw invalid_request("messages: expected a non-empty array of messages", "messages");
  std::vector<rd::ChatMessage> messages;
  for (const Json& m : body.at("messages")) {
    const std::size_t i = messages.size();
    if (!m.is_object() || !m.contains("role") || !m.at("role").is_string() ||
        !m.contains("content"))
      throw invalid_request(
          cat("messages[", i, "]: expected an object with a string role and a content"),
          "messages");
    messages.push_back({m.at("role").get<std::string>(), message_content(m.at("content"), i)});
  }
  const std::string text = rd::apply_chat_template(messages, true);
  return context.tokenizer.encode(text, false);
}

// "stop": a string or an array of at most 4 non-empty strings.
inline std::vector<std::string> stop_texts(const Json& body) {
  if (!present(body, "stop")) return {};
  const Json& stop = body.at("stop");
  std::vector<std::string> texts;
  if (stop.is_string()) texts.push_back(stop.get<std::string>());
  if (stop.is_array() && stop.size() <= 4)
    for (const Json& s : stop)
      if (s.is_string()) texts.push_back(s.get<std::string>());
  const bool ok = (stop.is_string() || (stop.is_array() && texts.size() == stop.size())) &&
                  std::none_of(texts.begin(), texts.end(), [](auto& t) { return t.empty(); });
  if (!ok) throw invalid_request("stop: expected a string or up to 4 non-empty strings", "stop");
  return texts;
}

inline bool boolean_field(const Json& body, const char* field) {
  if (!present(body, field)) return false;
  if (!body.at(field).is_boolean())
    throw invalid_request(cat(field, ": expected true or false"), field);
  return body.at(field).get<bool>();
}

// Checks a request body and turns it into a ServeRequest; throws ApiError.
inline ServeRequest parse_request(const std::string& text, Endpoint endpoint,
                                  const ServeContext& context) {
  Json body;
  try {
    body = Json::parse(text);
  } catch (const Json::parse_error& e) {
    throw invalid_request(cat("malformed JSON: ", e.what()));
  }
  if (!body.is_object()) throw invalid_request("the request body must be a JSON object");
  if (present(body, "model") && !body.at("model").is_string())
    throw invalid_request("model: expected a string", "model");
  if (present(body, "n") && body.at("n") != 1)
    throw invalid_request("n: only one choice per request (n = 1)", "n");

  ServeRequest request;
  request.endpoint = endpoint;
  request.stream = boolean_field(body, "stream");
  if (present(body, "stream_options")) {
    const Json& options = body.at("stream_options");
    if (!options.is_object()) throw invalid_request("stream_options: expected an object");
    request.include_usage = boolean_field(options, "include_usage");
  }
  request.stop_texts = stop_texts(body);

  const bool greedy = present(body, "temperature") && body.at("temperature").is_number()
                          ? body.at("temperature").get<double>() == 0.0
                          : context.defaults.sampling.greedy();
  Arguments args = request_arguments();
  rd::GenerationOptions& g = request.generation;
  std::optional<std::int64_t> max_tokens;
  try {
    args.parse(flag_words(body, greedy));
    g.steps = steps(args);
    g.init = state_init(args);
    g.continuous = args.has("--continuous");
    g.exit = exit_options(args);
    g.sampling = sampling_options(args, context.defaults.sampling);
    g.speculative = speculative_options(args);
    request.cache = cache_rule(args);
    max_tokens = args.integer("--max-new-tokens", 1, std::numeric_limits<int>::max());
    const auto seed = args.unsigned_integer("--seed");
    g.seed = seed ? *seed : std::random_device()();
  } catch (const rd::Error& e) {
    throw invalid_request(with_field_names(e.what(), body));
  }
  for (const auto& [field, value] :
       {std::pair{"steps", g.steps.value_or(0)},
        std::pair{"draft_steps", g.speculative ? g.speculative->draft_steps : 0}})
    if (value > context.max_steps)
      throw invalid_request(
          cat(field, " is ", value, ", more than this server's --max-steps ", context.max_steps),
          field);

  try {
    request.prompt =
        endpoint == Endpoint::chat ? chat_prompt(body, context) : completion_prompt(body, context);
  } catch (const rd::Error& e) {
    throw invalid_request(cat("cannot encode the prompt: ", e.what()));
  }
  const char* prompt_field = endpoint == Endpoint::chat ? "messages" : "prompt";
  const auto block = static_cast<std::size_t>(context.config.block_size);
  if (request.prompt.empty()) throw invalid_request("the prompt is empty", prompt_field);
  if (request.prompt.size() > block)
    throw ApiError{
        400, "invalid_request_error",
        cat("the prompt has ", request.prompt.size(), " tokens, more than the model's context of ",
            block, " positions (block_size)"),
        prompt_field, "context_length_exceeded"};
  // The last new token is never fed back: N new tokens need prompt + N - 1 positions.
  const std::size_t room = block - request.prompt.size() + 1;
  if (max_tokens) {
    if (std::size_t(*max_tokens) > room)
      throw ApiError{400, "invalid_request_error",
                     cat("max_tokens is ", *max_tokens, ": the prompt of ", request.prompt.size(),
                         " tokens leaves room for ", room, " new tokens in the model's context of ",
                         block, " positions (block_size)"),
                     "max_tokens", "context_length_exceeded"};
    g.max_new_tokens = int(*max_tokens);
  } else {
    g.max_new_tokens = int(std::min<std::size_t>(
        room, context.defaults.max_new_tokens.value_or(std::numeric_limits<int>::max())));
  }

  // ignore_eos (as llama.cpp and vLLM name it): only max_tokens and "stop" texts end the text.
  if (!boolean_field(body, "ignore_eos")) {
    g.stop_ids = context.defaults.stop_ids;
    if (endpoint == Endpoint::chat)
      g.stop_ids.push_back(*context.tokenizer.token_to_id(rd::chat_tokens::end_turn));
  }
  return request;
}

}  // namespace rdepth::serve
