// Weight storage formats as types (F32, BF16, INT8) and the one place where a runtime choice of
// format becomes a template instantiation: with_weight_format(format, visitor).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "dtype.hpp"
#include "error.hpp"

namespace recurrent_depth {

// Precision policies: how matmul weights are stored (Storage) and read from a checkpoint for
// conversion (Source). Activations are always float32.
struct F32 {
  using Storage = float;
  using Source = float;
  static constexpr std::string_view name = "f32";
};
struct BF16 {
  using Storage = bf16;
  using Source = bf16;
  static constexpr std::string_view name = "bf16";
};
// Symmetric int8 with one float scale per weight row (max |w| / 127), quantised from float; the
// matmuls quantise their activations per position too (backends/cpu/linear_int8.hpp).
struct INT8 {
  using Storage = std::int8_t;
  using Source = float;
  static constexpr std::string_view name = "int8";
};

enum class WeightFormat { f32, bf16, int8 };

inline WeightFormat parse_weight_format(std::string_view text) {
  if (text == "f32") return WeightFormat::f32;
  if (text == "bf16") return WeightFormat::bf16;
  if (text == "int8") return WeightFormat::int8;
  fail("weights: unknown format '", text, "', expected f32, bf16 or int8");
}

inline std::string_view weight_format_name(WeightFormat format) {
  switch (format) {
    case WeightFormat::bf16:
      return BF16::name;
    case WeightFormat::int8:
      return INT8::name;
    case WeightFormat::f32:
      break;
  }
  return F32::name;
}

// Calls visitor(F32{}), visitor(BF16{}) or visitor(INT8{}) for the runtime format.
template <class Visitor>
decltype(auto) with_weight_format(WeightFormat format, Visitor&& visitor) {
  switch (format) {
    case WeightFormat::bf16:
      return visitor(BF16{});
    case WeightFormat::int8:
      return visitor(INT8{});
    case WeightFormat::f32:
      break;
  }
  return visitor(F32{});
}

}  // namespace recurrent_depth
