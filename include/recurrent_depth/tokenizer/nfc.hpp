// Unicode NFC normalization (the "NFC" normalizer of tokenizer.json): canonical decomposition,
// canonical ordering of combining marks, canonical composition (UAX #15), with Hangul done
// algorithmically and the other data from nfc_data.hpp. ASCII text is returned unchanged at once.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "nfc_data.hpp"
#include "unicode.hpp"

namespace recurrent_depth::tokenizer {

namespace nfc_detail {

inline constexpr char32_t kHangulBase = 0xAC00, kLeadBase = 0x1100, kVowelBase = 0x1161,
                          kTrailBase = 0x11A7;
inline constexpr char32_t kVowelCount = 21, kTrailCount = 28, kSyllableCount = 11172;

struct Tables {
  std::unordered_map<char32_t, std::pair<char32_t, char32_t>> decomposition;  // second 0: singleton
  std::unordered_map<uint64_t, char32_t> composition;  // (first, second) -> composite
};

inline const Tables& tables() {
  static const Tables built = [] {
    Tables t;
    constexpr uint64_t mask = (1u << 21) - 1;
    for (const uint64_t entry : nfc_data::kCanonicalDecompositions) {
      const auto cp = static_cast<char32_t>(entry & mask);
      const auto first = static_cast<char32_t>((entry >> 21) & mask);
      const auto second = static_cast<char32_t>((entry >> 42) & mask);
      t.decomposition.emplace(cp, std::pair{first, second});
      if (entry >> 63) t.composition.emplace((static_cast<uint64_t>(first) << 21) | second, cp);
    }
    return t;
  }();
  return built;
}

inline int combining_class(char32_t cp) {
  if (cp < 0x300) return 0;
  constexpr uint64_t mask = (1u << 21) - 1;
  const auto* begin = std::begin(nfc_data::kCombiningClassRanges);
  const auto* end = std::end(nfc_data::kCombiningClassRanges);
  // First range whose start is > cp, then step back one.
  const auto* it = std::upper_bound(
      begin, end, cp, [&](char32_t value, uint64_t range) { return value < (range & mask); });
  if (it == begin) return 0;
  --it;
  return cp <= ((*it >> 21) & mask) ? static_cast<int>(*it >> 42) : 0;
}

inline void decompose(char32_t cp, std::vector<char32_t>& out) {
  if (cp >= kHangulBase && cp < kHangulBase + kSyllableCount) {
    const char32_t index = cp - kHangulBase;
    out.push_back(kLeadBase + index / (kVowelCount * kTrailCount));
    out.push_back(kVowelBase + (index % (kVowelCount * kTrailCount)) / kTrailCount);
    if (index % kTrailCount != 0) out.push_back(kTrailBase + index % kTrailCount);
    return;
  }
  const auto& table = tables().decomposition;
  const auto it = cp < 0xC0 ? table.end() : table.find(cp);
  if (it == table.end()) {
    out.push_back(cp);
    return;
  }
  decompose(it->second.first, out);
  if (it->second.second != 0) decompose(it->second.second, out);
}

inline char32_t compose(char32_t first, char32_t second) {
  if (first >= kLeadBase && first < kLeadBase + 19 && second >= kVowelBase &&
      second < kVowelBase + kVowelCount)
    return kHangulBase + ((first - kLeadBase) * kVowelCount + (second - kVowelBase)) * kTrailCount;
  if (first >= kHangulBase && first < kHangulBase + kSyllableCount &&
      (first - kHangulBase) % kTrailCount == 0 && second > kTrailBase &&
      second < kTrailBase + kTrailCount)
    return first + (second - kTrailBase);
  const auto& table = tables().composition;
  const auto it = table.find((static_cast<uint64_t>(first) << 21) | second);
  return it == table.end() ? 0 : it->second;
}

}  // namespace nfc_detail

// NFC of valid UTF-8 text.
inline std::string nfc(const std::string& text) {
  using namespace nfc_detail;
  if (std::all_of(text.begin(), text.end(),
                  [](char c) { return static_cast<unsigned char>(c) < 0x80; }))
    return text;
  std::vector<char32_t> chars;
  chars.reserve(text.size());
  for (std::size_t pos = 0; pos < text.size();) decompose(next_code_point(text, pos), chars);
  // Canonical ordering: stable sort of each run of non-starters by combining class.
  std::vector<int> classes(chars.size());
  for (std::size_t i = 0; i < chars.size(); ++i) classes[i] = combining_class(chars[i]);
  for (std::size_t i = 0; i < chars.size();) {
    if (classes[i] == 0) {
      ++i;
      continue;
    }
    std::size_t end = i;
    while (end < chars.size() && classes[end] != 0) ++end;
    for (std::size_t a = i + 1; a < end; ++a)  // insertion sort: runs are short
      for (std::size_t b = a; b > i && classes[b - 1] > classes[b]; --b) {
        std::swap(classes[b - 1], classes[b]);
        std::swap(chars[b - 1], chars[b]);
      }
    i = end;
  }
  // Canonical composition.
  std::size_t starter = 0, written = 1;
  int last_class = classes.empty() ? 0 : (classes[0] == 0 ? 0 : 256);
  for (std::size_t i = 1; i < chars.size(); ++i) {
    const int cls = classes[i];
    const char32_t composite = last_class == 256 ? 0 : compose(chars[starter], chars[i]);
    if (composite != 0 && (last_class < cls || last_class == 0)) {
      chars[starter] = composite;
      continue;
    }
    if (cls == 0) starter = written;
    last_class = cls;
    chars[written++] = chars[i];
  }
  chars.resize(std::min(written, chars.size()));
  std::string out;
  out.reserve(text.size());
  for (const char32_t cp : chars) append_utf8(out, cp);
  return out;
}

}  // namespace recurrent_depth::tokenizer
