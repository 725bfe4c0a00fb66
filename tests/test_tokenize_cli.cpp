// rdepth tokenize driven as a process against the tokenizer library with the Huginn test
// tokenizer: --text, --text-file and --jsonl encoding, special tokens in the text, --add-special,
// --json, --decode (ids back to text), and bad input -> exit 1 naming the flag, file or line.
#include <catch2/catch.hpp>

#ifdef RECURRENT_DEPTH_RDEPTH

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "cli_support.hpp"
#include "test_chat_model.hpp"

using namespace recurrent_depth;
using namespace recurrent_depth::testing::cli;
using recurrent_depth::testing::chat::huginn_tokenizer;
using recurrent_depth::testing::chat::huginn_tokenizer_path;
using Json = nlohmann::json;

namespace {

const std::vector<std::string> kTexts = {
    "Hello world",
    "<|begin_header|>user<|end_header|>\n\nWhat is 2+2?<|end_turn|>",
    "Grüße, 東京 🚀 and tabs\tand  spaces",
    "",
    "12345 + 678 = 13023",
};

std::string tokenize(const std::string& arguments) {
  return "tokenize --tokenizer " + quote(huginn_tokenizer_path().string()) + " " + arguments;
}

fs::path write_file(const std::string& name, const std::string& content) {
  const fs::path path = scratch(name);
  std::ofstream(path, std::ios::binary) << content;
  return path;
}

std::string spaced(const std::vector<std::int32_t>& ids) {
  std::string s;
  for (std::size_t i = 0; i < ids.size(); ++i) {
    if (i) s += ' ';
    s += std::to_string(ids[i]);
  }
  return s;
}

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> result;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) result.push_back(line);
  return result;
}

}  // namespace

TEST_CASE("rdepth tokenize --text and --text-file print the library's ids", "[cli][tokenize]") {
  const auto& t = huginn_tokenizer();
  for (std::size_t i = 0; i < kTexts.size(); ++i) {
    const std::string& text = kTexts[i];
    DYNAMIC_SECTION("text " << i) {
      const Run run = rdepth(tokenize("--text " + quote(text)));
      if (text.empty()) {  // an empty flag value is refused; the file form takes it
        CHECK(run.code == 1);
      } else {
        REQUIRE_SUCCESS(run);
        CHECK(run.out == spaced(t.encode(text, false)) + "\n");
      }
      const fs::path file = write_file("text" + std::to_string(i), text);
      const Run from_file = rdepth(tokenize("--text-file " + quote(file.string())));
      REQUIRE_SUCCESS(from_file);
      CHECK(from_file.out == spaced(t.encode(text, false)) + "\n");
      const Run special = rdepth(tokenize("--add-special --text-file " + quote(file.string())));
      REQUIRE_SUCCESS(special);
      CHECK(special.out == spaced(t.encode(text, true)) + "\n");
    }
  }
  // Special tokens written in the text are recognised; BOS only with --add-special.
  const Run run = rdepth(tokenize("--text '<|end_turn|>x'"));
  REQUIRE_SUCCESS(run);
  CHECK(run.out.rfind("65508 ", 0) == 0);
  const Run bos = rdepth(tokenize("--add-special --text x"));
  REQUIRE_SUCCESS(bos);
  CHECK(bos.out.rfind("65504 ", 0) == 0);
}

TEST_CASE("rdepth tokenize --json and --decode", "[cli][tokenize]") {
  const auto& t = huginn_tokenizer();
  const std::string text = kTexts[1];
  const std::vector<std::int32_t> ids = t.encode(text, false);
  const Run json = rdepth(tokenize("--json --text " + quote(text)));
  REQUIRE_SUCCESS(json);
  const Json out = Json::parse(json.out);
  CHECK(out["ids"].get<std::vector<std::int32_t>>() == ids);
  REQUIRE(out["tokens"].size() == ids.size());
  for (std::size_t i = 0; i < ids.size(); ++i) CHECK(out["tokens"][i] == t.id_to_token(ids[i]));

  // Ids back to text: commas, spaces or a JSON array; special tokens written out.
  for (const std::string& form : {spaced(ids), join(ids, ids.size()), Json(ids).dump()}) {
    const Run decoded = rdepth(tokenize("--decode --text " + quote(form)));
    REQUIRE_SUCCESS(decoded);
    CHECK(decoded.out == text + "\n");
  }
  const Run decoded_json = rdepth(tokenize("--decode --json --text " + quote(spaced(ids))));
  REQUIRE_SUCCESS(decoded_json);
  CHECK(Json::parse(decoded_json.out)["text"] == text);
  const fs::path file = write_file("ids.txt", spaced(ids) + "\n");
  const Run from_file = rdepth(tokenize("--decode --text-file " + quote(file.string())));
  REQUIRE_SUCCESS(from_file);
  CHECK(from_file.out == text + "\n");
}

TEST_CASE("rdepth tokenize --jsonl: one line in, one line out, both ways", "[cli][tokenize]") {
  const auto& t = huginn_tokenizer();
  std::string input, ids_input;
  for (const std::string& text : kTexts) {
    input += Json(text).dump() + "\n";
    ids_input += Json(t.encode(text, false)).dump() + "\n";
  }
  const fs::path file = write_file("texts.jsonl", input);
  const Run run = rdepth(tokenize("--jsonl " + quote(file.string())));
  REQUIRE_SUCCESS(run);
  const auto out = lines(run.out);
  REQUIRE(out.size() == kTexts.size());
  for (std::size_t i = 0; i < kTexts.size(); ++i)
    CHECK(Json::parse(out[i]).get<std::vector<std::int32_t>>() == t.encode(kTexts[i], false));
  CHECK(run.out == ids_input);

  const Run special = rdepth(tokenize("--add-special --jsonl " + quote(file.string())));
  REQUIRE_SUCCESS(special);
  CHECK(Json::parse(lines(special.out)[0]).get<std::vector<std::int32_t>>() ==
        t.encode(kTexts[0], true));

  const fs::path ids_file = write_file("ids.jsonl", ids_input);
  const Run decoded = rdepth(tokenize("--decode --jsonl " + quote(ids_file.string())));
  REQUIRE_SUCCESS(decoded);
  const auto texts = lines(decoded.out);
  REQUIRE(texts.size() == kTexts.size());
  for (std::size_t i = 0; i < kTexts.size(); ++i) CHECK(Json::parse(texts[i]) == kTexts[i]);
}

TEST_CASE("rdepth tokenize: bad input -> exit 1 naming the flag, file or line", "[cli][tokenize]") {
  const fs::path jsonl = write_file("bad.jsonl", "\"fine\"\n[1, 2]\n");
  const fs::path broken = write_file("broken.jsonl", "\"fine\"\n\"open\n");
  const fs::path ids = write_file("bad_ids.jsonl", "[1, 2]\n[1, \"x\"]\n");
  const fs::path bad_tokenizer = write_file("tokenizer_bad.json", "{\"model\": ");
  const std::pair<std::string, std::string> cases[] = {
      {"tokenize --text hi", "--tokenizer is required"},
      {tokenize(""), "exactly one of --text"},
      {tokenize("--text a --jsonl b"), "exactly one of --text"},
      {tokenize("--text-file /nonexistent/file"), "/nonexistent/file"},
      {tokenize("--jsonl /nonexistent/file"), "/nonexistent/file"},
      {tokenize("--jsonl " + quote(jsonl.string())), "bad.jsonl:2: expected a JSON string"},
      {tokenize("--jsonl " + quote(broken.string())), "broken.jsonl:2: malformed JSON"},
      {tokenize("--decode --jsonl " + quote(ids.string())), "bad_ids.jsonl:2: expected token ids"},
      {tokenize("--decode --jsonl " + quote(jsonl.string())), "bad.jsonl:1: expected a JSON array"},
      {tokenize("--decode --text 1,x,3"), "'x' is not a token id"},
      {tokenize("--decode --text 99999999"), "out of range"},
      {tokenize("--decode --add-special --text 1"), "--add-special"},
      {tokenize("--text \"$(printf '\\377')\""), "UTF-8"},
      {tokenize("--text hi --bogus"), "--bogus"},
      {"tokenize --tokenizer /nonexistent/tokenizer.json --text hi", "/nonexistent/tokenizer.json"},
      {"tokenize --tokenizer " + quote(bad_tokenizer.string()) + " --text hi", "malformed JSON"},
  };
  for (const auto& [arguments, needle] : cases) {
    const Run run = rdepth(arguments);
    INFO("rdepth " << arguments << "\nstderr: " << run.err);
    CHECK(run.code == 1);
    CHECK(run.err.rfind("rdepth: ", 0) == 0);
    CHECK(run.err.find(needle) != std::string::npos);
  }
  const Run help = rdepth("tokenize --help");
  CHECK(help.code == 0);
  CHECK(help.out.find("usage: rdepth tokenize") != std::string::npos);
}

#endif  // RECURRENT_DEPTH_RDEPTH
