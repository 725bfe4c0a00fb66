// Fuzz target: the streaming decoder with random id sequences (two bytes per id, some outside the
// vocabulary). The Huginn test tokenizer's StreamingDecoder must emit only valid UTF-8, refuse
// unknown ids with an Error, and give the same text as decode() for a sequence it accepts; the
// chat's TextStream (which shows unknown ids as U+FFFD) must never fail.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "recurrent_depth/generate/chat.hpp"
#include "recurrent_depth/tokenizer/tokenizer.hpp"

namespace rd = recurrent_depth;
namespace rdt = recurrent_depth::tokenizer;

namespace {
const rdt::Tokenizer& huginn() {
  static const rdt::Tokenizer tokenizer =
      rdt::Tokenizer::load(RECURRENT_DEPTH_TOKENIZER_TEST_DIR "/huginn_tokenizer.json");
  return tokenizer;
}
}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  (void)huginn();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const bool skip_special = data[0] & 1;
  std::vector<std::int32_t> ids;
  for (std::size_t i = 1; i + 1 < size; i += 2) {
    const std::int32_t raw = std::int32_t(data[i]) | (std::int32_t(data[i + 1]) << 8);
    // Mostly ids the tokenizer has; the top bit picks the special range or an invalid id.
    ids.push_back(raw & 0x8000 ? (raw & 1 ? 65504 + (raw >> 1) % 40 : -(raw & 0xff)) : raw % 3400);
  }
  const rdt::Tokenizer& tokenizer = huginn();
  rdt::StreamingDecoder decoder(tokenizer, skip_special);
  std::string streamed;
  bool refused = false;
  for (const std::int32_t id : ids) {
    try {
      const std::string piece = decoder.push(id);
      if (!rdt::is_valid_utf8(piece)) __builtin_trap();
      streamed += piece;
    } catch (const rd::Error&) {
      refused = true;
      break;
    }
  }
  if (!refused) {
    streamed += decoder.finish();
    std::string whole;
    try {
      whole = tokenizer.decode(ids, skip_special);
    } catch (const rd::Error&) {
      __builtin_trap();  // the stream accepted every id
    }
    if (streamed != whole) __builtin_trap();
  }
  rd::TextStream text(tokenizer, skip_special);
  std::string shown;
  for (const std::int32_t id : ids) shown += text.push(id);
  shown += text.finish();
  if (!rdt::is_valid_utf8(shown)) __builtin_trap();
  return 0;
}
