// One slot of a KV cache: key and value rows [entries, heads * head_dim] (keys already biased and
// rotated) and the position of each entry. Entries usually arrive in position order (a dense
// slot, read as contiguous matrices); writing a position that is already present replaces that
// entry in place, as a token's later iteration does in a compressed cache.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

#include "../core/error.hpp"
#include "../core/row_buffer.hpp"
#include "../core/tensor.hpp"

namespace recurrent_depth {

class KvSlot {
 public:
  explicit KvSlot(std::size_t width) : width_(width), keys_(width), values_(width) {}

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
    // A prompt's rows land on fresh pages: their first touch (the kernel's page faults) is split
    // over the threads.
    const auto rows = static_cast<std::ptrdiff_t>(k.rows);
#pragma omp parallel for schedule(static) if (k.rows * width_ >= (std::size_t(1) << 16))
    for (std::ptrdiff_t t = 0; t < rows; ++t) {
      const auto row = static_cast<std::size_t>(row_of_position_[first + std::size_t(t)]);
      std::memcpy(keys_.row(row), k.row(std::size_t(t)), width_ * sizeof(float));
      std::memcpy(values_.row(row), v.row(std::size_t(t)), width_ * sizeof(float));
    }
  }

  // Drops every entry at position >= length.
  void truncate(std::size_t length) {
    if (length >= row_of_position_.size()) return;
    std::size_t kept = 0;
    for (std::size_t row = 0; row < positions_.size(); ++row) {
      if (static_cast<std::size_t>(positions_[row]) >= length) continue;
      std::memmove(keys_.row(kept), keys_.row(row), width_ * sizeof(float));
      std::memmove(values_.row(kept), values_.row(row), width_ * sizeof(float));
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

  std::size_t entries() const {
    return positions_.size();
  }
  bool has(std::size_t position) const {
    return position < row_of_position_.size() && row_of_position_[position] >= 0;
  }
  ConstMatrixView<float> keys() const {
    return {keys_.data(), entries(), width_};
  }
  ConstMatrixView<float> values() const {
    return {values_.data(), entries(), width_};
  }
  // Position of each entry; empty when entry j is at position j for all j.
  std::span<const std::int32_t> key_positions() const {
    return dense_ ? std::span<const std::int32_t>{} : std::span<const std::int32_t>(positions_);
  }
  // Copies the key and value of the entry at `position` (which must exist).
  void copy_entry(std::size_t position, float* key, float* value) const {
    const std::size_t row = static_cast<std::size_t>(row_of_position_[position]);
    std::memcpy(key, keys_.row(row), width_ * sizeof(float));
    std::memcpy(value, values_.row(row), width_ * sizeof(float));
  }
  std::size_t bytes() const {
    return 2 * entries() * width_ * sizeof(float);
  }

 private:
  std::size_t width_;
  RowBuffer keys_, values_;                    // [entries, width]
  std::vector<std::int32_t> positions_;        // position of each entry
  std::vector<std::int32_t> row_of_position_;  // entry of each position, -1 if none
  bool dense_ = true;
};

}  // namespace recurrent_depth
