// Test support: runs of a model that the golden tests, the feature tests and the HIP model tests
// share, for any backend (a model's SessionType, results on the host).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "recurrent_depth/core/random.hpp"
#include "recurrent_depth/generate/exit_criteria.hpp"
#include "recurrent_depth/generate/generate.hpp"
#include "recurrent_depth/model/recurrent_depth_model.hpp"

namespace recurrent_depth::testing {

// n token ids drawn uniformly from [0, vocab).
inline std::vector<std::int32_t> random_ids(std::size_t n, int vocab, std::uint64_t seed) {
  Rng rng(seed);
  std::vector<std::int32_t> ids(n);
  for (auto& id : ids) id = static_cast<std::int32_t>(rng.uniform() * vocab);
  return ids;
}

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

// Early exit by latent difference at the median difference of a 6-token run at r = 5 that never
// stops: some tokens of a run at r >= 3 stop early, others do not.
template <class Model>
ExitOptions median_latent_diff_exit(const Model& model) {
  ExitOptions exit{ExitCriterion::latent_diff, -1.0};
  CriterionExit probe(exit);
  auto session = model.new_session();
  ForwardOptions options;
  options.steps = 5;
  options.exit = &probe;
  model.forward(session, random_ids(6, model.config().vocab_size, 79), options);
  std::vector<double> values;
  for (const auto& token : probe.values()) values.insert(values.end(), token.begin(), token.end());
  std::nth_element(values.begin(), values.begin() + values.size() / 2, values.end());
  exit.threshold = values[values.size() / 2];
  return exit;
}

// Three sequences, each with its own cache stored by `rule` (session seed = its index) holding 0, 5
// and 2 earlier tokens, then 4, 1 and 6 new tokens at r = 3, 4 and 5, with early exit by `exit`
// when given: run in one forward_batch (batched) or each alone.
struct SequencesRun {
  std::vector<ForwardResult> results;      // of the new tokens
  std::vector<std::size_t> cache_lengths;  // after them
};

template <class Model>
SequencesRun run_three_sequences(const Model& model, CacheRule rule, const ExitOptions* exit,
                                 bool batched) {
  const int vocab = model.config().vocab_size;
  const std::size_t cached[] = {0, 5, 2}, fresh[] = {4, 1, 6};
  std::vector<typename Model::SessionType> sessions;
  std::vector<std::vector<std::int32_t>> ids;
  std::vector<CriterionExit> exits;
  for (std::size_t i = 0; i < 3; ++i) {
    sessions.push_back(model.new_session(i, rule));
    if (cached[i] > 0) model.forward(sessions[i], random_ids(cached[i], vocab, 80 + i));
    ids.push_back(random_ids(fresh[i], vocab, 90 + i));
    if (exit) exits.emplace_back(*exit);
  }
  std::vector<typename Model::BatchItemType> items;
  for (std::size_t i = 0; i < 3; ++i) {
    ForwardOptions options;
    options.steps = int(3 + i);
    options.exit = exit ? &exits[i] : nullptr;
    items.push_back({&sessions[i], ids[i], options});
  }
  SequencesRun run;
  if (batched) {
    run.results = model.forward_batch(items);
  } else {
    for (const auto& item : items)
      run.results.push_back(model.forward(*item.session, item.ids, item.options));
  }
  for (const auto& session : sessions) run.cache_lengths.push_back(session.cache.length());
  return run;
}

}  // namespace recurrent_depth::testing
