// Choosing the next token from a row of logits. Greedy: the first index of the maximum.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace recurrent_depth {

inline std::int32_t argmax(std::span<const float> logits) {
  std::size_t best = 0;
  for (std::size_t i = 1; i < logits.size(); ++i)
    if (logits[i] > logits[best]) best = i;
  return static_cast<std::int32_t>(best);
}

}  // namespace recurrent_depth
