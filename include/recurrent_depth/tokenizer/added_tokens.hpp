// Added and special tokens: found in the text before normalization and pre-tokenization, as the
// JavaScript library does: scanning left to right, the longest token starting at each position
// wins; lstrip / rstrip trim JS whitespace from the neighbouring sections. Tokens marked
// `normalized` (and only when there is a normalizer) are matched after normalization instead.
// `single_word` is read but, like the oracle, not applied.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "unicode.hpp"

namespace recurrent_depth::tokenizer {

struct AddedToken {
  std::string content;
  int32_t id = 0;
  bool special = false, lstrip = false, rstrip = false, normalized = false, single_word = false;
};

// A byte trie over token contents: finds the longest token that starts at a position.
class TokenTrie {
 public:
  void insert(std::string_view content) {
    if (content.empty()) return;
    int32_t node = 0;
    for (const char c : content) {
      const auto [it, inserted] =
          children_.emplace(edge(node, c), static_cast<int32_t>(ends_.size()));
      if (inserted) ends_.push_back(0);
      node = it->second;
    }
    ends_[static_cast<std::size_t>(node)] = content.size();
  }

  // Length of the longest token that starts at text[pos], or 0.
  std::size_t longest_match(std::string_view text, std::size_t pos) const {
    std::size_t best = 0;
    int32_t node = 0;
    for (std::size_t i = pos; i < text.size(); ++i) {
      const auto it = children_.find(edge(node, text[i]));
      if (it == children_.end()) break;
      node = it->second;
      if (ends_[static_cast<std::size_t>(node)] != 0) best = ends_[static_cast<std::size_t>(node)];
    }
    return best;
  }

  bool empty() const { return children_.empty(); }

 private:
  static uint64_t edge(int32_t node, char c) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(node)) << 8) |
           static_cast<unsigned char>(c);
  }
  std::unordered_map<uint64_t, int32_t> children_;
  std::vector<std::size_t> ends_{0};  // per node: length of the token ending there, or 0
};

// Splits text into sections: the tokens of `trie` and the text between them; then applies the
// lstrip / rstrip of every section that is an added token (looked up by content, as JS does).
inline std::vector<std::string> split_on_added_tokens(
    std::string_view text, const TokenTrie& trie,
    const std::unordered_map<std::string, AddedToken>& by_content) {
  std::vector<std::string> sections;
  if (trie.empty()) {
    sections.emplace_back(text);
    return sections;
  }
  std::size_t start = 0;
  for (std::size_t pos = 0; pos < text.size();) {
    const std::size_t length = trie.longest_match(text, pos);
    if (length == 0) {
      ++pos;
      continue;
    }
    if (pos > start) sections.emplace_back(text.substr(start, pos - start));
    sections.emplace_back(text.substr(pos, length));
    pos += length;
    start = pos;
  }
  if (start < text.size()) sections.emplace_back(text.substr(start));
  for (std::size_t i = 0; i < sections.size(); ++i) {
    const auto it = by_content.find(sections[i]);
    if (it == by_content.end()) continue;
    if (it->second.lstrip && i > 0) sections[i - 1] = std::string(trim_end_js(sections[i - 1]));
    if (it->second.rstrip && i + 1 < sections.size())
      sections[i + 1] = std::string(trim_start_js(sections[i + 1]));
  }
  return sections;
}

}  // namespace recurrent_depth::tokenizer
