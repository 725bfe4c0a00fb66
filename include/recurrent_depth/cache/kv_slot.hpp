// One slot of a KV cache: key and value rows [entries, heads * head_dim] (keys already biased and
// rotated) in the backend's Memory (core/host_memory.hpp) in a KvFormat (float32 or bf16, each row
// in 32-bit words: kv_format.hpp), and the position of each entry (on the host). Entries usually
// arrive in position order (a dense slot, read as contiguous matrices); writing a position that is
// already present replaces that entry in place, as a token's later iteration does in a compressed
// cache.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "../core/error.hpp"
#include "../core/host_memory.hpp"
#include "../core/tensor.hpp"
#include "kv_format.hpp"

namespace recurrent_depth {

// What one attention call sees: keys and values [entries, width] in a KvFormat (as 32-bit words,
// kv_format.hpp) and the position of each entry (empty when entry j is at position j), all in
// the cache's Memory.
struct KvView {
  KvFormat format = KvFormat::f32;
  std::size_t width = 0;
  ConstMatrixView<float> key_words, value_words;  // [entries, words per row]
  std::span<const std::int32_t> positions;

  // visitor(keys, values) with the rows as ConstMatrixView<float> or ConstMatrixView<bf16>.
  template <class Visitor>
  void visit(Visitor&& visitor) const {
    if (format == KvFormat::bf16)
      visitor(rows_as<bf16>(key_words, width), rows_as<bf16>(value_words, width));
    else
      visitor(rows_as<float>(key_words, width), rows_as<float>(value_words, width));
  }
};

template <class Memory = HostMemory>
class BasicKvSlot {
 public:
  explicit BasicKvSlot(std::size_t width, KvFormat format = KvFormat::f32)
      : width_(width),
        format_(format),
        keys_(kv_words_per_row(width, format)),
        values_(kv_words_per_row(width, format)) {}

  KvFormat format() const { return format_; }

  // Stores rows k[t], v[t] at positions first + t (the storage grows once per call).
  void write(std::size_t first, ConstMatrixView<float> k, ConstMatrixView<float> v) {
    if (first + k.rows > row_of_position_.size()) row_of_position_.resize(first + k.rows, -1);
    std::size_t fresh = 0;
    for (std::size_t t = 0; t < k.rows; ++t) fresh += row_of_position_[first + t] < 0 ? 1 : 0;
    keys_.resize(keys_.rows() + fresh);
    values_.resize(values_.rows() + fresh);
    for (std::size_t t = 0; t < k.rows; ++t) {
      const std::size_t position = first + t;
      std::int32_t& row = row_of_position_[position];
      if (row < 0) {
        row = static_cast<std::int32_t>(positions_.size());
        dense_ = dense_ && position == positions_.size();
        positions_.push_back(static_cast<std::int32_t>(position));
      }
    }
    // Runs of consecutive entries (usually all k.rows) are copied at once.
    for (std::size_t t = 0; t < k.rows;) {
      const auto row = static_cast<std::size_t>(row_of_position_[first + t]);
      std::size_t run = 1;
      while (t + run < k.rows &&
             static_cast<std::size_t>(row_of_position_[first + t + run]) == row + run)
        ++run;
      store(k.middle_rows(t, run), keys_.view().middle_rows(row, run));
      store(v.middle_rows(t, run), values_.view().middle_rows(row, run));
      t += run;
    }
  }

  // Drops every entry at position >= length.
  void truncate(std::size_t length) {
    if (length >= row_of_position_.size()) return;
    std::size_t kept = 0;
    for (std::size_t row = 0; row < positions_.size(); ++row) {
      if (static_cast<std::size_t>(positions_[row]) >= length) continue;
      if (kept != row) {  // one row at a time: the rows never overlap
        Memory::copy(keys_.view().middle_rows(row, 1), keys_.view().middle_rows(kept, 1));
        Memory::copy(values_.view().middle_rows(row, 1), values_.view().middle_rows(kept, 1));
      }
      positions_[kept++] = positions_[row];
    }
    positions_.resize(kept);
    keys_.resize(kept);
    values_.resize(kept);
    row_of_position_.assign(length, -1);
    for (std::size_t row = 0; row < kept; ++row)
      row_of_position_[positions_[row]] = std::int32_t(row);
    dense_ = true;
    for (std::size_t row = 0; row < kept; ++row)
      dense_ = dense_ && positions_[row] == std::int32_t(row);
  }

  std::size_t entries() const { return positions_.size(); }
  bool has(std::size_t position) const {
    return position < row_of_position_.size() && row_of_position_[position] >= 0;
  }
  // The key and value rows [entries, width] as numbers of type T: float for KvFormat::f32, bf16
  // for KvFormat::bf16.
  template <class T = float>
  ConstMatrixView<T> keys() const {
    return typed<T>(keys_.view());
  }
  template <class T = float>
  ConstMatrixView<T> values() const {
    return typed<T>(values_.view());
  }
  // Position of each entry (host memory); empty when entry j is at position j for all j.
  std::span<const std::int32_t> key_positions() const {
    return dense_ ? std::span<const std::int32_t>{} : std::span<const std::int32_t>(positions_);
  }
  // Every entry, its positions on the host (key_positions()).
  KvView view() const { return {format_, width_, keys_.view(), values_.view(), key_positions()}; }
  // The 32-bit words of the key and value rows of the entry at `position` (which must exist).
  const float* key_words(std::size_t position) const {
    return keys_.view().row(std::size_t(row_of_position_[position]));
  }
  const float* value_words(std::size_t position) const {
    return values_.view().row(std::size_t(row_of_position_[position]));
  }
  std::size_t bytes() const { return 2 * entries() * keys_.width() * sizeof(float); }

 private:
  // Rows of floats into rows of words in the slot's format.
  void store(ConstMatrixView<float> from, MatrixView<float> words) {
    if (format_ == KvFormat::bf16)
      Memory::round_to_bf16(from, rows_as<bf16>(words, width_));
    else
      Memory::copy(from, words);
  }
  template <class T>
  ConstMatrixView<T> typed(ConstMatrixView<float> words) const {
    require(format_ == (std::is_same_v<T, bf16> ? KvFormat::bf16 : KvFormat::f32),
            "KV slot: rows of ", kv_format_name(format_), " read as another format");
    return rows_as<T>(words, width_);
  }

  std::size_t width_;
  KvFormat format_;
  typename Memory::Rows keys_, values_;        // [entries, words per row]
  std::vector<std::int32_t> positions_;        // position of each entry
  std::vector<std::int32_t> row_of_position_;  // entry of each position, -1 if none
  bool dense_ = true;
};

using KvSlot = BasicKvSlot<>;

}  // namespace recurrent_depth
