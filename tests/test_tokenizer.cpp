// Tokenizer unit tests that need no oracle: the committed Huginn-format tokenizer (special ids
// 65504..65535, Huginn's pre-tokens, template, skip_special), the streaming decoder's UTF-8
// hold-back, NFC, split behaviours, the regex translation, and bad input with clear errors.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "recurrent_depth/tokenizer/tokenizer.hpp"

using namespace recurrent_depth::tokenizer;
using Catch::Matchers::Contains;
using recurrent_depth::Error;

namespace {

const Tokenizer& huginn() {
  static const Tokenizer tokenizer =
      Tokenizer::load(std::string(RECURRENT_DEPTH_TOKENIZER_TEST_DIR) + "/huginn_tokenizer.json");
  return tokenizer;
}

// A tiny byte-level tokenizer.json: bytes as ids 0..255, merges "a b" -> 256, "ab c" -> 257.
nlohmann::json tiny_config() {
  nlohmann::json vocab = nlohmann::json::object();
  const auto& alphabet = byte_level_alphabet();
  for (int b = 0; b < 256; ++b) {
    std::string symbol;
    append_utf8(symbol, alphabet[static_cast<std::size_t>(b)]);
    vocab[symbol] = b;
  }
  vocab["ab"] = 256;
  vocab["abc"] = 257;
  return {
      {"added_tokens",
       nlohmann::json::array({{{"id", 258}, {"content", "<eos>"}, {"special", true}}})},
      {"normalizer", nullptr},
      {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}},
      {"post_processor", nullptr},
      {"decoder", {{"type", "ByteLevel"}}},
      {"model",
       {{"type", "BPE"},
        {"vocab", vocab},
        {"merges", nlohmann::json::array({"a b", {"ab", "c"}})}}},
  };
}

std::string load_error(const nlohmann::json& config) {
  try {
    Tokenizer::from_json_text(config.dump(), "test.json");
  } catch (const Error& error) {
    return error.what();
  }
  return "no error";
}

std::vector<std::string> split_with(const nlohmann::json& pre_tokenizer, std::string_view text) {
  return PreTokenizer::create(pre_tokenizer, "test").split(text);
}

}  // namespace

TEST_CASE("tokenizer: Huginn-format tokenizer.json", "[tokenizer]") {
  const Tokenizer& tokenizer = huginn();
  CHECK(tokenizer.vocab_size() == 65536);
  CHECK(tokenizer.token_to_id("<|begin_text|>") == 65504);
  CHECK(tokenizer.token_to_id("<|end_turn|>") == 65508);
  CHECK(tokenizer.token_to_id("<|pad|>") == 65509);
  CHECK(tokenizer.id_to_token(65535) == "<|reserved_25|>");
  CHECK(tokenizer.is_special(65504));
  CHECK(tokenizer.encode(" 3").size() == 1);
  CHECK(tokenizer.encode(" egg").size() == 1);

  const auto ids = tokenizer.encode("Hello<|end_turn|> world");
  CHECK(std::count(ids.begin(), ids.end(), 65508) == 1);
  CHECK(tokenizer.decode(ids) == "Hello<|end_turn|> world");
  CHECK(tokenizer.decode(ids, /*skip_special=*/true) == "Hello world");
  const auto with_template = tokenizer.encode("Hello", true);
  REQUIRE(with_template.size() == tokenizer.encode("Hello").size() + 1);
  CHECK(with_template.front() == 65504);
}

TEST_CASE("tokenizer: ids out of range and vocabulary gaps", "[tokenizer]") {
  const Tokenizer& tokenizer = huginn();
  CHECK_THROWS_WITH(tokenizer.id_to_token(65536), Contains("out of range"));
  CHECK_THROWS_WITH(tokenizer.id_to_token(-1), Contains("out of range"));
  CHECK_THROWS_WITH(tokenizer.id_to_token(60000), Contains("has no token"));
  const std::vector<int32_t> bad{72, 70000};
  CHECK_THROWS_WITH(tokenizer.decode(bad), Contains("70000"));
  CHECK_FALSE(tokenizer.token_to_id("no such token").has_value());
  CHECK_THROWS_WITH(tokenizer.encode("\xFF"), Contains("UTF-8"));
}

TEST_CASE("tokenizer: streaming decoder holds back partial UTF-8", "[tokenizer]") {
  const Tokenizer& tokenizer = huginn();  // ids 0..255 are the bytes themselves
  StreamingDecoder stream(tokenizer);
  CHECK(stream.push(0xF0).empty());
  CHECK(stream.push(0x9F).empty());
  CHECK(stream.push(0x98).empty());
  CHECK(stream.has_pending());
  CHECK(stream.push(0x80) == "\xF0\x9F\x98\x80");
  CHECK(stream.push(0xC3).empty());
  CHECK(stream.push(65508) ==
        "\xEF\xBF\xBD<|end_turn|>");           // an added token ends the partial sequence
  CHECK(stream.push(0xFF) == "\xEF\xBF\xBD");  // never valid: replaced at once
  CHECK(stream.push(0xE2).empty());
  CHECK(stream.push('a') ==
        "\xEF\xBF\xBD"
        "a");
  CHECK(stream.push(0xE2).empty());
  CHECK(stream.finish() == "\xEF\xBF\xBD");

  const std::string text = "naïve 😀 日本語 👨‍👩‍👧 done";
  const auto ids = tokenizer.encode(text);
  StreamingDecoder again(tokenizer);
  std::string streamed;
  for (const int32_t id : ids) {
    const std::string piece = again.push(id);
    CHECK(is_valid_utf8(piece));
    streamed += piece;
  }
  CHECK(streamed + again.finish() == tokenizer.decode(ids));
}

TEST_CASE("tokenizer: lossy UTF-8 and complete prefixes", "[tokenizer]") {
  CHECK(utf8_lossy("a\xF0\x9F"
                   "b") ==
        "a\xEF\xBF\xBD"
        "b");  // truncated sequence: one U+FFFD
  CHECK(utf8_lossy("\xED\xA0\x80") ==
        "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // surrogates are invalid
  CHECK(complete_utf8_prefix("ab\xE6\x97") == 2);
  CHECK(complete_utf8_prefix("ab\xE6\x97\xA5") == 5);
  CHECK(complete_utf8_prefix("ab\xFF") == 3);
}

TEST_CASE("tokenizer: NFC", "[tokenizer]") {
  CHECK(nfc("e\xCC\x81") == "\xC3\xA9");                  // e + acute -> é
  CHECK(nfc("a\xCC\x81\xCC\xA8") == "\xC4\x85\xCC\x81");  // reordered: a + ogonek -> ą, then acute
  CHECK(nfc("\xE1\x84\x80\xE1\x85\xA1\xE1\x86\xA8") == "\xEA\xB0\x81");  // Hangul jamo -> 각
  CHECK(nfc("\xE0\xA5\x98") == "\xE0\xA4\x95\xE0\xA4\xBC");  // composition exclusion U+0958
  CHECK(nfc("\xE2\x84\xAB") == "\xC3\x85");                  // Angstrom sign -> Å
  CHECK(nfc("plain ascii") == "plain ascii");
}

TEST_CASE("tokenizer: split behaviours", "[tokenizer]") {
  const auto split = [](const char* behavior, bool regex) {
    nlohmann::json pattern =
        regex ? nlohmann::json{{"Regex", "-"}} : nlohmann::json{{"String", "-"}};
    return split_with(
        {{"type", "Split"}, {"pattern", pattern}, {"behavior", behavior}, {"invert", false}},
        "the-final--countdown");
  };
  using List = std::vector<std::string>;
  CHECK(split("Removed", true) == List{"the", "final", "countdown"});
  // The JS oracle wraps String patterns in a group, so its split() keeps them even when Removed.
  CHECK(split("Removed", false) == List{"the", "-", "final", "-", "-", "countdown"});
  CHECK(split("Isolated", true) == List{"the", "-", "final", "-", "-", "countdown"});
  CHECK(split("MergedWithPrevious", true) == List{"the-", "final-", "-", "countdown"});
  CHECK(split("MergedWithNext", true) == List{"the", "-final", "-", "-countdown"});
  CHECK(split("Contiguous", true) == List{"the", "-", "final", "--", "countdown"});
  CHECK(split_with({{"type", "Split"},
                    {"pattern", {{"Regex", "\\w+"}}},
                    {"behavior", "Removed"},
                    {"invert", true}},
                   "hi, there") == List{"hi", "there"});
  CHECK(split_with({{"type", "Digits"}, {"individual_digits", true}}, "ab12c") ==
        List{"ab", "1", "2", "c"});
  CHECK(split_with({{"type", "Digits"}, {"individual_digits", false}}, "ab12c") ==
        List{"ab", "12", "c"});
}

TEST_CASE("tokenizer: regex translation follows the JS oracle", "[tokenizer]") {
  Regex::Match match;
  const Regex folded(translate_pattern("(?i:'s|'t)"), "test");
  CHECK(folded.search("it'S", 0, match));
  CHECK_FALSE(
      folded.search("it'\xC5\xBF", 0, match));  // ſ folds to s in Unicode, not in ASCII folding
  const Regex repeated(translate_pattern("a{2}+"), "test");  // Oniguruma: (?:a{2})+, not possessive
  REQUIRE(repeated.search("aaaa", 0, match));
  CHECK(match.end - match.begin == 4);
  const Regex space(translate_pattern("\\s+"), "test");
  REQUIRE(
      space.search("a\xC2\x85"
                   "b",
                   0, match));  // U+0085 is White_Space
  CHECK(match.begin == 1);
}

TEST_CASE("tokenizer: tiny tokenizer merges, both merge formats", "[tokenizer]") {
  const Tokenizer tokenizer = Tokenizer::from_json_text(tiny_config().dump());
  CHECK(tokenizer.encode("abc") == std::vector<int32_t>{257});
  CHECK(tokenizer.encode("abab<eos>") == std::vector<int32_t>{256, 256, 258});
  CHECK(tokenizer.decode(std::vector<int32_t>{257, 258}) == "abc<eos>");
  CHECK(tokenizer.decode(std::vector<int32_t>{257, 258}, true) == "abc");
}

TEST_CASE("tokenizer: a merge at the first symbol of a piece", "[tokenizer]") {
  // "```" merges its first two symbols; the merge loop then looked at the left neighbour of the
  // first symbol, reading before the symbol array (found by tests/fuzz/fuzz_tokenizer; the
  // sanitizer build reports the old read).
  const std::vector<int32_t> ids = huginn().encode("```");
  CHECK(huginn().decode(ids) == "```");
  CHECK(ids.size() < 3);
}

TEST_CASE("tokenizer: bad tokenizer.json gives clear errors", "[tokenizer]") {
  CHECK_THROWS_WITH(Tokenizer::from_json_text("{\"model\": ", "broken.json"),
                    Contains("broken.json") && Contains("malformed JSON"));
  CHECK_THROWS_WITH(Tokenizer::load("/nonexistent/tokenizer.json"), Contains("cannot open"));
  // A number past a double is nlohmann's out_of_range, not a parse_error (tests/fuzz found it).
  CHECK_THROWS_WITH(Tokenizer::from_json_text("{\"model\": 1e400}", "big.json"),
                    Contains("big.json") && Contains("malformed JSON"));

  auto config = tiny_config();
  config["pre_tokenizer"] = {{"type", "Whitespace"}};
  CHECK_THAT(load_error(config), Contains("pre_tokenizer") && Contains("Whitespace"));

  config = tiny_config();
  config["pre_tokenizer"] = {
      {"type", "Split"}, {"pattern", {{"Regex", "(unclosed"}}}, {"behavior", "Isolated"}};
  CHECK_THAT(load_error(config),
             Contains("pre_tokenizer.pattern.Regex") && Contains("invalid regex"));

  config = tiny_config();
  config["pre_tokenizer"] = {
      {"type", "Split"}, {"pattern", {{"Regex", "x"}}}, {"behavior", "Sideways"}};
  CHECK_THAT(load_error(config), Contains("behavior") && Contains("Sideways"));

  config = tiny_config();
  config["normalizer"] = {{"type", "NFKD"}};
  CHECK_THAT(load_error(config), Contains("normalizer") && Contains("NFKD"));

  config = tiny_config();
  config["model"]["merges"] = nlohmann::json::array({"nospace"});
  CHECK_THAT(load_error(config), Contains("model.merges[0]"));

  config = tiny_config();
  config["model"]["vocab"]["a"] = "one";
  CHECK_THAT(load_error(config), Contains("model.vocab[\"a\"]"));

  config = tiny_config();
  config.erase("model");
  CHECK_THAT(load_error(config), Contains("\"model\""));

  config = tiny_config();
  config["decoder"] = {{"type", "WordPiece"}};
  CHECK_THAT(load_error(config), Contains("decoder") && Contains("WordPiece"));

  config = tiny_config();
  config["added_tokens"][0].erase("id");
  CHECK_THAT(load_error(config), Contains("added_tokens[0]") && Contains("\"id\""));

  // Wrong JSON types of the model's optional fields are Errors naming the field, never nlohmann's
  // type_error (tests/fuzz found them).
  for (const auto& [field, value] : std::vector<std::pair<std::string, nlohmann::json>>{
           {"type", nullptr},
           {"type", 7},
           {"ignore_merges", "yes"},
           {"byte_fallback", nlohmann::json::array()},
           {"unk_token", nlohmann::json::object()}}) {
    config = tiny_config();
    config["model"][field] = value;
    if (field == "type" && value.is_null()) {
      CHECK_NOTHROW(Tokenizer::from_json_text(config.dump(), "test.json"));  // null: BPE
      continue;
    }
    CAPTURE(field, value.dump());
    CHECK_THAT(load_error(config), Contains("test.json: model." + field) && Contains("expected"));
  }
}

TEST_CASE("tokenizer: a pattern past PCRE2's match limit fails naming its field", "[tokenizer]") {
  auto config = tiny_config();
  config["pre_tokenizer"] = {
      {"type", "Split"}, {"pattern", {{"Regex", "(a+)+$"}}}, {"behavior", "Isolated"}};
  const Tokenizer tokenizer = Tokenizer::from_json_text(config.dump(), "backtracks.json");
  CHECK_NOTHROW(tokenizer.encode("aaaab", false));  // a short text matches within the limit
  const std::string text = std::string(40, 'a') + "b";
  CHECK_THROWS_WITH(tokenizer.encode(text, false),
                    Contains("backtracks.json: pre_tokenizer.pattern.Regex") &&
                        Contains("41 bytes") && Contains("match limit"));
}
