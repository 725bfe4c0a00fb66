// Bookkeeping of the core loop over a batch of rows (tokens of one or more sequences) that stop
// iterating at different steps: which rows are still active, packed in order at the top of the
// loop's matrices, and the runs of them that form contiguous positions of one sequence (the
// SequenceRows the blocks attend with). The matrices are in the backend's Memory.
#pragma once

#include <algorithm>
#include <cstddef>
#include <span>
#include <vector>

#include "../blocks/block_context.hpp"

namespace recurrent_depth {

template <class Memory = HostMemory>
class ActiveRows {
  using SequenceRows = BasicSequenceRows<Memory>;

 public:
  // All rows of `sequences` (which cover rows 0..n-1 in order) become active.
  void reset(std::span<const SequenceRows> sequences) {
    cache_of_row_.clear();
    position_of_row_.clear();
    for (const SequenceRows& s : sequences)
      for (std::size_t r = 0; r < s.rows; ++r) {
        cache_of_row_.push_back(s.cache);
        position_of_row_.push_back(s.first_position + r);
      }
    rows_.resize(cache_of_row_.size());
    for (std::size_t r = 0; r < rows_.size(); ++r) rows_[r] = r;
    rebuild_segments();
  }

  std::size_t size() const { return rows_.size(); }
  bool empty() const { return rows_.empty(); }
  // Original row of each packed (active) row.
  std::span<const std::size_t> rows() const { return rows_; }
  std::span<const SequenceRows> segments() const { return segments_; }

  // Drops the packed rows p with done[p] and moves the remaining rows of each matrix up, keeping
  // their order. Returns the new number of active rows.
  template <class... Matrices>
  std::size_t remove(std::span<const char> done, Matrices&... packed) {
    std::size_t kept = 0;
    for (std::size_t p = 0; p < rows_.size(); ++p) {
      if (done[p]) continue;
      if (kept != p) {
        rows_[kept] = rows_[p];
        (move_row(packed, p, kept), ...);
      }
      ++kept;
    }
    rows_.resize(kept);
    rebuild_segments();
    return kept;
  }

 private:
  static void move_row(MatrixView<float> m, std::size_t from, std::size_t to) {
    if (m.data) Memory::copy(m.middle_rows(from, 1), m.middle_rows(to, 1));
  }

  void rebuild_segments() {
    segments_.clear();
    for (std::size_t p = 0; p < rows_.size(); ++p) {
      const std::size_t r = rows_[p];
      if (!segments_.empty()) {
        SequenceRows& last = segments_.back();
        if (last.cache == cache_of_row_[r] &&
            last.first_position + last.rows == position_of_row_[r]) {
          ++last.rows;
          continue;
        }
      }
      segments_.push_back({cache_of_row_[r], position_of_row_[r], p, 1});
    }
  }

  std::vector<BasicKvCache<Memory>*> cache_of_row_;
  std::vector<std::size_t> position_of_row_;
  std::vector<std::size_t> rows_;
  std::vector<SequenceRows> segments_;
};

}  // namespace recurrent_depth
