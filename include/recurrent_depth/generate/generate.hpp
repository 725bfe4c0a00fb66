// The generation loop: prefill the prompt through the KV cache, then one token at a time, each
// with up to r core iterations, optionally stopping early per token (ExitOptions) and starting
// from the previous token's final latent (continuous: warm start) instead of zero or noise.
// Tokens are chosen by the sampler chain; a callback sees each one as it is produced.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <vector>

#include "../core/error.hpp"
#include "../model/recurrent_depth_model.hpp"
#include "exit_criteria.hpp"
#include "sampling.hpp"

namespace recurrent_depth {

struct GenerationOptions {
  int max_new_tokens = 32;
  std::optional<int> steps;            // core iterations per token (at most, with exit)
  StateInit init = StateInit::zero;    // zero or random (seeded by the session)
  bool continuous = false;             // warm start from the previous token's final latent
  std::optional<ExitOptions> exit;     // per-token early exit while decoding
  SamplingOptions sampling;            // default: greedy
  std::uint64_t seed = 0;              // of the sampler
  std::vector<std::int32_t> stop_ids;  // generation ends after producing one of these

  void validate() const {
    require(max_new_tokens >= 0, "generate: max_new_tokens is ", max_new_tokens, ", expected >= 0");
    require(!steps || *steps >= 0, "generate: steps is ", steps.value_or(0), ", expected >= 0");
    require(init != StateInit::given, "generate: the initial state must be zero or random");
    sampling.validate();
    if (exit) exit->validate();
  }
};

struct GeneratedToken {
  std::int32_t id;
  int steps;                        // core iterations of the forward that produced it
  double seconds;                   // wall time of that forward
  std::vector<double> exit_values;  // the exit criterion's value after each checked iteration
};

using TokenCallback = std::function<void(const GeneratedToken&)>;

template <class Model>
std::vector<GeneratedToken> generate(const Model& model, Session& session,
                                     std::span<const std::int32_t> prompt,
                                     const GenerationOptions& options,
                                     const TokenCallback& on_token = {}) {
  options.validate();
  Sampler sampler(options.sampling, options.seed);
  std::optional<CriterionExit> exit;
  if (options.exit) exit.emplace(*options.exit);

  std::vector<std::int32_t> history(prompt.begin(), prompt.end());
  std::vector<GeneratedToken> generated;
  Matrix<float> warm_state;  // previous token's final latent, for continuous generation
  std::span<const std::int32_t> input = prompt;
  while (static_cast<int>(generated.size()) < options.max_new_tokens) {
    const bool decoding = !generated.empty();
    ForwardOptions forward;
    forward.steps = options.steps;
    forward.init = options.init;
    forward.all_logits = false;
    if (decoding && options.continuous) {
      forward.init = StateInit::given;
      forward.initial_state = warm_state.view();
    }
    if (decoding && exit) forward.exit = &*exit;

    const auto start = std::chrono::steady_clock::now();
    const ForwardResult result = model.forward(session, input, forward);
    const std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - start;

    const std::int32_t next = sampler.sample({result.logits.row(0), result.logits.cols()}, history);
    GeneratedToken token{next, result.steps.back(), elapsed.count(), {}};
    if (forward.exit) token.exit_values = exit->values().back();
    generated.push_back(std::move(token));
    history.push_back(next);
    if (on_token) on_token(generated.back());
    if (std::find(options.stop_ids.begin(), options.stop_ids.end(), next) !=
        options.stop_ids.end())
      break;
    if (options.continuous) {
      warm_state.resize(1, result.latents.cols());
      std::copy_n(result.latents.row(result.latents.rows() - 1), result.latents.cols(),
                  warm_state.row(0));
    }
    input = std::span<const std::int32_t>(&history.back(), 1);
  }
  return generated;
}

}  // namespace recurrent_depth
