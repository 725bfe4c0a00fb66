// Weight storage formats as types (F32, BF16) and the one place where a runtime choice of format
// becomes a template instantiation: with_weight_format(format, visitor).
#pragma once

#include <string>
#include <string_view>

#include "dtype.hpp"
#include "error.hpp"

namespace recurrent_depth {

// Precision policies: how matmul weights are stored. Activations are always float32.
struct F32 {
  using Storage = float;
  static constexpr std::string_view name = "f32";
};
struct BF16 {
  using Storage = bf16;
  static constexpr std::string_view name = "bf16";
};

enum class WeightFormat { f32, bf16 };

inline WeightFormat parse_weight_format(std::string_view text) {
  if (text == "f32") return WeightFormat::f32;
  if (text == "bf16") return WeightFormat::bf16;
  fail("weights: unknown format '", text, "', expected f32 or bf16");
}

inline std::string_view weight_format_name(WeightFormat format) {
  return format == WeightFormat::f32 ? F32::name : BF16::name;
}

// Calls visitor(F32{}) or visitor(BF16{}) for the runtime format.
template <class Visitor>
decltype(auto) with_weight_format(WeightFormat format, Visitor&& visitor) {
  switch (format) {
    case WeightFormat::bf16: return visitor(BF16{});
    case WeightFormat::f32: break;
  }
  return visitor(F32{});
}

}  // namespace recurrent_depth
