// Row-major matrices: MatrixView<T> (non-owning, with a row stride) and Matrix<T> (owning,
// 64-byte aligned rows; large ones on huge pages, aligned_memory.hpp). Activations are [positions,
// features]; weights are [out, in].
#pragma once

#include <cassert>
#include <cstddef>
#include <span>
#include <type_traits>

#include "aligned_memory.hpp"

namespace recurrent_depth {

template <class T>
struct MatrixView {
  T* data = nullptr;
  std::size_t rows = 0;
  std::size_t cols = 0;
  std::size_t stride = 0;  // elements between the starts of consecutive rows

  MatrixView() = default;
  MatrixView(T* d, std::size_t r, std::size_t c) : data(d), rows(r), cols(c), stride(c) {}
  MatrixView(T* d, std::size_t r, std::size_t c, std::size_t s)
      : data(d), rows(r), cols(c), stride(s) {}
  // A view of T converts to a view of const T.
  template <class U>
  requires(std::is_same_v<const U, T> && !std::is_same_v<U, T>)
      MatrixView(const MatrixView<U>& other)
      : data(other.data), rows(other.rows), cols(other.cols), stride(other.stride) {}

  T* row(std::size_t i) const {
    assert(i < rows);
    return data + i * stride;
  }
  std::span<T> row_span(std::size_t i) const { return {row(i), cols}; }
  T& operator()(std::size_t i, std::size_t j) const { return data[i * stride + j]; }
  // Rows [first, first + count).
  MatrixView middle_rows(std::size_t first, std::size_t count) const {
    assert(first + count <= rows);
    return {data + first * stride, count, cols, stride};
  }
  // Columns [first, first + count) of every row.
  MatrixView middle_cols(std::size_t first, std::size_t count) const {
    assert(first + count <= cols);
    return {data + first, rows, count, stride};
  }
  bool contiguous() const { return stride == cols; }
  std::size_t size() const { return rows * cols; }
};

template <class T>
using ConstMatrixView = MatrixView<const T>;

// Owning row-major matrix with aligned storage; rows are padded so each starts 64-byte aligned,
// and a row of a multiple of 16 lines (1 KB) gets one line more: otherwise the rows of a column
// fall into at most 4 of the 64 sets of a 48 KB L1 cache (and alias at 4 KB), and a kernel that
// writes a column of outputs across rows evicts its own lines (int8 layer [7168, 1056] at 128
// positions: 1.4x faster with the extra line).
template <class T>
class Matrix {
 public:
  Matrix() = default;
  Matrix(std::size_t rows, std::size_t cols) { resize(rows, cols); }

  // Keeps nothing of the old contents; reuses the allocation when it is large enough.
  void resize(std::size_t rows, std::size_t cols) {
    constexpr std::size_t per_line = kAlignment / sizeof(T) > 0 ? kAlignment / sizeof(T) : 1;
    std::size_t stride = (cols + per_line - 1) / per_line * per_line;
    if (rows > 1 && stride % (16 * per_line) == 0) stride += per_line;
    if (rows * stride > capacity_) {
      storage_ = allocate_aligned<T>(rows * stride);
      capacity_ = rows * stride;
    }
    view_ = MatrixView<T>(storage_.get(), rows, cols, stride);
  }
  void fill(T value) {
    for (std::size_t i = 0; i < view_.rows; ++i)
      for (std::size_t j = 0; j < view_.cols; ++j) view_(i, j) = value;
  }

  std::size_t rows() const { return view_.rows; }
  std::size_t cols() const { return view_.cols; }
  std::size_t stride() const { return view_.stride; }
  T* row(std::size_t i) { return view_.row(i); }
  const T* row(std::size_t i) const { return view_.row(i); }
  std::span<T> row_span(std::size_t i) { return {row(i), cols()}; }
  std::span<const T> row_span(std::size_t i) const { return {row(i), cols()}; }
  T& operator()(std::size_t i, std::size_t j) { return view_(i, j); }
  const T& operator()(std::size_t i, std::size_t j) const { return view_(i, j); }
  MatrixView<T> view() { return view_; }
  ConstMatrixView<T> view() const { return view_; }
  operator MatrixView<T>() { return view_; }
  operator ConstMatrixView<T>() const { return view_; }

 private:
  AlignedArray<T> storage_;
  std::size_t capacity_ = 0;
  MatrixView<T> view_;
};

}  // namespace recurrent_depth
