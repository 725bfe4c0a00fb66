// Unicode NFC normalization (placeholder: identity).
#pragma once
#include <string>
namespace recurrent_depth::tokenizer {
inline std::string nfc(const std::string& text) { return text; }
}  // namespace recurrent_depth::tokenizer
