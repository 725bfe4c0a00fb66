// Tensor names of Huginn checkpoints (Hugging Face `RavenForCausalLM`), in one place.
#pragma once

#include <string>

namespace recurrent_depth::names {

inline constexpr const char* kEmbedding = "transformer.wte";
inline constexpr const char* kFinalNorm = "transformer.ln_f";
inline constexpr const char* kAdapter = "transformer.adapter";
inline constexpr const char* kPrelude = "transformer.prelude";
inline constexpr const char* kCore = "transformer.core_block";
inline constexpr const char* kCoda = "transformer.coda";

// "transformer.prelude.3"
inline std::string block(const char* stage, int index) {
  return std::string(stage) + "." + std::to_string(index);
}

}  // namespace recurrent_depth::names
