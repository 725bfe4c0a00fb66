// Weight matrices [out, in] of the HIP backend in device memory: float, bf16, or int8 with one
// float scale per row (w = scale * stored). Row-major, each row padded with zeros to a whole
// number of 16-byte vectors (kVectorBytes) so the GEMV kernels stream every row with aligned
// 16-byte loads. Converted on the host exactly as the CPU backend converts (through
// cpu::PackedWeights: bf16 rounded to nearest even, int8 scale = max |w| / 127 and round to
// nearest even), then uploaded once: both backends hold the same stored values.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <type_traits>
#include <vector>

#include "../../core/dtype.hpp"
#include "../../core/tensor.hpp"
#include "../cpu/packed_weights.hpp"
#include "device_buffer.hpp"

namespace recurrent_depth::hip {

// Bytes of one vector load of the GEMV kernels; rows of weights (and of quantised activations) are
// padded to whole vectors.
inline constexpr std::size_t kVectorBytes = 16;

template <class W>
constexpr std::size_t padded_columns(std::size_t cols) {
  constexpr std::size_t per_vector = kVectorBytes / sizeof(W);
  return (cols + per_vector - 1) / per_vector * per_vector;
}

template <class W>
class DeviceWeights {
  static_assert(std::is_same_v<W, float> || std::is_same_v<W, bf16> ||
                    std::is_same_v<W, std::int8_t>,
                "HIP weights are float, bf16 or int8");

 public:
  static constexpr bool kScaled = std::is_same_v<W, std::int8_t>;

  // From row-major float or bf16 values [rows, cols] on the host.
  template <class Source>
  static DeviceWeights from_rows(std::span<const Source> source, std::size_t rows,
                                 std::size_t cols) {
    return from_view(cpu::rows_view(source, rows, cols, "DeviceWeights"));
  }
  template <class Source>
  static DeviceWeights from_view(ConstMatrixView<Source> source) {
    return from_packed(cpu::PackedWeights<W>::from_view(source));
  }
  // The stored values (and int8 row scales) of CPU-packed weights.
  static DeviceWeights from_packed(const cpu::PackedWeights<W>& packed) {
    DeviceWeights weights;
    weights.rows_ = packed.rows();
    weights.cols_ = packed.cols();
    weights.stride_ = padded_columns<W>(packed.cols());
    std::vector<W> staged(weights.rows_ * weights.stride_, W{});
    for (std::size_t r = 0; r < weights.rows_; ++r)
      for (std::size_t c = 0; c < weights.cols_; ++c)
        staged[r * weights.stride_ + c] = packed.value(r, c);
    weights.values_.resize(staged.size());
    weights.values_.upload(staged);
    if constexpr (kScaled) {
      weights.row_scales_.resize(weights.rows_);
      weights.row_scales_.upload(packed.scales());
    }
    return weights;
  }

  std::size_t rows() const { return rows_; }
  std::size_t cols() const { return cols_; }
  std::size_t stride() const { return stride_; }  // elements between rows: cols padded
  const W* data() const { return values_.data(); }
  const float* row_scales() const { return row_scales_.data(); }  // int8 only, else null
  // Device bytes the GEMV streams per call (padding included) plus the row scales.
  std::size_t bytes() const { return rows_ * stride_ * sizeof(W) + row_scales_.size() * 4; }

 private:
  std::size_t rows_ = 0, cols_ = 0, stride_ = 0;
  DeviceBuffer<W> values_;
  DeviceBuffer<float> row_scales_;  // int8 only
};

}  // namespace recurrent_depth::hip
