// RowBuffer: a growable array of rows of `width` floats, contiguous (row r at data() + r *
// width), in aligned memory on the default pages (aligned_memory.hpp). It grows by doubling
// its capacity and leaves new rows uninitialised, so that appending a prompt's rows costs at
// most one allocation and no zeroing (the KV cache's storage: a std::vector grown row by row
// zeroed every row and, on 4 KiB pages, faulted them in one by one).
#pragma once

#include <algorithm>
#include <cstddef>
#include <utility>

#include "aligned_memory.hpp"

namespace recurrent_depth {

class RowBuffer {
 public:
  explicit RowBuffer(std::size_t width) : width_(width) {}
  RowBuffer(const RowBuffer& other) : width_(other.width_) { *this = other; }
  RowBuffer& operator=(const RowBuffer& other) {
    if (this == &other) return *this;
    width_ = other.width_;
    rows_ = 0;
    resize(other.rows_);
    std::copy_n(other.data(), other.rows_ * width_, data());
    return *this;
  }
  RowBuffer(RowBuffer&& other) noexcept { swap(other); }
  RowBuffer& operator=(RowBuffer&& other) noexcept {
    swap(other);
    return *this;
  }

  std::size_t width() const { return width_; }
  std::size_t rows() const { return rows_; }
  std::size_t capacity() const { return capacity_; }
  float* data() { return data_.get(); }
  const float* data() const { return data_.get(); }
  float* row(std::size_t r) { return data() + r * width_; }
  const float* row(std::size_t r) const { return data() + r * width_; }

  // Keeps the first min(rows, rows()) rows; rows past the old count are uninitialised.
  void resize(std::size_t rows) {
    if (rows > capacity_) grow(std::max({rows, 2 * capacity_, std::size_t(16)}));
    rows_ = rows;
  }

 private:
  void grow(std::size_t capacity) {
    AlignedArray<float> fresh =
        allocate_aligned<float>(capacity * width_, PageAdvice::default_pages);
    std::copy_n(data(), rows_ * width_, fresh.get());
    data_ = std::move(fresh);
    capacity_ = capacity;
  }
  void swap(RowBuffer& other) noexcept {
    std::swap(width_, other.width_);
    std::swap(rows_, other.rows_);
    std::swap(capacity_, other.capacity_);
    std::swap(data_, other.data_);
  }

  std::size_t width_ = 0, rows_ = 0, capacity_ = 0;
  AlignedArray<float> data_;
};

}  // namespace recurrent_depth
