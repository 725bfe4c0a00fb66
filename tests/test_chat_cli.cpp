// rdepth generate --prompt TEXT and rdepth chat through a pipe, against the library with the chat
// test model (test_chat_model.hpp): the streamed text, the JSON fields, the chat commands, the
// statistics line (each turn prefills only its new tokens) and bad input.
#include <catch2/catch.hpp>

#ifdef RECURRENT_DEPTH_RDEPTH

#include <regex>
#include <string>
#include <vector>

#include "cli_support.hpp"
#include "test_chat_model.hpp"

using namespace recurrent_depth;
using namespace recurrent_depth::testing::cli;
using namespace recurrent_depth::testing::chat;

namespace {

std::string chat_model_flag() {
  return " --model " + quote(chat_model_dir().string());
}

// Runs rdepth chat with `input` on stdin.
Run chat_with(const std::string& input, const std::string& flags = "") {
  static int counter = 0;
  const fs::path in = scratch("chat_input" + std::to_string(counter++));
  std::ofstream(in, std::ios::binary) << input;
  return rdepth("chat" + chat_model_flag() + " --threads 1" + flags + " < " + quote(in.string()));
}

// The numbers after `label` in each statistics line of stderr.
std::vector<std::size_t> stat(const std::string& err, const std::string& label) {
  std::vector<std::size_t> values;
  const std::regex pattern(label + " ([0-9]+) tokens");
  for (auto it = std::sregex_iterator(err.begin(), err.end(), pattern);
       it != std::sregex_iterator(); ++it)
    values.push_back(std::stoul((*it)[1]));
  return values;
}

}  // namespace

TEST_CASE("rdepth generate --prompt TEXT streams text; --json has text and ids", "[cli][chat]") {
  const tokenizer::Tokenizer& t = huginn_tokenizer();
  const std::vector<std::int32_t> prompt = t.encode("Once upon a time", true);
  REQUIRE(prompt.front() == 65504);
  GenerationOptions options;
  options.max_new_tokens = 5;
  Session session = chat_model().new_session(0);
  const std::vector<std::int32_t> expected = generate(chat_model(), session, prompt, options).ids();
  const std::string text = t.decode(expected);

  const std::string arguments = "generate" + chat_model_flag() +
                                " --prompt 'Once upon a time' --max-new-tokens 5 --threads 1";
  const Run json = rdepth(arguments + " --json");
  REQUIRE_SUCCESS(json);
  const nlohmann::json out = nlohmann::json::parse(json.out);
  CHECK(out["prompt"] == "Once upon a time");
  CHECK(out["prompt_ids"].get<std::vector<std::int32_t>>() == prompt);
  CHECK(out["tokens"].get<std::vector<std::int32_t>>() == expected);
  CHECK(out["text"] == text);

  const Run plain = rdepth(arguments);
  REQUIRE_SUCCESS(plain);
  CHECK(plain.out == text + "\n");
  CHECK(plain.err.find("5 new tokens") != std::string::npos);

  // --prompt-ids still streams ids.
  const Run by_ids = rdepth("generate" + chat_model_flag() + " --prompt-ids " +
                            join(prompt, prompt.size()) + " --max-new-tokens 5 --threads 1");
  REQUIRE_SUCCESS(by_ids);
  std::string listed;
  for (std::size_t i = 0; i < expected.size(); ++i)
    listed += (i ? " " : "") + std::to_string(expected[i]);
  CHECK(by_ids.out == listed + "\n");
}

TEST_CASE("rdepth chat through a pipe: replies, /steps, /reset, /quit", "[cli][chat]") {
  ChatSession chat(chat_model(), huginn_tokenizer(), default_chat_options());
  const ChatTurn first = chat.send("Hello there");
  chat.generation_options().steps = 2;
  const ChatTurn second = chat.send("How are you?");
  chat.reset();
  chat.generation_options().steps = std::nullopt;
  const ChatTurn third = chat.send("Hello there");  // the CLI sets r back with /steps 4

  const Run run = chat_with(
      "Hello there\n/steps 2\nHow are you?\n\n/reset\n/steps 4\nHello there\n/quit\nnot read\n");
  REQUIRE_SUCCESS(run);
  CHECK(run.out == first.text + "\n" + second.text + "\n" + third.text + "\n");
  CHECK(third.text == first.text);
  CHECK(run.err.find("(r = 2 core iterations per token)") != std::string::npos);
  CHECK(run.err.find("(conversation reset)") != std::string::npos);

  // The second turn prefilled only its own tokens; the KV cache kept the first.
  const auto prefilled = stat(run.err, "prefilled");
  const auto cached = stat(run.err, "KV cache");
  REQUIRE(prefilled.size() == 3);
  REQUIRE(cached.size() == 3);
  CHECK(prefilled[0] == first.prompt.size());
  CHECK(prefilled[1] == second.prompt.size());
  CHECK(cached[0] == first.cached_after);
  CHECK(cached[1] == second.cached_after);
  CHECK(cached[1] == cached[0] + prefilled[1] + second.generation.tokens.size() - 1);
  CHECK(prefilled[2] == first.prompt.size());
  CHECK(run.err.find("core iterations/token at r = 2") != std::string::npos);
  CHECK(run.err.find("tokens/s") != std::string::npos);
  CHECK(run.err.find("\x1b[") == std::string::npos);  // no terminal: no dim text
}

TEST_CASE("rdepth chat: end of input quits; --system and flags reach the session", "[cli][chat]") {
  ChatOptions options = default_chat_options();
  options.system = "Answer in French.";
  options.generation.max_new_tokens = 3;
  options.generation.steps = 3;
  ChatSession chat(chat_model(), huginn_tokenizer(), options);
  const ChatTurn turn = chat.send("Bonjour");

  const Run run = chat_with("Bonjour",  // no newline at the end, then end of input
                            " --system 'Answer in French.' --max-new-tokens 3 --steps 3");
  REQUIRE_SUCCESS(run);
  CHECK(run.out == turn.text + "\n");
  CHECK(stat(run.err, "prefilled") == std::vector<std::size_t>{turn.prompt.size()});
  CHECK(run.err.find("3 tokens,") != std::string::npos);

  const Run q4 = chat_with("Bonjour", " --max-new-tokens 2 --steps 2 --weights q4");  // 4-bit
  REQUIRE_SUCCESS(q4);
  CHECK(q4.err.find("2 tokens,") != std::string::npos);
}

TEST_CASE("rdepth chat: bad commands are reported and the chat goes on", "[cli][chat]") {
  const Run run = chat_with("/steps many\n/frobnicate\n/help\nHi\n");
  REQUIRE_SUCCESS(run);
  CHECK(run.err.find("/steps expects a non-negative integer") != std::string::npos);
  CHECK(run.err.find("unknown command /frobnicate") != std::string::npos);
  CHECK(run.err.find("commands: /reset") != std::string::npos);
  CHECK(stat(run.err, "prefilled").size() == 1);

  std::string long_message;
  for (int i = 0; i < 400; ++i) long_message += " word";
  const Run full = chat_with(long_message + "\nHi\n");
  REQUIRE_SUCCESS(full);
  CHECK(full.err.find("block_size") != std::string::npos);
  CHECK(stat(full.err, "prefilled").size() == 1);
}

TEST_CASE("rdepth chat and generate --prompt: bad input -> exit 1 naming the cause",
          "[cli][chat]") {
  const fs::path no_tokenizer = scratch("chat_no_tokenizer");
  const fs::path bad_config = scratch("chat_bad_generation_config");
  for (const fs::path& dir : {no_tokenizer, bad_config}) {
    fs::create_directories(dir);
    for (const char* file : {"config.json", "model.safetensors", "tokenizer.json"})
      fs::copy_file(chat_model_dir() / file, dir / file, fs::copy_options::overwrite_existing);
  }
  fs::remove(no_tokenizer / "tokenizer.json");
  write_text(bad_config / "generation_config.json", "{\"top_p\": 2}");
  const std::string tiny = " --model " + model_dir("tiny_huginn");

  const std::pair<std::string, std::string> cases[] = {
      {"chat --model " + quote(no_tokenizer.string()), "no tokenizer.json"},
      {"chat --model " + quote(bad_config.string()), "generation_config.json: field top_p"},
      {"chat" + tiny, "no tokenizer.json"},
      {"chat --model /nonexistent/model", "/nonexistent/model"},
      {"chat" + chat_model_flag() + " --top-k 5", "--top-k needs --temperature"},
      {"chat" + chat_model_flag() + " --max-new-tokens 0", "--max-new-tokens"},
      {"chat" + chat_model_flag() + " --exit kl", "--exit-threshold"},
      {"chat" + chat_model_flag() + " --cache latest-m5", "--cache"},
      {"chat" + chat_model_flag() + " stray", "stray"},
      {"generate" + chat_model_flag() + " --prompt hi --prompt-ids 1 --max-new-tokens 1",
       "not both"},
      {"generate" + chat_model_flag() + " --max-new-tokens 1", "--prompt TEXT or --prompt-ids"},
      {"generate --model " + quote(no_tokenizer.string()) + " --prompt hi --max-new-tokens 1",
       "no tokenizer.json"},
      {"generate" + tiny + " --prompt hi --max-new-tokens 1", "tokenizer.json"},
  };
  for (const auto& [arguments, needle] : cases) {
    const Run run = rdepth(arguments + " < /dev/null");
    INFO("rdepth " << arguments << "\nstderr: " << run.err);
    CHECK(run.code == 1);
    CHECK(run.err.rfind("rdepth: ", 0) == 0);
    CHECK(run.err.find(needle) != std::string::npos);
  }
  const Run help = rdepth("chat --help");
  CHECK(help.code == 0);
  CHECK(help.out.find("usage: rdepth chat") != std::string::npos);
  CHECK(help.out.find("/reset") != std::string::npos);
}

#endif  // RECURRENT_DEPTH_RDEPTH
