// The number format of a KV cache's entries: float32, or bf16 (keys and values rounded to nearest
// even when written, read back as floats by attention: half the bytes that decode streams per
// cached token, and half the memory). A model's sessions default to bf16 for quantised weights
// (INT8, Q4), which move its outputs far more than bf16 entries do, and to float32 for F32 and
// BF16 weights, whose answers stay exact (tests/test_kv_format.cpp states the bounds).
//
// Storage: a slot keeps each entry's row in 32-bit words, `width` floats or `width` bf16 values
// packed two to a word (kv_words_per_row), so that the backends' Memory moves rows of either
// format with the same row copies and gathers.
#pragma once

#include <cstddef>
#include <string_view>
#include <type_traits>

#include "../core/dtype.hpp"
#include "../core/error.hpp"
#include "../core/precision.hpp"
#include "../core/tensor.hpp"

namespace recurrent_depth {

enum class KvFormat { f32, bf16 };

// The format of a model's sessions when their rule names none: bf16 for the quantised weights
// (INT8, Q4); float32 for F32 and BF16, exact for released (bf16) checkpoints.
template <class Precision>
inline constexpr KvFormat default_kv_format_for =
    std::is_same_v<Precision, INT8> || std::is_same_v<Precision, Q4> ? KvFormat::bf16
                                                                     : KvFormat::f32;

inline KvFormat parse_kv_format(std::string_view text) {
  if (text == "f32") return KvFormat::f32;
  if (text == "bf16") return KvFormat::bf16;
  fail("KV format: unknown format '", text, "', expected f32 or bf16");
}

inline std::string_view kv_format_name(KvFormat format) {
  return format == KvFormat::bf16 ? "bf16" : "f32";
}

// 32-bit words that hold one row of `width` numbers in `format`.
inline std::size_t kv_words_per_row(std::size_t width, KvFormat format) {
  return format == KvFormat::bf16 ? (width + 1) / 2 : width;
}

// Rows of `words` 32-bit words seen as rows of `width` numbers of type T (float or bf16).
template <class T, class Word>
auto rows_as(MatrixView<Word> words, std::size_t width) {
  static_assert(sizeof(Word) == 4 && sizeof(float) % sizeof(T) == 0);
  using Element = std::conditional_t<std::is_const_v<Word>, const T, T>;
  constexpr std::size_t per_word = sizeof(float) / sizeof(T);
  return MatrixView<Element>(reinterpret_cast<Element*>(words.data), words.rows, width,
                             words.stride * per_word);
}

}  // namespace recurrent_depth
