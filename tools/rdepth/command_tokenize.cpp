// rdepth tokenize: text to token ids and back with a tokenizer.json (DESIGN.md section 5). One
// text (--text, --text-file) or one per line of a JSON-lines file (--jsonl); --decode turns ids
// into text instead. Special tokens written in the text are recognised; no BOS/EOS is added
// unless --add-special.
#include <fstream>
#include <iostream>
#include <limits>
#include <sstream>

#include <nlohmann/json.hpp>

#include "common.hpp"
#include "recurrent_depth/tokenizer/tokenizer.hpp"

namespace rdepth {
namespace {

using Json = nlohmann::json;
using rd::tokenizer::Tokenizer;

Arguments tokenize_arguments() {
  return Arguments(
      "tokenize",
      "--tokenizer tokenizer.json (--text T | --text-file F | --jsonl F) [--decode] [--json]\n"
      "                       [--add-special]",
      "Encodes text into token ids. --text T and --text-file F give one text and print its ids,\n"
      "space-separated, on one line (with --json: {\"ids\": [...], \"tokens\": [...]}, tokens "
      "being\n"
      "the vocabulary's strings). --jsonl F reads one JSON string per line and prints, per line,\n"
      "the JSON array of its ids. Special tokens written in the text (e.g. <|end_turn|>) are\n"
      "recognised; --add-special adds what the tokenizer's post-processor adds (Huginn: BOS).\n"
      "\n"
      "With --decode the input is ids instead: --text/--text-file hold integers separated by\n"
      "commas or spaces (or a JSON array), printed back as text (with --json: {\"text\": ...});\n"
      "each --jsonl line is a JSON array of ids and its output line a JSON string. Special\n"
      "tokens are written out.",
      {{"--tokenizer", "FILE", "a Hugging Face tokenizer.json (byte-level BPE)"},
       {"--text", "T", "the text (or, with --decode, the ids)"},
       {"--text-file", "F", "a file holding the text (or, with --decode, the ids)"},
       {"--jsonl", "F", "one JSON string (with --decode: one JSON array of ids) per line"},
       {"--decode", "", "ids to text instead of text to ids"},
       {"--json", "", "print JSON (--jsonl prints JSON lines in any case)"},
       {"--add-special", "", "add the post-processor's special tokens (BOS) when encoding"}});
}

std::string read_file(const std::string& flag, const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file.good()) fail(flag, " ", path, ": cannot open the file");
  std::ostringstream text;
  text << file.rdbuf();
  return text.str();
}

std::string dump(const Json& j) {
  return j.dump(-1, ' ', false, Json::error_handler_t::replace);
}

Json parse_json(const std::string& text, const std::string& where) {
  try {
    return Json::parse(text);
  } catch (const Json::exception& e) {  // parse_error, or out_of_range: a number past double
    fail(where, ": malformed JSON (", e.what(), ")");
  }
}

// Ids from a JSON array of integers.
std::vector<std::int32_t> json_ids(const Json& j, const std::string& where) {
  if (!j.is_array()) fail(where, ": expected a JSON array of token ids, found ", dump(j));
  std::vector<std::int32_t> ids;
  for (const Json& id : j) {
    if (!id.is_number_integer() || id.get<std::int64_t>() < 0 ||
        id.get<std::int64_t>() > std::numeric_limits<std::int32_t>::max()) {
      fail(where, ": expected token ids (integers >= 0), found ", dump(id));
    }
    ids.push_back(id.get<std::int32_t>());
  }
  return ids;
}

// Ids from a JSON array, or from integers separated by commas and/or whitespace.
std::vector<std::int32_t> parse_ids(const std::string& text, const std::string& where) {
  const std::size_t start = text.find_first_not_of(" \t\r\n");
  if (start != std::string::npos && text[start] == '[')
    return json_ids(parse_json(text, where), where);
  std::vector<std::int32_t> ids;
  std::string item;
  std::istringstream words(text);
  std::string word;
  while (words >> word) {
    std::istringstream items(word);
    while (std::getline(items, item, ',')) {
      if (item.empty()) continue;
      std::size_t used = 0;
      long long id = -1;
      try {
        id = std::stoll(item, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used != item.size() || id < 0 || id > std::numeric_limits<std::int32_t>::max()) {
        fail(where, ": '", item, "' is not a token id (expected integers >= 0 like 3,17,5)");
      }
      ids.push_back(static_cast<std::int32_t>(id));
    }
  }
  return ids;
}

// Runs `body`, adding `where` to a tokenizer error's message.
template <class Body>
auto located(const std::string& where, Body&& body) {
  try {
    return body();
  } catch (const rd::Error& e) {
    fail(where, ": ", e.what());
  }
}

std::string decode(const Tokenizer& tokenizer, const std::vector<std::int32_t>& ids,
                   const std::string& where) {
  return located(where, [&] { return tokenizer.decode(ids, false); });
}

std::vector<std::int32_t> encode(const Tokenizer& tokenizer, const std::string& text,
                                 bool add_special, const std::string& where) {
  return located(where, [&] { return tokenizer.encode(text, add_special); });
}

void run_jsonl(const Tokenizer& tokenizer, const std::string& path, bool decoding,
               bool add_special) {
  std::istringstream lines(read_file("--jsonl", path));
  std::string line;
  for (std::size_t number = 1; std::getline(lines, line); ++number) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    const std::string where = path + ":" + std::to_string(number);
    const Json j = parse_json(line, where);
    if (decoding) {
      std::cout << dump(decode(tokenizer, json_ids(j, where), where)) << '\n';
      continue;
    }
    if (!j.is_string()) fail(where, ": expected a JSON string, found ", dump(j));
    std::cout << dump(encode(tokenizer, j.get<std::string>(), add_special, where)) << '\n';
  }
}

}  // namespace

int command_tokenize(const std::vector<std::string>& words) {
  Arguments args = tokenize_arguments();
  if (!args.parse(words)) {
    std::cout << args.help();
    return 0;
  }
  const std::string path = args.required("--tokenizer");
  int inputs = 0;
  for (const char* flag : {"--text", "--text-file", "--jsonl"}) inputs += args.has(flag);
  if (inputs != 1) fail("give exactly one of --text T, --text-file F or --jsonl F");
  const bool decoding = args.has("--decode");
  const bool add_special = args.has("--add-special");
  if (decoding && add_special) fail("--add-special applies to encoding, not to --decode");
  const Tokenizer tokenizer = located("--tokenizer " + path, [&] { return Tokenizer::load(path); });

  if (const auto jsonl = args.get("--jsonl")) {
    run_jsonl(tokenizer, *jsonl, decoding, add_special);
    return 0;
  }
  const bool from_file = args.has("--text-file");
  const std::string where = from_file ? "--text-file " + *args.get("--text-file") : "--text";
  const std::string input =
      from_file ? read_file("--text-file", *args.get("--text-file")) : *args.get("--text");
  const bool json = args.has("--json");
  if (decoding) {
    const std::vector<std::int32_t> ids = parse_ids(input, where);
    const std::string text = decode(tokenizer, ids, where);
    if (json)
      std::cout << dump(Json{{"text", text}}) << '\n';
    else
      std::cout << text << '\n';
    return 0;
  }
  const std::vector<std::int32_t> ids = encode(tokenizer, input, add_special, where);
  if (json) {
    Json tokens = Json::array();
    for (const std::int32_t id : ids) tokens.push_back(tokenizer.id_to_token(id));
    std::cout << dump(Json{{"ids", ids}, {"tokens", tokens}}) << '\n';
    return 0;
  }
  for (std::size_t i = 0; i < ids.size(); ++i) std::cout << (i ? " " : "") << ids[i];
  std::cout << '\n';
  return 0;
}

}  // namespace rdepth
