// Test support: runs of a model that the golden tests, the feature tests and the HIP model tests
// share, for any backend (a model's SessionType, results on the host).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "recurrent_depth/generate/generate.hpp"
#include "recurrent_depth/model/recurrent_depth_model.hpp"

namespace recurrent_depth::testing {

// Logits of the first `prefill` ids' last row (one pass), then of each further id run one at a
// time through `session`'s cache: [ids - prefill + 1, vocab].
template <class Model>
Matrix<float> prefill_then_decode(const Model& model, typename Model::SessionType& session,
                                  std::span<const std::int32_t> ids, std::size_t prefill) {
  const ForwardResult first = model.forward(session, ids.first(prefill));
  Matrix<float> logits(ids.size() - prefill + 1, model.vocab_rows());
  std::copy_n(first.logits.row(prefill - 1), logits.cols(), logits.row(0));
  for (std::size_t t = prefill; t < ids.size(); ++t) {
    const ForwardResult next = model.forward(session, ids.subspan(t, 1));
    std::copy_n(next.logits.row(0), logits.cols(), logits.row(t - prefill + 1));
  }
  return logits;
}

struct DecodeRun {
  Matrix<float> logits;    // [ids, vocab]
  std::vector<int> steps;  // iterations each token ran
};

// Every id run alone through a cache stored by `rule` (zero initial state, at most `steps`
// iterations), optionally with early exit.
template <class Model>
DecodeRun decode_tokens(const Model& model, std::span<const std::int32_t> ids, CacheRule rule,
                        int steps, ExitDecider* exit) {
  auto session = model.new_session(0, rule);
  DecodeRun run{Matrix<float>(ids.size(), model.vocab_rows()), {}};
  ForwardOptions options;
  options.steps = steps;
  options.exit = exit;
  for (std::size_t t = 0; t < ids.size(); ++t) {
    const ForwardResult result = model.forward(session, ids.subspan(t, 1), options);
    std::copy_n(result.logits.row(0), run.logits.cols(), run.logits.row(t));
    run.steps.push_back(result.steps.front());
  }
  return run;
}

// The ids generate() gives after `prompt` in a new session.
template <class Model>
std::vector<std::int32_t> generated_tokens(const Model& model, std::span<const std::int32_t> prompt,
                                           const GenerationOptions& options) {
  auto session = model.new_session();
  return generate(model, session, prompt, options).ids();
}

}  // namespace recurrent_depth::testing
