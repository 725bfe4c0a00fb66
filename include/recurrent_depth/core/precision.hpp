// Weight storage formats as types (F32, BF16, INT8, Q4) and the one place where a runtime choice of
// format becomes a template instantiation: with_weight_format(format, visitor).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>

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

// The storage of Q4: 4-bit values in groups of 32 along a row with a bf16 scale each (w = scale
// (q - 8)); a tag, no values of it exist: backends choose the packing (the CPU's:
// backends/cpu/packed_q4.hpp).
struct Q4Groups {};
// A backend's weight matrix for a storage: Dense<Storage> (float, bf16, int8), or Grouped4 (its
// packing of Q4Groups).
template <class Storage, template <class> class Dense, class Grouped4>
using StorageMatrix =
    std::conditional_t<std::is_same_v<Storage, Q4Groups>, Grouped4, Dense<Storage>>;
// 4-bit weights, quantised from float; the matmuls quantise their activations per position to 8
// bits as for int8 (backends/cpu/linear_q4.hpp).
struct Q4 {
  using Storage = Q4Groups;
  using Source = float;
  static constexpr std::string_view name = "q4";
};

// The storage of the embedding table (and output head) of a model whose matmuls use Precision: the
// same, except that Q4 keeps them in int8 (as llama.cpp keeps its output matrix above 4 bits). A
// 4-bit table would cost its rows at every input and every logit: on the test models it moves the
// logits 8% at r = 0 where int8 moves them 1%, for 3% more bytes per token at huginn-mini's size.
template <class Precision>
struct EmbeddingPrecisionOf {
  using type = Precision;
};
template <>
struct EmbeddingPrecisionOf<Q4> {
  using type = INT8;
};
template <class Precision>
using EmbeddingPrecision = typename EmbeddingPrecisionOf<Precision>::type;

enum class WeightFormat { f32, bf16, int8, q4 };

inline WeightFormat parse_weight_format(std::string_view text) {
  if (text == "f32") return WeightFormat::f32;
  if (text == "bf16") return WeightFormat::bf16;
  if (text == "int8") return WeightFormat::int8;
  if (text == "q4") return WeightFormat::q4;
  fail("weights: unknown format '", text, "', expected f32, bf16, int8 or q4");
}

inline std::string_view weight_format_name(WeightFormat format) {
  switch (format) {
    case WeightFormat::bf16:
      return BF16::name;
    case WeightFormat::int8:
      return INT8::name;
    case WeightFormat::q4:
      return Q4::name;
    case WeightFormat::f32:
      break;
  }
  return F32::name;
}

// Calls visitor(F32{}), visitor(BF16{}), visitor(INT8{}) or visitor(Q4{}) for the runtime format.
template <class Visitor>
decltype(auto) with_weight_format(WeightFormat format, Visitor&& visitor) {
  switch (format) {
    case WeightFormat::bf16:
      return visitor(BF16{});
    case WeightFormat::int8:
      return visitor(INT8{});
    case WeightFormat::q4:
      return visitor(Q4{});
    case WeightFormat::f32:
      break;
  }
  return visitor(F32{});
}

}  // namespace recurrent_depth
