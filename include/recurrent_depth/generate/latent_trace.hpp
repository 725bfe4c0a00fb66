// Latent dynamics of a forward pass (the paper's section 7): for every token and core iteration
// i = 1..r, the raw state s_i's norm, its distance to s_{i-1} (s_0 is the initial state) and to
// the last state s_r, and what the state decodes to if the model stopped there (argmax token of
// ln_f -> coda -> ln_f -> head and its probability). Recorded through the exit hook, which sees
// every row after every iteration; optionally keeps the states themselves [T][r + 1][n_embd].
//
//   rd::LatentTrace trace = rd::trace_latents(model, session, ids, options);  // options.steps = 32
//   trace.tokens[t][i].distance_to_last   // token t after iteration i + 1
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "../core/error.hpp"
#include "../model/exit_decider.hpp"
#include "../model/recurrent_depth_model.hpp"
#include "sampling.hpp"

namespace recurrent_depth {

struct LatentStep {
  double norm = 0.0;                  // ||s_i||
  double distance_to_previous = 0.0;  // ||s_i - s_{i-1}||
  double distance_to_last = 0.0;      // ||s_i - s_r||
  std::int32_t argmax = 0;            // the token s_i decodes to
  double probability = 0.0;           // its probability
};

struct LatentTraceOptions {
  int steps = 1;             // core iterations r
  bool keep_states = false;  // fill LatentTrace::states
  StateInit init = StateInit::zero;
};

struct LatentTrace {
  std::vector<std::vector<LatentStep>> tokens;          // [T][r]
  std::vector<std::vector<std::vector<float>>> states;  // [T][r + 1][n_embd] with keep_states
  ForwardResult result;                                 // the forward's logits and latents
};

namespace detail {

// An exit decider that never exits early: it records each row's states and early decodes, and
// stops rows at `steps` (the forward's budget is one more, so that the last iteration is seen).
class LatentRecorder final : public ExitDecider {
 public:
  explicit LatentRecorder(int steps) : steps_(steps) {}
  bool needs_logits() const override { return true; }
  bool needs_previous_state() const override { return true; }
  void begin(std::size_t rows) override {
    states_.assign(rows, {});
    decodes_.assign(rows, {});
  }
  bool checks_after(int) const override { return true; }
  bool stop(std::size_t row, int steps, std::span<const float> previous_state,
            std::span<const float> state, std::span<const float> logits) override {
    if (states_[row].empty())
      states_[row].emplace_back(previous_state.begin(), previous_state.end());
    states_[row].emplace_back(state.begin(), state.end());
    const std::int32_t best = argmax(logits);
    double sum = 0.0;
    for (float l : logits) sum += std::exp(double(l) - double(logits[best]));
    decodes_[row].push_back({best, 1.0 / sum});
    return steps >= steps_;
  }

  std::vector<std::vector<std::vector<float>>> states_;                // [row][i][width], i = 0..r
  std::vector<std::vector<std::pair<std::int32_t, double>>> decodes_;  // [row][i - 1]

 private:
  int steps_;
};

// ||a - b||, or ||a|| without b.
inline double distance(std::span<const float> a, std::span<const float> b = {}) {
  double sum = 0.0;
  for (std::size_t k = 0; k < a.size(); ++k) {
    const double d = double(a[k]) - (b.empty() ? 0.0 : double(b[k]));
    sum += d * d;
  }
  return std::sqrt(sum);
}

}  // namespace detail

template <class Model>
LatentTrace trace_latents(const Model& model, typename Model::SessionType& session,
                          std::span<const std::int32_t> ids, const LatentTraceOptions& options) {
  require(options.steps >= 1, "latent trace: steps is ", options.steps, ", expected >= 1");
  detail::LatentRecorder recorder(options.steps);
  ForwardOptions forward;
  forward.steps = options.steps + 1;  // the recorder stops every row at options.steps
  forward.init = options.init;
  forward.exit = &recorder;
  LatentTrace trace;
  trace.result = model.forward(session, ids, forward);
  for (std::size_t t = 0; t < ids.size(); ++t) {
    const auto& states = recorder.states_[t];
    std::vector<LatentStep> steps;
    for (std::size_t i = 1; i < states.size(); ++i) {
      steps.push_back({detail::distance(states[i]), detail::distance(states[i], states[i - 1]),
                       detail::distance(states[i], states.back()),
                       recorder.decodes_[t][i - 1].first, recorder.decodes_[t][i - 1].second});
    }
    trace.tokens.push_back(std::move(steps));
  }
  if (options.keep_states) trace.states = std::move(recorder.states_);
  return trace;
}

}  // namespace recurrent_depth
