// UTF-8 helpers for the tokenizer: code point decoding and encoding, lossy conversion of byte
// strings to valid UTF-8 (each invalid sequence becomes U+FFFD, as TextDecoder and Rust's
// from_utf8_lossy do), the length of the longest prefix that holds only complete sequences (for
// streaming decoding), JavaScript's trim() whitespace, and GPT-2's byte-level alphabet.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace recurrent_depth::tokenizer {

inline void append_utf8(std::string& out, char32_t code_point) {
  if (code_point < 0x80) {
    out += static_cast<char>(code_point);
  } else if (code_point < 0x800) {
    out += static_cast<char>(0xC0 | (code_point >> 6));
    out += static_cast<char>(0x80 | (code_point & 0x3F));
  } else if (code_point < 0x10000) {
    out += static_cast<char>(0xE0 | (code_point >> 12));
    out += static_cast<char>(0x80 | ((code_point >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (code_point & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (code_point >> 18));
    out += static_cast<char>(0x80 | ((code_point >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((code_point >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (code_point & 0x3F));
  }
}

// Length of the valid UTF-8 sequence starting at text[pos]: 1..4, or 0 when it is invalid there.
// `complete` is false (and the result 0) when the bytes present are a valid but truncated prefix.
inline std::size_t utf8_sequence_length(std::string_view text, std::size_t pos,
                                        bool* complete = nullptr) {
  const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(text[i]); };
  const unsigned char lead = byte(pos);
  if (complete) *complete = true;
  if (lead < 0x80) return 1;
  std::size_t length = 0;
  unsigned char low = 0x80, high = 0xBF;  // allowed range of the second byte
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    if (lead == 0xE0) low = 0xA0;
    if (lead == 0xED) high = 0x9F;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    if (lead == 0xF0) low = 0x90;
    if (lead == 0xF4) high = 0x8F;
  } else {
    return 0;
  }
  for (std::size_t i = 1; i < length; ++i) {
    if (pos + i >= text.size()) {
      if (complete) *complete = false;
      return 0;
    }
    const unsigned char b = byte(pos + i);
    const unsigned char lo = i == 1 ? low : 0x80, hi = i == 1 ? high : 0xBF;
    if (b < lo || b > hi) return 0;
  }
  return length;
}

// Decodes the code point at text[pos] (which must start a valid sequence) and advances pos.
inline char32_t next_code_point(std::string_view text, std::size_t& pos) {
  const auto byte = [&](std::size_t i) {
    return static_cast<char32_t>(static_cast<unsigned char>(text[i]));
  };
  const char32_t lead = byte(pos);
  if (lead < 0x80) return static_cast<char32_t>(text[pos++]);
  if (lead < 0xE0) {
    const char32_t cp = ((lead & 0x1F) << 6) | (byte(pos + 1) & 0x3F);
    pos += 2;
    return cp;
  }
  if (lead < 0xF0) {
    const char32_t cp =
        ((lead & 0x0F) << 12) | ((byte(pos + 1) & 0x3F) << 6) | (byte(pos + 2) & 0x3F);
    pos += 3;
    return cp;
  }
  const char32_t cp = ((lead & 0x07) << 18) | ((byte(pos + 1) & 0x3F) << 12) |
                      ((byte(pos + 2) & 0x3F) << 6) | (byte(pos + 3) & 0x3F);
  pos += 4;
  return cp;
}

// The offset of the first byte that does not start a valid UTF-8 sequence; npos if none.
inline std::size_t first_invalid_utf8(std::string_view text) {
  for (std::size_t pos = 0; pos < text.size();) {
    const std::size_t length = utf8_sequence_length(text, pos);
    if (length == 0) return pos;
    pos += length;
  }
  return std::string_view::npos;
}

inline bool is_valid_utf8(std::string_view text) {
  return first_invalid_utf8(text) == std::string_view::npos;
}

// Replaces every maximal invalid subpart with U+FFFD (the WHATWG / Unicode recommended practice).
inline std::string utf8_lossy(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  for (std::size_t pos = 0; pos < bytes.size();) {
    const std::size_t length = utf8_sequence_length(bytes, pos);
    if (length > 0) {
      out.append(bytes.substr(pos, length));
      pos += length;
      continue;
    }
    out += "\xEF\xBF\xBD";
    // Skip the lead byte and the continuation bytes that were a valid prefix of it.
    std::size_t skip = 1;
    while (pos + skip < bytes.size() && skip < 4) {
      const std::string_view prefix = bytes.substr(pos, skip + 1);
      bool complete = true;
      if (utf8_sequence_length(prefix, 0, &complete) == 0 && complete) break;
      ++skip;
    }
    pos += skip;
  }
  return out;
}

// Length of the longest prefix of `bytes` after which nothing is pending: everything but a
// trailing truncated (still completable) UTF-8 sequence. Invalid bytes count as complete: they
// will never become valid, so holding them back would only delay their U+FFFD.
inline std::size_t complete_utf8_prefix(std::string_view bytes) {
  const std::size_t tail_start = bytes.size() > 3 ? bytes.size() - 3 : 0;
  for (std::size_t pos = tail_start; pos < bytes.size(); ++pos) {
    const unsigned char b = static_cast<unsigned char>(bytes[pos]);
    if (b < 0xC2 || b > 0xF4) continue;  // not a multi-byte lead
    bool complete = true;
    if (utf8_sequence_length(bytes, pos, &complete) == 0 && !complete) return pos;
  }
  return bytes.size();
}

// JavaScript's String.prototype.trim whitespace (WhiteSpace and LineTerminator), used by the
// oracle for the lstrip / rstrip of added tokens.
inline bool is_js_whitespace(char32_t c) {
  switch (c) {
    case 0x09:
    case 0x0A:
    case 0x0B:
    case 0x0C:
    case 0x0D:
    case 0x20:
    case 0xA0:
    case 0x1680:
    case 0x2028:
    case 0x2029:
    case 0x202F:
    case 0x205F:
    case 0x3000:
    case 0xFEFF:
      return true;
    default:
      return c >= 0x2000 && c <= 0x200A;
  }
}

inline std::string_view trim_start_js(std::string_view text) {
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t next = pos;
    if (!is_js_whitespace(next_code_point(text, next))) break;
    pos = next;
  }
  return text.substr(pos);
}

inline std::string_view trim_end_js(std::string_view text) {
  std::size_t end = text.size();
  while (end > 0) {
    std::size_t start = end - 1;
    while (start > 0 && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) --start;
    std::size_t pos = start;
    if (!is_js_whitespace(next_code_point(text, pos))) break;
    end = start;
  }
  return text.substr(0, end);
}

// GPT-2's reversible map from bytes to printable code points (ByteLevel pre-tokenizer / decoder).
inline const std::array<char32_t, 256>& byte_level_alphabet() {
  static const std::array<char32_t, 256> alphabet = [] {
    std::array<char32_t, 256> table{};
    char32_t next_unprintable = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
      table[static_cast<std::size_t>(b)] =
          printable ? static_cast<char32_t>(b) : next_unprintable++;
    }
    return table;
  }();
  return alphabet;
}

// Inverse of byte_level_alphabet(): code point -> byte, or -1 for code points outside it.
inline int byte_level_byte(char32_t code_point) {
  static const std::array<int, 324> inverse = [] {
    std::array<int, 324> table{};
    table.fill(-1);
    for (int b = 0; b < 256; ++b) table[byte_level_alphabet()[static_cast<std::size_t>(b)]] = b;
    return table;
  }();
  return code_point < inverse.size() ? inverse[code_point] : -1;
}

}  // namespace recurrent_depth::tokenizer
