// Choosing the next token from a row of logits: greedy argmax, or a seeded sampler chain applied
// in the usual order: repetition penalty -> temperature -> top-k -> top-p -> min-p -> draw.
// Temperature 0 means greedy (after the repetition penalty).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <numeric>
#include <span>
#include <vector>

#include "../core/error.hpp"
#include "../core/random.hpp"

namespace recurrent_depth {

inline std::int32_t argmax(std::span<const float> logits) {
  std::size_t best = 0;
  for (std::size_t i = 1; i < logits.size(); ++i)
    if (logits[i] > logits[best]) best = i;
  return static_cast<std::int32_t>(best);
}

struct SamplingOptions {
  float temperature = 0.0f;         // 0: greedy
  int top_k = 0;                    // 0: off
  float top_p = 1.0f;               // 1: off
  float min_p = 0.0f;               // 0: off; keeps p >= min_p * p_max
  float repetition_penalty = 1.0f;  // 1: off; > 1 discourages tokens already in the history

  bool greedy() const { return temperature == 0.0f; }
  void validate() const {
    require(std::isfinite(temperature) && temperature >= 0.0f, "sampling: temperature is ",
            temperature, ", expected a number >= 0");
    require(top_k >= 0, "sampling: top_k is ", top_k, ", expected >= 0 (0 turns it off)");
    require(top_p > 0.0f && top_p <= 1.0f, "sampling: top_p is ", top_p, ", expected 0 < p <= 1");
    require(min_p >= 0.0f && min_p <= 1.0f, "sampling: min_p is ", min_p, ", expected 0 <= p <= 1");
    require(std::isfinite(repetition_penalty) && repetition_penalty > 0.0f,
            "sampling: repetition_penalty is ", repetition_penalty, ", expected a number > 0");
  }
};

class Sampler {
 public:
  explicit Sampler(SamplingOptions options = {}, std::uint64_t seed = 0)
      : options_(options), rng_(seed) {
    options_.validate();
  }

  const SamplingOptions& options() const { return options_; }

  // history: the tokens seen so far (prompt and generated), for the repetition penalty.
  std::int32_t sample(std::span<const float> logits, std::span<const std::int32_t> history = {}) {
    scores_.assign(logits.begin(), logits.end());
    if (options_.repetition_penalty != 1.0f) {  // each distinct token once, as in HF
      seen_.assign(history.begin(), history.end());
      std::sort(seen_.begin(), seen_.end());
      seen_.erase(std::unique(seen_.begin(), seen_.end()), seen_.end());
      for (std::int32_t id : seen_)
        if (id >= 0 && std::size_t(id) < scores_.size()) {
          float& s = scores_[std::size_t(id)];
          s = s > 0 ? s / options_.repetition_penalty : s * options_.repetition_penalty;
        }
    }
    if (options_.greedy()) return argmax(scores_);

    // Candidates sorted by score, best first; cut by top-k.
    order_.resize(scores_.size());
    std::iota(order_.begin(), order_.end(), 0);
    const std::size_t k =
        options_.top_k > 0 ? std::min<std::size_t>(options_.top_k, order_.size()) : order_.size();
    const auto better = [&](std::int32_t a, std::int32_t b) {
      return scores_[std::size_t(a)] > scores_[std::size_t(b)] ||
             (scores_[std::size_t(a)] == scores_[std::size_t(b)] && a < b);
    };
    std::partial_sort(order_.begin(), order_.begin() + std::ptrdiff_t(k), order_.end(), better);
    order_.resize(k);

    // Probabilities at the temperature, then top-p and min-p cuts (always keep the best).
    probabilities_.resize(k);
    const double top = scores_[std::size_t(order_[0])];
    double total = 0.0;
    for (std::size_t i = 0; i < k; ++i)
      total += probabilities_[i] =
          std::exp((scores_[std::size_t(order_[i])] - top) / options_.temperature);
    std::size_t kept = k;
    if (options_.top_p < 1.0f) {
      double cumulative = 0.0;
      for (std::size_t i = 0; i < k; ++i) {
        cumulative += probabilities_[i] / total;
        if (cumulative >= options_.top_p) {
          kept = i + 1;
          break;
        }
      }
    }
    if (options_.min_p > 0.0f) {
      std::size_t i = 1;
      while (i < kept && probabilities_[i] >= options_.min_p * probabilities_[0]) ++i;
      kept = i;
    }
    double kept_total = 0.0;
    for (std::size_t i = 0; i < kept; ++i) kept_total += probabilities_[i];
    double u = rng_.uniform() * kept_total;
    for (std::size_t i = 0; i < kept; ++i) {
      u -= probabilities_[i];
      if (u < 0) return order_[i];
    }
    return order_[kept - 1];
  }

 private:
  SamplingOptions options_;
  Rng rng_;
  std::vector<float> scores_;
  std::vector<std::int32_t> order_;
  std::vector<double> probabilities_;
  std::vector<std::int32_t> seen_;
};

}  // namespace recurrent_depth
