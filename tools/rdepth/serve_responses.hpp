// rdepth serve, the response side: the OpenAI bodies of /v1/completions and
// /v1/chat/completions (whole, or streamed as server-sent events: one chunk per token, a last
// chunk with the finish reason and the usage, then "data: [DONE]"), of /v1/models, and the
// usage, which adds the core iterations the request ran to OpenAI's token counts.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "serve_request.hpp"

namespace rdepth::serve {

struct Usage {
  std::size_t prompt_tokens = 0, completion_tokens = 0;
  std::size_t core_iterations = 0;  // the prompt's and every produced token's (drafts included)

  Json json() const {
    return {{"prompt_tokens", prompt_tokens},
            {"completion_tokens", completion_tokens},
            {"total_tokens", prompt_tokens + completion_tokens},
            {"core_iterations", core_iterations}};
  }
};

inline std::int64_t unix_seconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The parts every body of one request shares: its id, creation time, model and endpoint.
class ResponseWriter {
 public:
  ResponseWriter(Endpoint endpoint, std::uint64_t number, std::string model)
      : endpoint_(endpoint),
        id_(cat(endpoint == Endpoint::chat ? "chatcmpl-" : "cmpl-", number)),
        created_(unix_seconds()),
        model_(std::move(model)) {}

  // The whole answer of a request that was not streamed.
  std::string complete(const std::string& text, const std::string& finish_reason,
                       const Usage& usage) const {
    Json choice = {{"index", 0}};
    if (endpoint_ == Endpoint::chat) {
      choice["message"] = {{"role", "assistant"}, {"content", text}};
    } else {
      choice["text"] = text;
      choice["logprobs"] = nullptr;
    }
    choice["finish_reason"] = finish_reason;
    Json body = head(endpoint_ == Endpoint::chat ? "chat.completion" : "text_completion");
    body["choices"] = Json::array({std::move(choice)});
    body["usage"] = usage.json();
    return json_text(body);
  }

  // The first event of a streamed chat: the assistant's role (completions have none).
  std::string role_event() const {
    if (endpoint_ != Endpoint::chat) return {};
    return event(chunk({{"role", "assistant"}, {"content", ""}}, nullptr));
  }

  // The event of one produced token's text (it may be empty: part of a character, or held back
  // while it could be the start of a stop text).
  std::string token_event(const std::string& text) const {
    if (endpoint_ == Endpoint::chat) return event(chunk({{"content", text}}, nullptr));
    return event(chunk(text, nullptr));
  }

  // The last events: the text held back to the end with the finish reason and the usage, the
  // usage alone when the request asked for stream_options.include_usage, then [DONE].
  std::string final_events(const std::string& tail, const std::string& finish_reason,
                           const Usage& usage, bool include_usage) const {
    Json last = endpoint_ == Endpoint::chat
                    ? chunk(tail.empty() ? Json::object() : Json{{"content", tail}}, finish_reason)
                    : chunk(tail, finish_reason);
    last["usage"] = usage.json();
    std::string events = event(last);
    if (include_usage) {
      Json usage_chunk = head(chunk_object());
      usage_chunk["choices"] = Json::array();
      usage_chunk["usage"] = usage.json();
      events += event(usage_chunk);
    }
    return events + "data: [DONE]\n\n";
  }

  // An error after the stream began: an event with OpenAI's error body (clients raise it).
  static std::string error_event(const ApiError& error) {
    return cat("data: ", error.body(), "\n\n");
  }

 private:
  static std::string event(const Json& data) { return cat("data: ", json_text(data), "\n\n"); }

  const char* chunk_object() const {
    return endpoint_ == Endpoint::chat ? "chat.completion.chunk" : "text_completion";
  }

  Json head(const char* object) const {
    return {{"id", id_}, {"object", object}, {"created", created_}, {"model", model_}};
  }

  // A streamed chunk: a chat's delta, or a completion's text.
  Json chunk(Json content, Json finish_reason) const {
    Json choice = {{"index", 0}};
    if (endpoint_ == Endpoint::chat) {
      choice["delta"] = std::move(content);
    } else {
      choice["text"] = std::move(content);
      choice["logprobs"] = nullptr;
    }
    choice["finish_reason"] = std::move(finish_reason);
    Json body = head(chunk_object());
    body["choices"] = Json::array({std::move(choice)});
    return body;
  }

  Endpoint endpoint_;
  std::string id_;
  std::int64_t created_;
  std::string model_;
};

inline std::string models_body(const std::string& model, std::int64_t created) {
  return json_text(Json{{"object", "list"},
                        {"data", Json::array({{{"id", model},
                                               {"object", "model"},
                                               {"created", created},
                                               {"owned_by", "recurrent_depth"}}})}});
}

}  // namespace rdepth::serve
