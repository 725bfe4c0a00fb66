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
// A round is a series of forwards (begin, then next_input/next_options and take until take says
// the round is over), so that they can share batches with other sequences' forwards; run() does
// one whole round by itself.
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
  SpeculativeRound(const Model& model, typename Model::SessionType& session, Sampler& sampler,
                   SpeculativeOptions options, std::optional<int> steps, StateInit init)
      : model_(model),
        session_(session),
        sampler_(sampler),
        options_(options),
        steps_(steps.value_or(model.config().mean_recurrence)),
        init_(init) {
    options_.validate();
  }

  // Starts a round. history: the tokens so far (for the repetition penalty), its last one
  // pending: not in the cache yet. At most `room` tokens are produced (room >= 1).
  void begin(std::span<const std::int32_t> history, std::size_t room) {
    require(!history.empty() && room >= 1, "speculative: no pending token or no room");
    pending_position_ = session_.cache.length();
    history_size_ = history.size();
    lookahead_ = std::min(std::size_t(options_.lookahead), room - 1);
    result_ = {};
    result_.steps = steps_;
    result_.drafted = lookahead_;
    // sequence = [x0, d0, .., d(L-1)]; context = history then drafts (repetition penalty).
    context_.assign(history.begin(), history.end());
    sequence_.assign(1, history.back());
  }

  // The forward the round needs next: a draft of one token at D iterations while drafting, then
  // the verification of the whole sequence at full depth.
  std::span<const std::int32_t> next_input() const {
    if (verifying()) return sequence_;
    return {&sequence_.back(), 1};
  }
  ForwardOptions next_options() const {
    return verifying() ? options(steps_, true) : options(options_.draft_steps, false);
  }

  // Takes the result of the forward next_input() asked for; true when the round is over and
  // result() holds its tokens (the cache then holds x0 and the accepted drafts).
  bool take(const ForwardResult& forward) {
    tally(result_, forward);
    if (!verifying()) {
      const std::int32_t token = sampler_.sample(forward.logits.row_span(0), context_);
      sequence_.push_back(token);
      context_.push_back(token);
      if (verifying()) session_.cache.truncate(pending_position_);  // the drafts' entries go
      return false;
    }
    context_.resize(history_size_);
    for (std::size_t i = 0; i <= lookahead_; ++i) {
      const std::span<const float> logits = forward.logits.row_span(i);
      const std::int32_t chosen = sampler_.sample(logits, context_);
      const bool has_draft = i < lookahead_;
      if (has_draft && (chosen == sequence_[i + 1] || close_enough(logits, sequence_[i + 1]))) {
        result_.tokens.push_back(sequence_[i + 1]);
        context_.push_back(sequence_[i + 1]);
        ++result_.accepted;
        continue;
      }
      result_.tokens.push_back(chosen);
      break;
    }
    session_.cache.truncate(pending_position_ + result_.accepted + 1);
    return true;
  }

  const SpeculativeResult& result() const { return result_; }

  // One whole round, its forwards run one after the other.
  SpeculativeResult run(std::span<const std::int32_t> history, std::size_t room) {
    begin(history, room);
    while (!take(model_.forward(session_, next_input(), next_options()))) {
    }
    return result_;
  }

 private:
  ForwardOptions options(int steps, bool all_logits) const {
    ForwardOptions forward;
    forward.steps = steps;
    forward.init = init_;
    forward.all_logits = all_logits;
    return forward;
  }

  // All drafts made: the next forward verifies them.
  bool verifying() const { return sequence_.size() > lookahead_; }

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
  typename Model::SessionType& session_;
  Sampler& sampler_;
  SpeculativeOptions options_;
  int steps_;
  StateInit init_;
  std::size_t pending_position_ = 0, history_size_ = 0, lookahead_ = 0;
  std::vector<std::int32_t> sequence_, context_;
  SpeculativeResult result_;
};

}  // namespace recurrent_depth
