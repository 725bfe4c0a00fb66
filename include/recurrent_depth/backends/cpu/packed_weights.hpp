// Weight matrices [out, in] packed for the linear kernels (linear.hpp), in float, bf16 or int8.
// Rows are grouped in tiles of kTileRows; a tile holds, for each 64-byte block of columns, that
// block of each of its rows one after the other, so that the kernel reads one tile as a single
// contiguous stream:
//   row r, column c  ->  tile r / kTileRows, block c / kBlock, slot r % kTileRows, lane c % kBlock
//   at  tiles_(tile, (block * kTileRows + slot) * kBlock + lane).
// Columns are padded with zeros to whole blocks and rows to whole tiles. int8 rows are symmetric
// with one scale per row (w = scale * stored, scale = max |w| / 127) and carry the sum of their
// stored values (the offset correction of the int8 kernel, linear_int8.hpp).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <type_traits>
#include <vector>

#include "../../core/dtype.hpp"
#include "../../core/error.hpp"
#include "../../core/tensor.hpp"

namespace recurrent_depth::cpu {

// One stored weight as float (exact for every format).
inline float load_scalar(const float* p) {
  return *p;
}
inline float load_scalar(const std::int8_t* p) {
  return float(*p);
}
inline float load_scalar(const bf16* p) {
  return to_float(*p);
}

// Weight rows per tile (the kernels' register tiles are built on it).
inline constexpr std::size_t kTileRows = 4;

// Row-major values [rows, cols] as a view, checked to be that many (`packer` names the caller).
template <class Source>
ConstMatrixView<Source> rows_view(std::span<const Source> source, std::size_t rows,
                                  std::size_t cols, const char* packer) {
  require(source.size() == rows * cols, packer, ": ", source.size(), " values for [", rows, ", ",
          cols, "]");
  return ConstMatrixView<Source>(source.data(), rows, cols);
}

// Calls pack_row(r) for every row r < rows, on the OpenMP team when the matrix holds 2^20 values
// or more; true when every call returned true (a row packer that cannot fail returns true).
// (`values` is unused where OpenMP is off, as in the HIP backend's hipcc compilations.)
template <class PackRow>
bool pack_rows(std::size_t rows, [[maybe_unused]] std::size_t values, PackRow&& pack_row) {
  const auto count = static_cast<std::ptrdiff_t>(rows);
  bool all = true;
#pragma omp parallel for schedule(static) reduction(&& : all) if (values >= (std::size_t(1) << 20))
  for (std::ptrdiff_t i = 0; i < count; ++i) all = pack_row(static_cast<std::size_t>(i)) && all;
  return all;
}

template <class W>
class PackedWeights {
 public:
  static constexpr bool kScaled = std::is_same_v<W, std::int8_t>;
  static constexpr std::size_t kBlock = 64 / sizeof(W);  // elements of one row in one block

  // From row-major float or bf16 values [rows, cols].
  template <class Source>
  static PackedWeights from_rows(std::span<const Source> source, std::size_t rows,
                                 std::size_t cols) {
    return from_view(rows_view(source, rows, cols, "PackedWeights"));
  }

  template <class Source>
  static PackedWeights from_view(ConstMatrixView<Source> source) {
    PackedWeights packed;
    packed.rows_ = source.rows;
    packed.cols_ = source.cols;
    packed.blocks_ = (source.cols + kBlock - 1) / kBlock;
    const std::size_t tile_count = (source.rows + kTileRows - 1) / kTileRows;
    packed.tiles_.resize(tile_count, packed.blocks_ * kTileRows * kBlock);
    if constexpr (kScaled) {
      packed.row_scales_.resize(source.rows);
      packed.row_sums_.assign(source.rows, 0);
    }
    pack_rows(source.rows, source.size(), [&](std::size_t r) {
      packed.pack_row(r, source);
      return true;
    });
    for (std::size_t r = source.rows; r < tile_count * kTileRows; ++r) packed.zero_from(r, 0);
    return packed;
  }

  std::size_t rows() const { return rows_; }
  std::size_t cols() const { return cols_; }
  std::size_t blocks() const { return blocks_; }                // column blocks per row
  std::size_t padded_cols() const { return blocks_ * kBlock; }  // cols rounded up to blocks
  std::size_t tile_count() const { return tiles_.rows(); }
  const W* tile(std::size_t t) const { return tiles_.row(t); }
  // Bytes the kernels stream per call (padding included) plus the per-row metadata.
  std::size_t bytes() const {
    return tile_count() * kTileRows * padded_cols() * sizeof(W) +
           row_scales_.size() * sizeof(float) + row_sums_.size() * sizeof(std::int32_t);
  }
  std::span<const float> scales() const { return row_scales_; }         // int8 only
  std::span<const std::int32_t> row_sums() const { return row_sums_; }  // int8 only

  W value(std::size_t r, std::size_t c) const { return *address(r, c); }
  // out[c] = scale x w[r][c] (the row's own scale included for int8), c < cols.
  void read_row(std::size_t r, float scale, std::span<float> out) const {
    if constexpr (kScaled) scale *= row_scales_[r];
    for (std::size_t c0 = 0; c0 < cols_; c0 += kBlock) {
      const W* block = address(r, c0);
      const std::size_t n = std::min(kBlock, cols_ - c0);
      for (std::size_t i = 0; i < n; ++i) out[c0 + i] = load_scalar(block + i) * scale;
    }
  }

 private:
  const W* address(std::size_t r, std::size_t c) const {
    return tiles_.row(r / kTileRows) + ((c / kBlock) * kTileRows + r % kTileRows) * kBlock +
           c % kBlock;
  }
  W* address(std::size_t r, std::size_t c) {
    return const_cast<W*>(static_cast<const PackedWeights*>(this)->address(r, c));
  }

  template <class Source>
  void pack_row(std::size_t r, ConstMatrixView<Source> source) {
    const Source* row = source.row(r);
    if constexpr (kScaled) {
      float largest = 0.0f;
      for (std::size_t c = 0; c < cols_; ++c)
        largest = std::max(largest, std::abs(to_float(row[c])));
      const float scale = largest > 0.0f ? largest / 127.0f : 1.0f;
      std::int32_t sum = 0;
      for (std::size_t c = 0; c < cols_; ++c) {
        const float q = std::clamp(std::nearbyint(to_float(row[c]) / scale), -127.0f, 127.0f);
        *address(r, c) = static_cast<std::int8_t>(q);
        sum += static_cast<std::int32_t>(q);
      }
      row_scales_[r] = scale;
      row_sums_[r] = sum;
    } else {
      for (std::size_t c = 0; c < cols_; ++c) *address(r, c) = convert(row[c]);
    }
    zero_from(r, cols_);
  }
  // Zeroes row slot r from column `first` to the end of its padded columns.
  void zero_from(std::size_t r, std::size_t first) {
    for (std::size_t c = first; c < padded_cols(); ++c) *address(r, c) = W{};
  }
  static W convert(float v) {
    if constexpr (std::is_same_v<W, float>)
      return v;
    else
      return to_bf16(v);
  }
  static W convert(bf16 v) {
    if constexpr (std::is_same_v<W, float>)
      return to_float(v);
    else
      return v;
  }

  std::size_t rows_ = 0, cols_ = 0, blocks_ = 0;
  Matrix<W> tiles_;                     // [tile_count, blocks * kTileRows * kBlock]
  std::vector<float> row_scales_;       // int8 only
  std::vector<std::int32_t> row_sums_;  // int8 only
};

}  // namespace recurrent_depth::cpu
