// One slot of a KV cache: key and value rows [entries, heads * head_dim] (keys already biased and
// rotated) in the backend's Memory (core/host_memory.hpp), and the position of each entry (on the
// host). Entries usually arrive in position order (a dense slot, read as contiguous matrices);
// writing a position that is already present replaces that entry in place, as a token's later
// iteration does in a compressed cache.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "../core/error.hpp"
#include "../core/host_memory.hpp"
#include "../core/tensor.hpp"

namespace recurrent_depth {

template <class Memory = HostMemory>
class BasicKvSlot {
 public:
  explicit BasicKvSlot(std::size_t width) : width_(width), keys_(width), values_(width) {}

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
      Memory::copy(k.middle_rows(t, run), keys_.view().middle_rows(row, run));
      Memory::copy(v.middle_rows(t, run), values_.view().middle_rows(row, run));
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
  ConstMatrixView<float> keys() const { return keys_.view(); }
  ConstMatrixView<float> values() const { return values_.view(); }
  // Position of each entry (host memory); empty when entry j is at position j for all j.
  std::span<const std::int32_t> key_positions() const {
    return dense_ ? std::span<const std::int32_t>{} : std::span<const std::int32_t>(positions_);
  }
  // The key and value rows [1, width] of the entry at `position` (which must exist).
  ConstMatrixView<float> key_row(std::size_t position) const {
    return keys_.view().middle_rows(std::size_t(row_of_position_[position]), 1);
  }
  ConstMatrixView<float> value_row(std::size_t position) const {
    return values_.view().middle_rows(std::size_t(row_of_position_[position]), 1);
  }
  std::size_t bytes() const { return 2 * entries() * width_ * sizeof(float); }

 private:
  std::size_t width_;
  typename Memory::Rows keys_, values_;        // [entries, width]
  std::vector<std::int32_t> positions_;        // position of each entry
  std::vector<std::int32_t> row_of_position_;  // entry of each position, -1 if none
  bool dense_ = true;
};

using KvSlot = BasicKvSlot<>;

}  // namespace recurrent_depth
