// Self-speculative decoding: the model drafts with few core iterations and verifies at full depth.
// One round, with x0 the pending token (sampled, not yet in the cache, at position n):
//   draft   x0, d0, .., d(L-2) one at a time with D iterations, sampling d0 .. d(L-1); roll the
//           cache back to n
//   verify  [x0, d0, .., d(L-1)] in one causal pass at full depth R; row i gives token t_i
//   accept  d_i while t_i == d_i (or, with accept_ratio > 0, while the verified probability of d_i
//           is at least accept_ratio x the largest one); the round produces the accepted drafts
//           and then t_j, the verified token at the first rejection (or after the last draft)
//   keep    the cache for x0 and the accepted drafts: n + j + 1 positions
// Every produced token is thus a full-depth choice given full-depth caches: with greedy sampling
// (and accept_ratio 0) the tokens are exactly those of plain decoding at depth R, for the full and
// latest-m4 cache rules. A compressed cache (compress-sK) is not: in a multi-token pass an earlier
// token of the pass is seen at a shared slot through its entry of the current iteration, where
// one-token decoding would see its last one; the paper accepts this approximation.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "../core/error.hpp"
#include "../model/recurrent_depth_model.hpp"
#include "sampling.hpp"

namespace recurrent_depth {

struct SpeculativeOptions {
  int draft_steps = 4;        // D: core iterations of a draft token
  int lookahead = 8;          // L: tokens drafted per round
  double accept_ratio = 0.0;  // 0: accept exact matches only

  void validate() const {
    require(draft_steps >= 0, "speculative: draft_steps is ", draft_steps, ", expected >= 0");
    require(lookahead >= 1, "speculative: lookahead is ", lookahead, ", expected >= 1");
    require(std::isfinite(accept_ratio) && accept_ratio >= 0.0 && accept_ratio <= 1.0,
            "speculative: accept_ratio is ", accept_ratio, ", expected a number in [0, 1]");
  }
};

struct SpeculativeResult {
  std::vector<std::int32_t> tokens;  // the accepted drafts, then the verified token
  std::size_t drafted = 0, accepted = 0;
  std::size_t forwards = 0, core_iterations = 0;
  int steps = 0;  // verification depth R
};

template <class Model>
class SpeculativeRound {
 public:
  SpeculativeRound(const Model& model, Session& session, Sampler& sampler,
                   SpeculativeOptions options, std::optional<int> steps, StateInit init)
      : model_(model),
        session_(session),
        sampler_(sampler),
        options_(options),
        steps_(steps.value_or(model.config().mean_recurrence)),
        init_(init) {
    options_.validate();
  }

  // history: the tokens so far (for the repetition penalty), its last one pending: not in the
  // cache yet. At most `room` tokens are produced (room >= 1).
  SpeculativeResult run(std::span<const std::int32_t> history, std::size_t room) {
    KvCache& cache = session_.cache;
    const std::size_t pending_position = cache.length();
    require(!history.empty() && room >= 1, "speculative: no pending token or no room");
    const std::size_t lookahead = std::min(std::size_t(options_.lookahead), room - 1);
    SpeculativeResult result;
    result.steps = steps_;

    // Draft: sequence = [x0, d0, .., d(L-1)]; context = history then drafts (repetition penalty).
    context_.assign(history.begin(), history.end());
    sequence_.assign(1, history.back());
    for (std::size_t i = 0; i < lookahead; ++i) {
      const ForwardResult draft =
          model_.forward(session_, {&sequence_.back(), 1}, options(options_.draft_steps, false));
      tally(result, draft);
      const std::int32_t token = sampler_.sample(draft.logits.row_span(0), context_);
      sequence_.push_back(token);
      context_.push_back(token);
    }
    cache.truncate(pending_position);
    result.drafted = lookahead;

    // Verify all of them at full depth in one pass.
    const ForwardResult verified = model_.forward(session_, sequence_, options(steps_, true));
    tally(result, verified);
    context_.resize(history.size());
    for (std::size_t i = 0; i <= lookahead; ++i) {
      const std::span<const float> logits = verified.logits.row_span(i);
      const std::int32_t chosen = sampler_.sample(logits, context_);
      const bool has_draft = i < lookahead;
      if (has_draft && (chosen == sequence_[i + 1] || close_enough(logits, sequence_[i + 1]))) {
        result.tokens.push_back(sequence_[i + 1]);
        context_.push_back(sequence_[i + 1]);
        ++result.accepted;
        continue;
      }
      result.tokens.push_back(chosen);
      break;
    }
    cache.truncate(pending_position + result.accepted + 1);
    return result;
  }

 private:
  ForwardOptions options(int steps, bool all_logits) const {
    ForwardOptions forward;
    forward.steps = steps;
    forward.init = init_;
    forward.all_logits = all_logits;
    return forward;
  }

  static void tally(SpeculativeResult& result, const ForwardResult& forward) {
    ++result.forwards;
    for (int s : forward.steps) result.core_iterations += std::size_t(s);
  }

  // p(token) >= accept_ratio * p_max under the verified (raw) logits.
  bool close_enough(std::span<const float> logits, std::int32_t token) const {
    if (options_.accept_ratio <= 0.0) return false;
    const float top = *std::max_element(logits.begin(), logits.end());
    return std::exp(double(logits[std::size_t(token)]) - top) >= options_.accept_ratio;
  }

  const Model& model_;
  Session& session_;
  Sampler& sampler_;
  SpeculativeOptions options_;
  int steps_;
  StateInit init_;
  std::vector<std::int32_t> sequence_, context_;
};

}  // namespace recurrent_depth
