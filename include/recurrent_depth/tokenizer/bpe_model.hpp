// The BPE model of tokenizer.json: vocabulary, merges ("a b" strings or ["a", "b"] pairs) as a
// rank map over symbol ids, the merge loop (lowest rank first, leftmost on ties, as the Rust and
// JS libraries do), ignore_merges, byte_fallback and unk_token, and a cache of piece -> ids.
#pragma once

#include <array>
#include <cstdint>
#include <mutex>
#include <queue>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "../core/error.hpp"
#include "json_fields.hpp"
#include "unicode.hpp"

namespace recurrent_depth::tokenizer {

class BpeModel {
 public:
  // `model` is tokenizer.json's "model" object; `where` names it in error messages. Ids below
  // `id_count` are kept free for added tokens outside the model's vocabulary.
  BpeModel(const Json& model, std::size_t id_count, const std::string& where) {
    require(model.is_object(), where, ": expected a JSON object");
    const std::string type = json_string_or(model, "type", "BPE", where);
    require(type == "BPE", where, ".type: unsupported model \"", type, "\" (supported: BPE)");
    for (const char* affix : {"continuing_subword_prefix", "end_of_word_suffix"}) {
      const auto it = model.find(affix);
      require(
          it == model.end() || it->is_null() || (it->is_string() && it->get<std::string>().empty()),
          where, ".", affix, ": non-empty values are not supported");
    }
    ignore_merges_ = json_bool(model, "ignore_merges", false, where);
    byte_fallback_ = json_bool(model, "byte_fallback", false, where);
    unk_token_ = json_string_or(model, "unk_token", "", where);

    const auto vocab = model.find("vocab");
    require(vocab != model.end() && vocab->is_object(), where,
            ".vocab: expected an object of token -> id");
    for (const auto& [token, id] : vocab->items()) {
      require(id.is_number_integer() && id.get<int64_t>() >= 0 && id.get<int64_t>() < INT32_MAX,
              where, ".vocab[\"", token, "\"]: expected a non-negative integer id");
      set_token(token, id.get<int32_t>());
    }
    reserve_ids(id_count);
    load_merges(model, where);
    if (!unk_token_.empty()) {
      const auto it = symbol_ids_.find(unk_token_);
      require(it != symbol_ids_.end() && is_token(it->second), where, ".unk_token: \"", unk_token_,
              "\" is not in the vocabulary");
      unk_id_ = it->second;
    }
    const auto& alphabet = byte_level_alphabet();
    for (int b = 0; b < 256; ++b) {
      std::string symbol;
      append_utf8(symbol, alphabet[static_cast<std::size_t>(b)]);
      byte_symbols_[static_cast<std::size_t>(b)] = intern(symbol);
    }
  }

  // Registers a token (also used for added tokens, which may lie outside the model's vocabulary).
  void set_token(const std::string& token, int32_t id) {
    if (static_cast<std::size_t>(id) >= id_to_token_.size()) {
      require(!merges_loaded_, "tokenizer: id ", id, " of \"", token,
              "\" lies beyond the model's ids");
      id_to_token_.resize(static_cast<std::size_t>(id) + 1);
      has_token_.resize(static_cast<std::size_t>(id) + 1, false);
    }
    id_to_token_[static_cast<std::size_t>(id)] = token;
    has_token_[static_cast<std::size_t>(id)] = true;
    symbol_ids_.insert_or_assign(token, id);
  }

  // Reserves ids up to `count` (added tokens extend the id range before the merges are read).
  void reserve_ids(std::size_t count) {
    if (count > id_to_token_.size()) {
      id_to_token_.resize(count);
      has_token_.resize(count, false);
    }
  }

  std::size_t id_count() const { return id_to_token_.size(); }
  bool is_token(int32_t id) const {
    return id >= 0 && static_cast<std::size_t>(id) < has_token_.size() &&
           has_token_[static_cast<std::size_t>(id)];
  }
  const std::string& token(int32_t id) const { return id_to_token_[static_cast<std::size_t>(id)]; }
  const int32_t* find(std::string_view token) const {
    const auto it = symbol_ids_.find(std::string(token));
    return it != symbol_ids_.end() && is_token(it->second) ? &it->second : nullptr;
  }

  // Appends the ids of one pre-token piece (raw UTF-8; mapped to byte-level symbols first when
  // `byte_level`). Results are cached per piece.
  void encode(std::string_view piece, bool byte_level, std::vector<int32_t>& out) const {
    if (piece.empty()) return;
    {
      std::lock_guard lock(cache_mutex_);
      const auto it = cache_.find(piece);
      if (it != cache_.end()) {
        out.insert(out.end(), it->second.begin(), it->second.end());
        return;
      }
    }
    std::vector<int32_t> ids;
    encode_uncached(piece, byte_level, ids);
    out.insert(out.end(), ids.begin(), ids.end());
    std::lock_guard lock(cache_mutex_);
    if (cache_.size() >= kCacheCapacity) cache_.clear();
    cache_.emplace(std::string(piece), std::move(ids));
  }

 private:
  static constexpr std::size_t kCacheCapacity = 1 << 17;

  struct Merge {
    int32_t rank;
    int32_t result;
  };
  struct Symbol {
    int32_t id;
    int32_t prev, next;
    uint32_t begin, end;
  };  // [begin, end) in the piece
  struct Candidate {
    int32_t rank, pos, result;
    bool operator>(const Candidate& other) const {
      return rank != other.rank ? rank > other.rank : pos > other.pos;
    }
  };
  struct StringHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view text) const {
      return std::hash<std::string_view>{}(text);
    }
  };

  static uint64_t pair_key(int32_t left, int32_t right) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) |
           static_cast<uint32_t>(right);
  }

  // Symbol id of a string: its vocabulary id, or a new id past the vocabulary for merge parts
  // and results that are not tokens (the JS library merges them too, then drops them).
  int32_t intern(const std::string& symbol) {
    const auto [it, inserted] = symbol_ids_.emplace(
        symbol, static_cast<int32_t>(id_to_token_.size() + extra_symbols_.size()));
    if (inserted) extra_symbols_.push_back(symbol);
    return it->second;
  }

  std::string symbol_text(int32_t id) const {
    return static_cast<std::size_t>(id) < id_to_token_.size()
               ? id_to_token_[static_cast<std::size_t>(id)]
               : extra_symbols_[static_cast<std::size_t>(id) - id_to_token_.size()];
  }

  void load_merges(const Json& model, const std::string& where) {
    const auto merges = model.find("merges");
    require(merges != model.end() && merges->is_array(), where, ".merges: expected an array");
    merges_loaded_ = true;
    merges_.reserve(merges->size());
    for (std::size_t rank = 0; rank < merges->size(); ++rank) {
      const auto& merge = (*merges)[rank];
      std::string left, right;
      if (merge.is_string()) {  // "a b"; like the JS library, further spaces end the second part
        const std::string text = merge.get<std::string>();
        const std::size_t space = text.find(' ');
        require(space != std::string::npos, where, ".merges[", rank,
                "]: expected \"left right\", got \"", text, "\"");
        left = text.substr(0, space);
        right = text.substr(space + 1, text.find(' ', space + 1) - space - 1);
      } else {
        require(
            merge.is_array() && merge.size() == 2 && merge[0].is_string() && merge[1].is_string(),
            where, ".merges[", rank, "]: expected \"left right\" or [\"left\", \"right\"]");
        left = merge[0].get<std::string>();
        right = merge[1].get<std::string>();
      }
      const int32_t left_id = intern(left), right_id = intern(right), result = intern(left + right);
      merges_.emplace(pair_key(left_id, right_id), Merge{static_cast<int32_t>(rank), result});
    }
  }

  void encode_uncached(std::string_view piece, bool byte_level, std::vector<int32_t>& out) const {
    std::string mapped;  // the piece as byte-level characters (only needed for ignore_merges)
    if (byte_level && ignore_merges_)
      for (const char c : piece)
        append_utf8(mapped, byte_level_alphabet()[static_cast<unsigned char>(c)]);
    if (ignore_merges_) {
      if (const int32_t* id = find(byte_level ? std::string_view(mapped) : piece)) {
        out.push_back(*id);
        return;
      }
    }
    std::vector<Symbol> symbols;
    symbols.reserve(piece.size());
    for (std::size_t pos = 0; pos < piece.size();) {
      const std::size_t begin = pos;
      int32_t id;
      if (byte_level) {
        id = byte_symbols_[static_cast<unsigned char>(piece[pos++])];
      } else {
        next_code_point(piece, pos);
        const auto it = symbol_ids_.find(std::string(piece.substr(begin, pos - begin)));
        id = it != symbol_ids_.end() ? it->second : -1;  // -1: never merges
      }
      const auto index = static_cast<int32_t>(symbols.size());
      symbols.push_back(
          {id, index - 1, index + 1, static_cast<uint32_t>(begin), static_cast<uint32_t>(pos)});
    }
    symbols.back().next = -1;

    std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> queue;
    const auto consider = [&](int32_t pos) {  // pos -1: the left neighbour of the first symbol
      if (pos < 0) return;
      const int32_t next = symbols[static_cast<std::size_t>(pos)].next;
      if (next < 0) return;
      const auto it = merges_.find(pair_key(symbols[static_cast<std::size_t>(pos)].id,
                                            symbols[static_cast<std::size_t>(next)].id));
      if (it != merges_.end()) queue.push({it->second.rank, pos, it->second.result});
    };
    for (int32_t pos = 0; pos + 1 < static_cast<int32_t>(symbols.size()); ++pos) consider(pos);
    while (!queue.empty()) {
      const Candidate top = queue.top();
      queue.pop();
      Symbol& left = symbols[static_cast<std::size_t>(top.pos)];
      if (left.end == left.begin || left.next < 0) continue;  // removed, or nothing to its right
      Symbol& right = symbols[static_cast<std::size_t>(left.next)];
      const auto it = merges_.find(pair_key(left.id, right.id));
      if (it == merges_.end() || it->second.result != top.result) continue;  // stale candidate
      left.id = top.result;
      left.end = right.end;
      left.next = right.next;
      right.end = right.begin;  // mark removed
      if (left.next >= 0) symbols[static_cast<std::size_t>(left.next)].prev = top.pos;
      consider(left.prev);
      consider(top.pos);
    }
    for (int32_t pos = 0; pos >= 0; pos = symbols[static_cast<std::size_t>(pos)].next) {
      const Symbol& symbol = symbols[static_cast<std::size_t>(pos)];
      if (is_token(symbol.id)) {
        out.push_back(symbol.id);
      } else {
        emit_unknown(symbol.id >= 0
                         ? symbol_text(symbol.id)
                         : std::string(piece.substr(symbol.begin, symbol.end - symbol.begin)),
                     out);
      }
    }
  }

  // A symbol that is not a token: its bytes as <0xHH> tokens (byte_fallback), else unk, else
  // nothing.
  void emit_unknown(const std::string& text, std::vector<int32_t>& out) const {
    if (byte_fallback_) {
      std::vector<int32_t> bytes;
      for (const char c : text) {
        static constexpr char hex[] = "0123456789ABCDEF";
        const auto b = static_cast<unsigned char>(c);
        const int32_t* id = find(std::string("<0x") + hex[b >> 4] + hex[b & 15] + ">");
        if (!id) {
          bytes.clear();
          break;
        }
        bytes.push_back(*id);
      }
      if (!bytes.empty()) {
        out.insert(out.end(), bytes.begin(), bytes.end());
        return;
      }
    }
    if (unk_id_ >= 0) out.push_back(unk_id_);
  }

  std::vector<std::string> id_to_token_;
  std::vector<bool> has_token_;
  std::vector<std::string> extra_symbols_;  // symbols past the ids: merge parts that are no tokens
  std::unordered_map<std::string, int32_t> symbol_ids_;
  std::unordered_map<uint64_t, Merge> merges_;
  std::array<int32_t, 256> byte_symbols_{};
  bool ignore_merges_ = false, byte_fallback_ = false, merges_loaded_ = false;
  std::string unk_token_;
  int32_t unk_id_ = -1;

  mutable std::mutex cache_mutex_;
  mutable std::unordered_map<std::string, std::vector<int32_t>, StringHash, std::equal_to<>> cache_;
};

}  // namespace recurrent_depth::tokenizer
