// Fuzz target: tokenizer.json (normalizer, pre-tokenizer regexes, BPE model, added tokens,
// template) with a text to encode. Input: the tokenizer's JSON, the separator "\n#TEXT#\n", then
// the text; without the separator the whole input is text for the Huginn test tokenizer (its
// regexes on arbitrary text). Each step must succeed or give an Error; encoded ids decode again.
// Valid UTF-8 text encodes with the Huginn tokenizer; with a fuzzed one it may instead fail with
// an Error that names the file (a pattern that backtracks past PCRE2's match limit).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "recurrent_depth/tokenizer/tokenizer.hpp"

namespace rdt = recurrent_depth::tokenizer;
using recurrent_depth::Error;

namespace {

constexpr std::string_view kSeparator = "\n#TEXT#\n";

const rdt::Tokenizer& huginn() {
  static const rdt::Tokenizer tokenizer =
      rdt::Tokenizer::load(RECURRENT_DEPTH_TOKENIZER_TEST_DIR "/huginn_tokenizer.json");
  return tokenizer;
}

bool names_fuzz_file(const Error& error) {
  return std::string_view(error.what()).find("fuzz.json") != std::string_view::npos;
}

void encode_and_decode(const rdt::Tokenizer& tokenizer, std::string_view text, bool fuzzed) {
  std::vector<std::int32_t> ids;
  try {
    ids = tokenizer.encode(text, text.size() % 2 == 0);
  } catch (const Error& e) {
    if (rdt::is_valid_utf8(text) && !(fuzzed && names_fuzz_file(e))) __builtin_trap();
    return;
  }
  try {
    (void)tokenizer.decode(ids, text.size() % 3 == 0);
  } catch (const Error&) {  // a template's ids may lie outside the vocabulary
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  (void)huginn();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const std::size_t separator = input.find(kSeparator);
  if (separator == std::string_view::npos) {
    encode_and_decode(huginn(), input, false);
    return 0;
  }
  try {
    const rdt::Tokenizer tokenizer =
        rdt::Tokenizer::from_json_text(std::string(input.substr(0, separator)), "fuzz.json");
    encode_and_decode(tokenizer, input.substr(separator + kSeparator.size()), true);
  } catch (const Error& e) {
    if (!names_fuzz_file(e)) __builtin_trap();
  }
  return 0;
}
