// Weight matrices [out, in] as 4-bit values in groups of kQ4Group (32) along the input dimension,
// one bf16 scale per group (the Q4_0 idea of llama.cpp): w = scale * (q - 8), q in 0..15. The
// group's value of largest magnitude m takes q - 8 = -8 exactly (scale = -m / 8), unless a value of
// the other sign would then fall more than half a step past +7: the scale grows just enough to
// hold it, so every value is within |scale| / 2 of its original (the scale is rounded to bf16
// away from zero for that). bf16 rather than f16 scales: the range of float (no overflow or flush
// to zero for any weight), the same 2 bytes, and a widening by a shift; its 8-bit significand is
// a 0.4% step on a scale whose values are 6% steps. 4.5 bits per weight.
// Layout, packed so that the kernels (linear_q4.hpp) read each tile of kTileRows rows as one
// contiguous stream: column blocks of kQ4Block (64) columns, two groups; per tile, chunks of up to
// kQ4ChunkBlocks (4) blocks (the last may hold fewer), each chunk
//   the nibbles: for each block, for each row slot r, 32 bytes: byte j = column j (low nibble)
//                and column 32 + j (high nibble) of the block
//   the scales:  for each block, for each row slot r, the bf16 scales of its groups 0 and 1
// A whole chunk is 4 x (128 + 16) bytes = 9 cache lines; the nibbles of every block start on a
// 32-byte boundary. Columns are padded with zeros to whole blocks, rows to whole tiles.
#pragma once

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <utility>

#include "../../core/dtype.hpp"
#include "../../core/error.hpp"
#include "../../core/tensor.hpp"
#include "packed_weights.hpp"

namespace recurrent_depth::cpu {

inline constexpr std::size_t kQ4Group = 32;                     // weights per scale
inline constexpr std::size_t kQ4Block = 2 * kQ4Group;           // columns per block
inline constexpr std::size_t kQ4RowBlockBytes = kQ4Block / 2;   // one row's nibbles of a block
inline constexpr std::size_t kQ4ScaleBytes = 2 * sizeof(bf16);  // one row's scales of a block
inline constexpr std::size_t kQ4ChunkBlocks = 4;
inline constexpr std::size_t kQ4TileBlockBytes = kTileRows * (kQ4RowBlockBytes + kQ4ScaleBytes);

// The scale of a group whose value of largest magnitude is `extreme` and whose largest magnitude
// of the other sign is `opposite` (see the top of this file), as bf16; 0 for a zero group.
inline bf16 q4_group_scale(float extreme, float opposite) {
  const float size = std::max(std::abs(extreme) / 8.0f, opposite / 7.5f);
  std::uint32_t bits = std::bit_cast<std::uint32_t>(size);
  if (bits & 0xFFFFu) bits += 0x10000u;  // rounded up to the next bf16
  const std::uint16_t sign = extreme > 0.0f ? 0x8000u : 0u;
  return bf16{std::uint16_t((bits >> 16) | sign)};
}

// The 4-bit value of w at the group's scale: round(w / scale) + 8 within 0..15.
inline std::uint8_t q4_quantise(float w, float scale) {
  if (scale == 0.0f) return 8;
  return static_cast<std::uint8_t>(std::clamp(std::nearbyint(w / scale), -8.0f, 7.0f) + 8.0f);
}

class PackedQ4Weights {
 public:
  // From row-major float or bf16 values [rows, cols]; every value must be finite.
  template <class Source>
  static PackedQ4Weights from_rows(std::span<const Source> source, std::size_t rows,
                                   std::size_t cols) {
    return from_view(rows_view(source, rows, cols, "PackedQ4Weights"));
  }

  template <class Source>
  static PackedQ4Weights from_view(ConstMatrixView<Source> source) {
    PackedQ4Weights packed;
    packed.rows_ = source.rows;
    packed.cols_ = source.cols;
    packed.blocks_ = (source.cols + kQ4Block - 1) / kQ4Block;
    const std::size_t tile_count = (source.rows + kTileRows - 1) / kTileRows;
    packed.tiles_.resize(tile_count, packed.blocks_ * kQ4TileBlockBytes);
    for (std::size_t t = 0; t < tile_count; ++t)
      std::fill_n(packed.tiles_.row(t), packed.tiles_.cols(), std::uint8_t(0x88));  // q = 8
    const bool finite = pack_rows(source.rows, source.size(),
                                  [&](std::size_t r) { return packed.pack_row(r, source); });
    require(finite, "PackedQ4Weights: the [", source.rows, ", ", source.cols,
            "] weights hold a NaN or an infinity");
    // Padding rows and scales stay q = 8 with scale 0: zero.
    for (std::size_t r = source.rows; r < tile_count * kTileRows; ++r)
      for (std::size_t g = 0; g < packed.groups(); ++g) *packed.scale_address(r, g) = bf16{0};
    return packed;
  }

  std::size_t rows() const { return rows_; }
  std::size_t cols() const { return cols_; }
  std::size_t blocks() const { return blocks_; }                  // column blocks per row
  std::size_t groups() const { return blocks_ * 2; }              // scale groups per row
  std::size_t padded_cols() const { return blocks_ * kQ4Block; }  // cols rounded up to blocks
  std::size_t tile_count() const { return tiles_.rows(); }
  const std::uint8_t* tile(std::size_t t) const { return tiles_.row(t); }
  // Bytes the kernels stream per call: nibbles and scales, padding included.
  std::size_t bytes() const { return tile_count() * blocks_ * kQ4TileBlockBytes; }

  // Offsets in a tile of block b's nibbles (row slot r at + r * kQ4RowBlockBytes) and scales
  // (row slot r at + r * kQ4ScaleBytes).
  std::size_t nibble_offset(std::size_t b) const {
    return (b / kQ4ChunkBlocks) * kQ4ChunkBlocks * kQ4TileBlockBytes +
           (b % kQ4ChunkBlocks) * kTileRows * kQ4RowBlockBytes;
  }
  std::size_t scale_offset(std::size_t b) const {
    const std::size_t first = b / kQ4ChunkBlocks * kQ4ChunkBlocks;
    const std::size_t in_chunk = std::min(kQ4ChunkBlocks, blocks_ - first);
    return first * kQ4TileBlockBytes + in_chunk * kTileRows * kQ4RowBlockBytes +
           (b - first) * kTileRows * kQ4ScaleBytes;
  }

  // The stored 4-bit value (0..15) of row r, column c < padded_cols(), and group g's scale.
  std::uint8_t value(std::size_t r, std::size_t c) const {
    const std::uint8_t byte = *nibble_address(r, c);
    return c % kQ4Block < kQ4Group ? byte & 0x0F : byte >> 4;
  }
  float scale(std::size_t r, std::size_t g) const { return to_float(*scale_address(r, g)); }
  // out[c] = scale x the dequantised w[r][c], c < cols.
  void read_row(std::size_t r, float scale, std::span<float> out) const {
    for (std::size_t c = 0; c < cols_; ++c)
      out[c] = scale * (this->scale(r, c / kQ4Group) * float(int(value(r, c)) - 8));
  }

 private:
  const std::uint8_t* nibble_address(std::size_t r, std::size_t c) const {
    const std::size_t b = c / kQ4Block;
    return tiles_.row(r / kTileRows) + nibble_offset(b) + (r % kTileRows) * kQ4RowBlockBytes +
           c % kQ4Group;
  }
  const bf16* scale_address(std::size_t r, std::size_t g) const {
    return reinterpret_cast<const bf16*>(tiles_.row(r / kTileRows) + scale_offset(g / 2) +
                                         (r % kTileRows) * kQ4ScaleBytes + (g % 2) * sizeof(bf16));
  }
  std::uint8_t* nibble_address(std::size_t r, std::size_t c) {
    return const_cast<std::uint8_t*>(std::as_const(*this).nibble_address(r, c));
  }
  bf16* scale_address(std::size_t r, std::size_t g) {
    return const_cast<bf16*>(std::as_const(*this).scale_address(r, g));
  }

  // Packs row r; false when it holds a value that is not finite.
  template <class Source>
  bool pack_row(std::size_t r, ConstMatrixView<Source> source) {
    const Source* row = source.row(r);
    for (std::size_t g = 0; g * kQ4Group < cols_; ++g) {
      const std::size_t c0 = g * kQ4Group, c1 = std::min(cols_, c0 + kQ4Group);
      float extreme = 0.0f;
      for (std::size_t c = c0; c < c1; ++c) {
        const float v = load_scalar(row + c);
        if (!std::isfinite(v)) return false;
        if (std::abs(v) > std::abs(extreme)) extreme = v;
      }
      float opposite = 0.0f;
      for (std::size_t c = c0; c < c1; ++c)
        if ((load_scalar(row + c) > 0.0f) != (extreme > 0.0f))
          opposite = std::max(opposite, std::abs(load_scalar(row + c)));
      const bf16 stored = q4_group_scale(extreme, opposite);
      *scale_address(r, g) = stored;
      const float scale = to_float(stored);
      for (std::size_t c = c0; c < c1; ++c) {
        std::uint8_t* byte = nibble_address(r, c);
        const std::uint8_t q = q4_quantise(load_scalar(row + c), scale);
        *byte = c % kQ4Block < kQ4Group ? std::uint8_t((*byte & 0xF0) | q)
                                        : std::uint8_t((*byte & 0x0F) | (q << 4));
      }
    }
    for (std::size_t g = (cols_ + kQ4Group - 1) / kQ4Group; g < groups(); ++g)
      *scale_address(r, g) = bf16{0};
    return true;
  }

  std::size_t rows_ = 0, cols_ = 0, blocks_ = 0;
  Matrix<std::uint8_t> tiles_;  // [tile_count, blocks * kQ4TileBlockBytes]
};

}  // namespace recurrent_depth::cpu
