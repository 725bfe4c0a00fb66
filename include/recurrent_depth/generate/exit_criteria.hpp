// Per-token early exit criteria (the paper's and its reference code's definitions): after each
// core iteration a value is computed per token and the token stops when it falls below the
// threshold (argmax stability: when the count of unchanged argmaxes reaches it).
//   kl                KL(previous || current) of the next-token distributions (first: uniform)
//   minp-kl           the same on min-p filtered distributions (p < 0.1 p_max set to 1/V)
//   entropy-diff      |H(current) - H(previous)| (previous entropy starts at 100)
//   latent-diff       ||s_i - s_{i-1}|| / ||s_i|| on the raw state
//   cosine            1 - cos(s_i, s_{i-1}) on the raw state
//   argmax-stability  consecutive steps whose argmax equals the previous step's
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "../core/error.hpp"
#include "../model/exit_decider.hpp"
#include "sampling.hpp"

namespace recurrent_depth {

enum class ExitCriterion { kl, minp_kl, entropy_diff, latent_diff, cosine, argmax_stability };

inline constexpr std::string_view kExitCriterionNames[] = {
    "kl", "minp-kl", "entropy-diff", "latent-diff", "cosine", "argmax-stability"};

inline std::string_view exit_criterion_name(ExitCriterion c) {
  return kExitCriterionNames[static_cast<int>(c)];
}

inline ExitCriterion parse_exit_criterion(std::string_view name) {
  for (int i = 0; i < 6; ++i)
    if (kExitCriterionNames[i] == name) return static_cast<ExitCriterion>(i);
  fail("exit criterion: unknown name '", name,
       "', expected kl, minp-kl, entropy-diff, latent-diff, cosine or argmax-stability");
}

struct ExitOptions {
  ExitCriterion criterion = ExitCriterion::kl;
  double threshold = 5e-4;
  int min_steps = 1;    // never stop before this many iterations
  int check_every = 1;  // test after every n-th iteration only

  void validate() const {
    require(std::isfinite(threshold), "exit threshold: ", threshold, " is not a finite number");
    require(min_steps >= 1, "exit: min_steps is ", min_steps, ", expected >= 1");
    require(check_every >= 1, "exit: check_every is ", check_every, ", expected >= 1");
  }
};

// The criteria as an ExitDecider; keeps each token's history and the value of every check.
class CriterionExit final : public ExitDecider {
 public:
  explicit CriterionExit(ExitOptions options) : options_(options) { options_.validate(); }

  const ExitOptions& options() const { return options_; }
  // Values computed for each token of the last forward, one per check.
  const std::vector<std::vector<double>>& values() const { return values_; }

  bool needs_logits() const override {
    return options_.criterion != ExitCriterion::latent_diff &&
           options_.criterion != ExitCriterion::cosine;
  }
  bool needs_previous_state() const override { return !needs_logits(); }
  void begin(std::size_t rows) override {
    values_.assign(rows, {});
    previous_log_probs_.assign(rows, {});
    previous_entropy_.assign(rows, 100.0);
    previous_argmax_.assign(rows, -1);
    stable_count_.assign(rows, 0);
  }
  bool checks_after(int steps) const override {
    return steps >= options_.min_steps && steps % options_.check_every == 0;
  }
  bool stop(std::size_t row, int, std::span<const float> previous_state,
            std::span<const float> state, std::span<const float> logits) override {
    double value = 0.0;
    switch (options_.criterion) {
      case ExitCriterion::kl:
      case ExitCriterion::minp_kl:
        value = kl_step(row, logits);
        break;
      case ExitCriterion::entropy_diff:
        value = entropy_step(row, logits);
        break;
      case ExitCriterion::latent_diff:
        value = latent_difference(previous_state, state);
        break;
      case ExitCriterion::cosine:
        value = cosine_distance(previous_state, state);
        break;
      case ExitCriterion::argmax_stability:
        value = argmax_step(row, logits);
        break;
    }
    values_[row].push_back(value);
    if (options_.criterion == ExitCriterion::argmax_stability) return value >= options_.threshold;
    return value < options_.threshold;
  }

 private:
  // log-softmax in double; with min-p, probabilities below 0.1 p_max become 1/V first.
  void log_probabilities(std::span<const float> logits, std::vector<double>& out) const {
    const double top = *std::max_element(logits.begin(), logits.end());
    double total = 0.0;
    for (float l : logits) total += std::exp(l - top);
    out.resize(logits.size());
    const double log_total = std::log(total);
    for (std::size_t i = 0; i < logits.size(); ++i) out[i] = logits[i] - top - log_total;
    if (options_.criterion != ExitCriterion::minp_kl) return;
    const double floor = 1.0 / static_cast<double>(logits.size());
    const double p_max = std::exp(*std::max_element(out.begin(), out.end()));
    double sum = 0.0;
    for (double& v : out) {
      const double p = std::exp(v);
      sum += (v = p < 0.1 * p_max ? floor : p);
    }
    for (double& v : out) v = std::log(v / sum);
  }

  double kl_step(std::size_t row, std::span<const float> logits) {
    log_probabilities(logits, current_);
    std::vector<double>& previous = previous_log_probs_[row];
    if (previous.empty()) previous.assign(current_.size(), -std::log(double(current_.size())));
    double kl = 0.0;
    for (std::size_t i = 0; i < current_.size(); ++i)
      kl += std::exp(previous[i]) * (previous[i] - current_[i]);
    previous.swap(current_);
    return kl;
  }

  double entropy_step(std::size_t row, std::span<const float> logits) {
    log_probabilities(logits, current_);
    double entropy = 0.0;
    for (double lp : current_) entropy -= std::exp(lp) * lp;
    const double difference = std::abs(entropy - previous_entropy_[row]);
    previous_entropy_[row] = entropy;
    return difference;
  }

  double argmax_step(std::size_t row, std::span<const float> logits) {
    const std::int32_t best = argmax(logits);
    stable_count_[row] = best == previous_argmax_[row] ? stable_count_[row] + 1 : 0;
    previous_argmax_[row] = best;
    return stable_count_[row];
  }

  static double latent_difference(std::span<const float> previous, std::span<const float> state) {
    double diff = 0.0, norm = 0.0;
    for (std::size_t i = 0; i < state.size(); ++i) {
      diff += (double(state[i]) - previous[i]) * (double(state[i]) - previous[i]);
      norm += double(state[i]) * state[i];
    }
    return std::sqrt(diff) / std::sqrt(norm);
  }

  static double cosine_distance(std::span<const float> previous, std::span<const float> state) {
    double dot = 0.0, a = 0.0, b = 0.0;
    for (std::size_t i = 0; i < state.size(); ++i) {
      dot += double(state[i]) * previous[i];
      a += double(state[i]) * state[i];
      b += double(previous[i]) * previous[i];
    }
    constexpr double kEps = 1e-8;  // torch.cosine_similarity's
    return 1.0 - dot / std::max(std::sqrt(a) * std::sqrt(b), kEps);
  }

  ExitOptions options_;
  std::vector<std::vector<double>> values_;
  std::vector<std::vector<double>> previous_log_probs_;
  std::vector<double> previous_entropy_;
  std::vector<std::int32_t> previous_argmax_;
  std::vector<int> stable_count_;
  std::vector<double> current_;
};

}  // namespace recurrent_depth
