// Initial recurrent state policies and the runtime choice between them. Huginn draws each entry
// from a normal of std sqrt(2/5) truncated at 3 std (the reference: trunc_normal with std
// sqrt(2/(5h)), then scaled by the embedding scale sqrt(h)).
#pragma once

#include <cmath>

#include "../core/random.hpp"
#include "../core/tensor.hpp"

namespace recurrent_depth {

enum class StateInit {
  zero,    // deterministic: s0 = 0
  random,  // drawn by the core's StateInit policy from the session's seeded generator
  given,   // supplied by the caller (ForwardOptions::initial_state)
};

struct TruncatedNormalState {
  static constexpr double kStd = 0.6324555320336759;  // sqrt(2/5)
  static constexpr double kCut = 3.0;                 // in standard deviations

  static void fill(MatrixView<float> state, Rng& rng) {
    for (std::size_t r = 0; r < state.rows; ++r)
      for (std::size_t c = 0; c < state.cols; ++c) {
        double z = rng.normal();
        while (std::abs(z) > kCut) z = rng.normal();
        state(r, c) = static_cast<float>(z * kStd);
      }
  }
};

}  // namespace recurrent_depth
