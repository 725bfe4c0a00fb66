// Generation loop: prefill the prompt through the KV cache, then one token at a time, each with r
// core iterations from the chosen initial state; stops at max_new_tokens or a stop id. A callback
// sees every new token as it is produced (for streaming).
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
#include "sampling.hpp"

namespace recurrent_depth {

struct GenerationOptions {
  int max_new_tokens = 32;
  std::optional<int> steps;             // core iterations per token; default mean_recurrence
  StateInit init = StateInit::zero;     // zero or random (seeded by the session)
  std::vector<std::int32_t> stop_ids;   // generation ends after producing one of these
};

struct GeneratedToken {
  std::int32_t id;
  int steps;       // core iterations used for the forward that produced it
  double seconds;  // wall time of that forward
};

using TokenCallback = std::function<void(const GeneratedToken&)>;

template <class Model>
std::vector<GeneratedToken> generate_greedy(const Model& model, Session& session,
                                            std::span<const std::int32_t> prompt,
                                            const GenerationOptions& options,
                                            const TokenCallback& on_token = {}) {
  require(options.max_new_tokens >= 0, "generate: max_new_tokens is ", options.max_new_tokens,
          ", expected >= 0");
  require(options.init != StateInit::given, "generate: the initial state must be zero or random");
  ForwardOptions forward_options;
  forward_options.steps = options.steps;
  forward_options.init = options.init;
  forward_options.all_logits = false;
  const int steps = options.steps.value_or(model.config().mean_recurrence);

  std::vector<GeneratedToken> generated;
  std::span<const std::int32_t> input = prompt;
  std::int32_t last = 0;
  while (static_cast<int>(generated.size()) < options.max_new_tokens) {
    const auto start = std::chrono::steady_clock::now();
    const ForwardResult result = model.forward(session, input, forward_options);
    const std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - start;
    last = argmax({result.logits.row(0), result.logits.cols()});
    generated.push_back({last, steps, elapsed.count()});
    if (on_token) on_token(generated.back());
    if (std::find(options.stop_ids.begin(), options.stop_ids.end(), last) != options.stop_ids.end())
      break;
    input = std::span<const std::int32_t>(&last, 1);
  }
  return generated;
}

}  // namespace recurrent_depth
