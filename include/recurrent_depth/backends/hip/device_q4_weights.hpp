// q4 weight matrices [out, in] of the HIP backend in device memory: 4-bit values in groups of 32
// along a row with one bf16 scale per group, w = scale * (q - 8), the values and scales of
// cpu::PackedQ4Weights (the same quantisation, done once on the host), laid out for the GPU:
//   nibbles [rows, groups * 16] bytes: group g of a row is one 16-byte vector, byte j holding
//           column 32 g + j in its low nibble and column 32 g + 16 + j in its high nibble
//           (the padding past the last column: q = 8, zero);
//   scales  [rows, groups] bf16 (zero for a group wholly past the last column).
// 4.5 bits per weight, as on the CPU. The kernels: gemv_rows_q4 (linear_gemv.hpp), gemm_tiled_q4
// (linear_gemm.hpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "../../core/dtype.hpp"
#include "../../core/tensor.hpp"
#include "../cpu/packed_q4.hpp"
#include "device_buffer.hpp"

namespace recurrent_depth::hip {

class DeviceQ4Weights {
 public:
  static constexpr std::size_t kGroup = cpu::kQ4Group;    // columns per scale
  static constexpr std::size_t kGroupBytes = kGroup / 2;  // one group's nibbles: a vector
  static_assert(kGroupBytes == 16, "a group's nibbles are one 16-byte load");

  // From row-major float or bf16 values [rows, cols] on the host.
  template <class Source>
  static DeviceQ4Weights from_rows(std::span<const Source> source, std::size_t rows,
                                   std::size_t cols) {
    return from_packed(cpu::PackedQ4Weights::from_rows(source, rows, cols));
  }
  template <class Source>
  static DeviceQ4Weights from_view(ConstMatrixView<Source> source) {
    return from_packed(cpu::PackedQ4Weights::from_view(source));
  }
  // The stored values and scales of CPU-packed q4 weights.
  static DeviceQ4Weights from_packed(const cpu::PackedQ4Weights& packed) {
    DeviceQ4Weights weights;
    weights.rows_ = packed.rows();
    weights.cols_ = packed.cols();
    weights.groups_ = (packed.cols() + kGroup - 1) / kGroup;
    const std::size_t groups = weights.groups_;
    std::vector<std::uint8_t> nibbles(weights.rows_ * groups * kGroupBytes);
    std::vector<bf16> scales(weights.rows_ * groups);
    for (std::size_t r = 0; r < weights.rows_; ++r)
      for (std::size_t g = 0; g < groups; ++g) {
        scales[r * groups + g] = to_bf16(packed.scale(r, g));  // bf16 already: exact
        std::uint8_t* group = nibbles.data() + (r * groups + g) * kGroupBytes;
        for (std::size_t j = 0; j < kGroupBytes; ++j) {
          const std::size_t c = g * kGroup + j;  // < padded_cols(): padding reads q = 8
          group[j] = std::uint8_t(packed.value(r, c) | (packed.value(r, c + kGroupBytes) << 4));
        }
      }
    weights.nibbles_.resize(nibbles.size());
    weights.nibbles_.upload(nibbles);
    weights.scales_.resize(scales.size());
    weights.scales_.upload(scales);
    return weights;
  }

  std::size_t rows() const { return rows_; }
  std::size_t cols() const { return cols_; }
  std::size_t groups() const { return groups_; }  // per row
  const std::uint8_t* nibbles() const { return nibbles_.data(); }
  const bf16* scales() const { return scales_.data(); }
  // Device bytes the GEMV streams per call: nibbles and scales.
  std::size_t bytes() const { return rows_ * groups_ * (kGroupBytes + sizeof(bf16)); }

 private:
  std::size_t rows_ = 0, cols_ = 0, groups_ = 0;
  DeviceBuffer<std::uint8_t> nibbles_;
  DeviceBuffer<bf16> scales_;
};

}  // namespace recurrent_depth::hip
