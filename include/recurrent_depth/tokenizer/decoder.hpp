// Ids back to text: Tokenizer::decode and the StreamingDecoder. The ByteLevel decoder maps each
// token's characters back to bytes and turns the bytes into UTF-8 (invalid sequences become
// U+FFFD); added tokens are copied as they are. Without a decoder, tokens are joined by spaces
// (the JS library's behaviour). The StreamingDecoder takes ids one at a time and returns only
// complete UTF-8: a partial sequence is held back until the bytes that complete it arrive.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "../core/error.hpp"
#include "tokenizer.hpp"
#include "unicode.hpp"

namespace recurrent_depth::tokenizer {

class StreamingDecoder {
 public:
  explicit StreamingDecoder(const Tokenizer& tokenizer, bool skip_special = false)
      : tokenizer_(&tokenizer), skip_special_(skip_special) {}

  // Text completed by this id (possibly empty).
  std::string push(int32_t id) {
    const std::string& token = tokenizer_->id_to_token(id);
    if (skip_special_ && tokenizer_->is_special(id)) return {};
    std::string out;
    if (!tokenizer_->has_byte_level_decoder()) {
      if (!first_) out += ' ';
      first_ = false;
      return out + token;
    }
    if (tokenizer_->is_added(id)) {
      out = utf8_lossy(pending_);
      pending_.clear();
      return out + token;
    }
    for (std::size_t pos = 0; pos < token.size();) {
      const std::size_t begin = pos;
      const int byte = byte_level_byte(next_code_point(token, pos));
      if (byte >= 0)
        pending_ += static_cast<char>(byte);
      else
        pending_.append(token, begin, pos - begin);  // not a byte-level character: kept as is
    }
    const std::size_t complete = complete_utf8_prefix(pending_);
    out = utf8_lossy(std::string_view(pending_).substr(0, complete));
    pending_.erase(0, complete);
    return out;
  }

  // The held-back bytes of an unfinished sequence, as U+FFFD; resets the decoder.
  std::string finish() {
    std::string out = utf8_lossy(pending_);
    pending_.clear();
    first_ = true;
    return out;
  }

  // True while bytes of an incomplete UTF-8 sequence are held back.
  bool has_pending() const { return !pending_.empty(); }

 private:
  const Tokenizer* tokenizer_;
  bool skip_special_;
  bool first_ = true;
  std::string pending_;
};

inline std::string Tokenizer::decode(std::span<const int32_t> ids, bool skip_special) const {
  StreamingDecoder decoder(*this, skip_special);
  std::string text;
  for (const int32_t id : ids) text += decoder.push(id);
  return text + decoder.finish();
}

}  // namespace recurrent_depth::tokenizer
