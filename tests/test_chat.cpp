// The chat layer of the library (generate/chat.hpp): Huginn's chat template as strings and ids
// (the expected strings are what the model's Jinja template renders), generation_config.json
// reading and its errors, TextStream, and ChatSession's incremental turns against a full prefill.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "test_chat_model.hpp"

using namespace recurrent_depth;
using namespace recurrent_depth::testing::chat;

namespace {

const std::vector<ChatMessage> kConversation = {{"system", "You are a helpful assistant."},
                                                {"user", "  What is 2+2?\n"},
                                                {"assistant", "4"},
                                                {"user", "And 3+3?"}};

std::vector<std::int32_t> ids(const std::string& text) {
  return huginn_tokenizer().encode(text, false);
}

std::vector<std::int32_t> join(std::vector<std::vector<std::int32_t>> parts) {
  std::vector<std::int32_t> all;
  for (const auto& p : parts) all.insert(all.end(), p.begin(), p.end());
  return all;
}

std::string error_of(const std::string& json) {
  try {
    GenerationConfig::parse(json, "dir/generation_config.json");
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

}  // namespace

TEST_CASE("chat template: Huginn's strings", "[chat]") {
  CHECK(apply_chat_template(kConversation, true) ==
        "<|begin_text|><|begin_header|>system<|end_header|>\n\nYou are a helpful assistant."
        "<|end_turn|><|begin_header|>user<|end_header|>\n\nWhat is 2+2?<|end_turn|>"
        "<|begin_header|>Huginn<|end_header|>\n\n4<|end_turn|><|begin_header|>user<|end_header|>"
        "\n\nAnd 3+3?<|end_turn|><|begin_header|>Huginn<|end_header|>\n\n");
  CHECK(apply_chat_template(std::span(kConversation).first(2), false) ==
        "<|begin_text|><|begin_header|>system<|end_header|>\n\nYou are a helpful assistant."
        "<|end_turn|><|begin_header|>user<|end_header|>\n\nWhat is 2+2?<|end_turn|><|end_text|>");
  CHECK(apply_chat_template({}, true) == "<|begin_header|>Huginn<|end_header|>\n\n");
  // No default system message: a conversation may open with the user.
  const std::vector<ChatMessage> user_only = {{"user", "Hi"}};
  CHECK(apply_chat_template(user_only, true) ==
        "<|begin_text|><|begin_header|>user<|end_header|>\n\nHi<|end_turn|>"
        "<|begin_header|>Huginn<|end_header|>\n\n");
  CHECK(chat_message_text({"Huginn", " x "}) ==
        "<|begin_header|>Huginn<|end_header|>\n\nx<|end_turn|>");
  CHECK(chat_message_text({"tool", "\t\n"}) ==
        "<|begin_header|>tool<|end_header|>\n\n<|end_turn|>");
  CHECK(trim_whitespace(" \r\n a b \v") == "a b");
}

TEST_CASE("chat template: Huginn's ids", "[chat]") {
  const tokenizer::Tokenizer& t = huginn_tokenizer();
  for (const auto& [text, id] : {std::pair{"<|begin_text|>", 65504},
                                 {"<|end_text|>", 65505},
                                 {"<|begin_header|>", 65506},
                                 {"<|end_header|>", 65507},
                                 {"<|end_turn|>", 65508},
                                 {"<|pad|>", 65509}})
    CHECK(t.token_to_id(text) == id);
  const std::vector<std::int32_t> expected = join({{65504, 65506},
                                                   ids("system"),
                                                   {65507},
                                                   ids("\n\nYou are a helpful assistant."),
                                                   {65508},
                                                   {65506},
                                                   ids("user"),
                                                   {65507},
                                                   ids("\n\nWhat is 2+2?"),
                                                   {65508},
                                                   {65506},
                                                   ids("Huginn"),
                                                   {65507},
                                                   ids("\n\n4"),
                                                   {65508},
                                                   {65506},
                                                   ids("user"),
                                                   {65507},
                                                   ids("\n\nAnd 3+3?"),
                                                   {65508},
                                                   {65506},
                                                   ids("Huginn"),
                                                   {65507},
                                                   ids("\n\n")});
  CHECK(t.encode(apply_chat_template(kConversation, true), false) == expected);
  // Every turn starts at a special token, so a conversation's ids are its turns' ids in a row.
  std::vector<std::int32_t> turns = {65504};
  for (const ChatMessage& m : kConversation) {
    const auto part = ids(chat_message_text(m));
    turns.insert(turns.end(), part.begin(), part.end());
  }
  const auto prompt = ids(chat_generation_prompt());
  turns.insert(turns.end(), prompt.begin(), prompt.end());
  CHECK(turns == expected);
}

TEST_CASE("generation_config.json: defaults and fields", "[chat]") {
  const GenerationConfig none = GenerationConfig::load("/nonexistent/generation_config.json");
  CHECK(none.stop_ids == std::vector<std::int32_t>{65505, 65508});
  CHECK(none.sampling.greedy());
  CHECK(!none.max_new_tokens);

  // Sampling only with do_sample, as in transformers; its defaults then apply.
  const auto greedy = GenerationConfig::parse(
      R"({"eos_token_id": 65505, "temperature": 0.7, "top_p": 0.9, "max_new_tokens": 12,
          "repetition_penalty": 1.1, "bos_token_id": 65504, "unknown": [1]})",
      "g");
  CHECK(greedy.stop_ids == std::vector<std::int32_t>{65505});
  CHECK(greedy.sampling.greedy());
  CHECK(greedy.sampling.repetition_penalty == Approx(1.1f));
  CHECK(greedy.max_new_tokens == 12);

  const auto sampled = GenerationConfig::parse(
      R"({"do_sample": true, "temperature": 0.7, "min_p": 0.05, "top_p": null,
          "eos_token_id": [65505, 65508, 7]})",
      "g");
  CHECK(sampled.stop_ids == std::vector<std::int32_t>{65505, 65508, 7});
  CHECK(sampled.sampling.temperature == Approx(0.7f));
  CHECK(sampled.sampling.top_k == 50);
  CHECK(sampled.sampling.top_p == 1.0f);
  CHECK(sampled.sampling.min_p == Approx(0.05f));

  const auto defaults = GenerationConfig::parse(R"({"do_sample": true, "top_k": 0})", "g");
  CHECK(defaults.sampling.temperature == 1.0f);
  CHECK(defaults.sampling.top_k == 0);
  CHECK(defaults.stop_ids == std::vector<std::int32_t>{65505, 65508});

  const fs::path file = chat_model_dir() / "generation_config.json";
  const GenerationConfig loaded = GenerationConfig::load(file);
  CHECK(loaded.max_new_tokens == 6);
}

TEST_CASE("generation_config.json: bad input names the file and the field", "[chat]") {
  const std::pair<const char*, const char*> cases[] = {
      {"{\"eos_token_id\": 65505", "malformed JSON"},
      {"[1, 2]", "JSON object"},
      {R"({"eos_token_id": "x"})", "eos_token_id"},
      {R"({"eos_token_id": [1, -2]})", "eos_token_id"},
      {R"({"do_sample": "yes"})", "do_sample"},
      {R"({"temperature": -1})", "temperature"},
      {R"({"top_p": 0})", "top_p"},
      {R"({"top_k": 2.5})", "top_k"},
      {R"({"min_p": 2})", "min_p"},
      {R"({"repetition_penalty": 0})", "repetition_penalty"},
      {R"({"max_new_tokens": 0})", "max_new_tokens"},
      // Past a float's range (found by tests/fuzz/fuzz_config): refused here, not by the sampler.
      {R"({"do_sample": true, "temperature": 1e39})", "temperature"},
      {R"({"do_sample": true, "top_p": 1e-50})", "top_p"},
      {R"({"repetition_penalty": 1e300})", "repetition_penalty"},
      {R"({"temperature": 1e400})", "malformed JSON"},  // past a double: nlohmann's out_of_range
  };
  for (const auto& [json, needle] : cases) {
    const std::string message = error_of(json);
    INFO(json << " -> " << message);
    CHECK(message.find("dir/generation_config.json") != std::string::npos);
    CHECK(message.find(needle) != std::string::npos);
  }
}

TEST_CASE("TextStream shows undecodable ids as U+FFFD", "[chat]") {
  const tokenizer::Tokenizer& t = huginn_tokenizer();
  const std::vector<std::int32_t> hello = t.encode("Hello world", false);
  TextStream stream(t, true);
  std::string text;
  for (const std::int32_t id : hello) text += stream.push(id);
  text += stream.push(40000);  // a gap in the test tokenizer's vocabulary
  text += stream.push(70000);  // beyond it
  text += stream.push(65508);  // special: skipped
  text += stream.finish();
  CHECK(text == "Hello world\xEF\xBF\xBD\xEF\xBF\xBD");
}

TEST_CASE("ChatSession prefills only each new turn", "[chat]") {
  const ChatModel& model = chat_model();
  const tokenizer::Tokenizer& t = huginn_tokenizer();
  ChatOptions options = default_chat_options();
  options.system = "Be brief.";
  ChatSession chat(model, t, options);

  std::string streamed;
  const ChatTurn first = chat.send("Hello there", [&](std::string_view s) { streamed += s; });
  const std::vector<ChatMessage> opening = {{"system", "Be brief."}, {"user", "Hello there"}};
  CHECK(first.prompt == t.encode(apply_chat_template(opening, true), false));
  CHECK(first.cached_before == 0);
  REQUIRE(first.generation.tokens.size() == 6);  // max_new_tokens of generation_config.json
  CHECK(first.cached_after == first.prompt.size() + 5);
  CHECK(streamed == first.text);
  CHECK(first.text == t.decode(first.generation.ids(), true));
  CHECK(!first.text.empty());
  CHECK(!first.stopped);

  const ChatTurn second = chat.send("How are you?");
  // Not stopped: the last reply token goes first, then <|end_turn|> closes the reply.
  const auto expected =
      join({{first.generation.ids().back(), 65508},
            ids(chat_message_text({"user", "How are you?"}) + chat_generation_prompt())});
  CHECK(second.prompt == expected);
  CHECK(second.cached_before == first.cached_after);
  CHECK(second.cached_after ==
        second.cached_before + second.prompt.size() + second.generation.tokens.size() - 1);

  // The same reply as a fresh session that prefills the whole conversation at once.
  std::vector<std::int32_t> reply = first.generation.ids();
  reply.pop_back();  // the last one is fed with the second turn
  const std::vector<std::int32_t> whole = join({first.prompt, reply, expected});
  CHECK(std::vector<std::int32_t>(chat.history().begin(),
                                  chat.history().begin() + std::ptrdiff_t(whole.size())) == whole);
  Session fresh = model.new_session(0);
  GenerationOptions g = options.generation;
  g.seed = 1;  // the second turn's sampler seed (seed + 1)
  g.stop_ids.push_back(65508);
  const Generation reference = generate(model, fresh, whole, g);
  CHECK(reference.ids() == second.generation.ids());

  // After /reset the conversation starts over and gives the first reply again.
  chat.reset();
  CHECK(chat.cached_tokens() == 0);
  const ChatTurn again = chat.send("Hello there");
  CHECK(again.prompt == first.prompt);
  CHECK(again.generation.ids() == first.generation.ids());
}

TEST_CASE("ChatSession: a reply's stop id becomes <|end_turn|>", "[chat]") {
  const ChatModel& model = chat_model();
  ChatOptions options = default_chat_options();
  ChatSession probe(model, huginn_tokenizer(), options);
  const std::int32_t first_token = probe.send("Hi").generation.ids().front();

  options.generation.stop_ids = {first_token};  // <|end_turn|> is added as a stop as well
  ChatSession chat(model, huginn_tokenizer(), options);
  CHECK(std::find(chat.generation_options().stop_ids.begin(),
                  chat.generation_options().stop_ids.end(),
                  65508) != chat.generation_options().stop_ids.end());
  const ChatTurn turn = chat.send("Hi");
  REQUIRE(turn.generation.ids() == std::vector<std::int32_t>{first_token});
  CHECK(turn.stopped);
  CHECK(turn.cached_after == turn.prompt.size());
  CHECK(chat.history().back() == 65508);
  const ChatTurn next = chat.send("Again");
  CHECK(next.prompt.front() == 65508);
  CHECK(next.prompt[1] == 65506);
  CHECK(next.cached_before == turn.cached_after);
}

TEST_CASE("ChatSession refuses a turn beyond the context and keeps the conversation", "[chat]") {
  const ChatModel& model = chat_model();
  ChatSession chat(model, huginn_tokenizer(), default_chat_options());
  const ChatTurn first = chat.send("Hello");
  std::string long_message;
  for (int i = 0; i < 400; ++i) long_message += " word";
  try {
    chat.send(long_message);
    FAIL("no error for a turn beyond the context");
  } catch (const Error& e) {
    CHECK(std::string(e.what()).find("block_size") != std::string::npos);
  }
  CHECK(chat.cached_tokens() == first.cached_after);
  const ChatTurn next = chat.send("Hello");
  CHECK(next.cached_before == first.cached_after);

  ChatOptions none = default_chat_options();
  none.generation.max_new_tokens = 0;
  ChatSession empty(model, huginn_tokenizer(), none);
  CHECK_THROWS_WITH(empty.send("Hi"), Catch::Contains("max_new_tokens"));
}
