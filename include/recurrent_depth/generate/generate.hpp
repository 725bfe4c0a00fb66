// The generation loop: prefill the prompt through the KV cache, then produce tokens one at a time
// (each with up to r core iterations, optionally stopping early per token and starting from the
// previous token's final latent: continuous / warm start) or several at a time by self-speculative
// decoding (speculative.hpp). Tokens are chosen by the sampler chain; a callback sees each one as
// it is produced. Afterwards the cache holds every token but the last one produced, as in plain
// decoding, so a session can go on with another call.
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
#include "speculative.hpp"

namespace recurrent_depth {

struct GenerationOptions {
  int max_new_tokens = 32;
  std::optional<int> steps;                       // core iterations per token (at most, with exit)
  StateInit init = StateInit::zero;               // zero or random (seeded by the session)
  bool continuous = false;                        // warm start from the previous token's latent
  std::optional<ExitOptions> exit;                // per-token early exit while decoding
  std::optional<SpeculativeOptions> speculative;  // draft with few iterations, verify at `steps`
  SamplingOptions sampling;                       // default: greedy
  std::uint64_t seed = 0;                         // of the sampler
  std::vector<std::int32_t> stop_ids;             // generation ends after producing one of these

  void validate() const {
    require(max_new_tokens >= 0, "generate: max_new_tokens is ", max_new_tokens, ", expected >= 0");
    require(!steps || *steps >= 0, "generate: steps is ", steps.value_or(0), ", expected >= 0");
    require(init != StateInit::given, "generate: the initial state must be zero or random");
    sampling.validate();
    if (exit) exit->validate();
    if (!speculative) return;
    speculative->validate();
    require(!continuous,
            "generate: speculative decoding cannot warm-start (continuous): each "
            "drafted token's state would depend on the previous one's full depth");
    require(!exit,
            "generate: speculative decoding verifies at full depth; it does not combine "
            "with early exit");
  }
};

struct GeneratedToken {
  std::int32_t id;
  int steps;                        // core iterations of the forward that produced it
  double seconds;                   // wall time spent on it (a share of a speculative round)
  std::vector<double> exit_values;  // the exit criterion's value after each checked iteration
  bool drafted = false;             // a speculative draft that the verification accepted
};

struct GenerationStats {
  std::size_t prompt_tokens = 0;
  double prefill_seconds = 0.0, decode_seconds = 0.0;  // decode: every token after the first
  std::size_t forwards = 0;         // model calls (prefill, decode steps, drafts, verifications)
  std::size_t core_iterations = 0;  // summed over every token of every call
  std::size_t exit_probes = 0;      // exit checks that ran ln_f -> coda -> ln_f -> head
  std::size_t drafted = 0, accepted = 0;  // speculative drafts and those accepted
  std::size_t rounds = 0;                 // speculative draft + verify rounds
  double acceptance_rate() const { return drafted ? double(accepted) / double(drafted) : 0.0; }
};

struct Generation {
  std::vector<GeneratedToken> tokens;
  GenerationStats stats;

  std::vector<std::int32_t> ids() const {
    std::vector<std::int32_t> result;
    for (const GeneratedToken& t : tokens) result.push_back(t.id);
    return result;
  }
};

using TokenCallback = std::function<void(const GeneratedToken&)>;

namespace detail {

// Refuses, before any forward, a generation that would run past the model's context (block_size)
// or the session's KV cache limit in tokens. The last new token is never fed back: a prompt of P
// tokens and N new ones take P + N - 1 positions after those already cached.
template <class Memory>
void require_context_room(int block_size, const BasicKvCache<Memory>& cache, std::size_t prompt,
                          int max_new_tokens) {
  const std::size_t cached = cache.length(), context = std::size_t(block_size);
  const std::size_t limit = cache.limit().tokens;
  const std::size_t room = limit > 0 && limit < context ? limit : context;
  const char* bound = room < context ? "the session's KV cache limit" : "the model's context";
  const char* unit = room < context ? " tokens" : " positions (block_size)";
  if (cached + prompt > room) {
    fail("generate: the prompt of ", prompt, " tokens after ", cached, " cached ones exceeds ",
         bound, " of ", room, unit);
  }
  const std::size_t needed = cached + prompt + std::size_t(std::max(max_new_tokens, 1)) - 1;
  if (needed > room) {
    fail("generate: max_new_tokens ", max_new_tokens, " after a prompt of ", prompt, " tokens and ",
         cached, " cached ones needs ", needed, " positions, more than ", bound, " of ", room, unit,
         " (at most ", room - cached - prompt + 1, " new tokens fit)");
  }
}

}  // namespace detail

// One generation, one forward at a time: next_forward() says which forward it needs (its
// session, input tokens and options), take() consumes that forward's result (sampling, early-exit
// values, warm state, speculative rounds). generate() runs the forwards one by one; a server runs
// those of many generations together through forward_batch, each getting what it would alone.
// The object must stay where it is between next_forward() and take() (the options point into it).
template <class Model>
class GenerationSteps {
 public:
  GenerationSteps(const Model& model, typename Model::SessionType& session,
                  std::span<const std::int32_t> prompt, GenerationOptions options,
                  TokenCallback on_token = {})
      : session_(session),
        options_(std::move(options)),
        on_token_(std::move(on_token)),
        sampler_((options_.validate(), options_.sampling), options_.seed),
        history_(prompt.begin(), prompt.end()),
        cached_before_(session.cache.length()),
        start_(Clock::now()) {
    require(!prompt.empty(), "generate: the prompt is empty, expected at least one token");
    detail::require_context_room(model.config().block_size, session.cache, prompt.size(),
                                 options_.max_new_tokens);
    if (options_.exit) exit_.emplace(*options_.exit);
    if (options_.speculative)
      speculative_.emplace(model, session, sampler_, *options_.speculative, options_.steps,
                           options_.init);
    generation_.stats.prompt_tokens = prompt.size();
    done_ = options_.max_new_tokens == 0;
  }
  GenerationSteps(const GenerationSteps&) = delete;
  GenerationSteps& operator=(const GenerationSteps&) = delete;

  bool done() const { return done_; }
  const Generation& generation() const { return generation_; }

  // The forward this generation needs next (not done()). The first runs the prompt; then one
  // token at a time, or the drafts and verification of a speculative round.
  typename Model::BatchItemType next_forward() {
    step_start_ = Clock::now();
    if (speculative_ && prefilled_) {
      if (!in_round_) {
        speculative_->begin(history_,
                            std::size_t(options_.max_new_tokens) - generation_.tokens.size());
        round_start_ = step_start_;
        in_round_ = true;
      }
      return {&session_, speculative_->next_input(), speculative_->next_options()};
    }
    ForwardOptions& forward = forward_;
    forward.steps = options_.steps;
    forward.init = options_.init;
    forward.all_logits = false;
    forward.exit = prefilled_ && exit_ ? &*exit_ : nullptr;
    if (prefilled_ && options_.continuous) {
      forward.init = StateInit::given;
      forward.initial_state = warm_state_.view();
    }
    const std::span<const std::int32_t> input =
        prefilled_ ? std::span<const std::int32_t>(&history_.back(), 1) : history_;
    return {&session_, input, forward};
  }

  // Consumes the result of the forward next_forward() asked for.
  void take(const ForwardResult& result) {
    if (speculative_ && prefilled_) {
      if (speculative_->take(result)) finish_round();
    } else {
      plain_step(result);
    }
    if (!prefilled_) {
      generation_.stats.prefill_seconds = seconds_since(start_);
      prefilled_ = true;
    }
  }

  // The generation so far; the cache then holds every token but the last one produced.
  Generation finish() {
    generation_.stats.decode_seconds = seconds_since(start_) - generation_.stats.prefill_seconds;
    // Tokens produced past a stop are dropped; the cache then holds only the kept ones (after
    // what it held before this generation).
    session_.cache.truncate(
        std::min(session_.cache.length(), cached_before_ + history_.size() - 1));
    done_ = true;
    return std::move(generation_);
  }

 private:
  using Clock = std::chrono::steady_clock;
  static double seconds_since(Clock::time_point start) {
    return std::chrono::duration<double>(Clock::now() - start).count();
  }

  // The token sampled from the last row of a plain forward.
  void plain_step(const ForwardResult& result) {
    count(result);
    const std::int32_t next = sampler_.sample(result.logits.row_span(0), history_);
    GeneratedToken token{next, result.steps.back(), seconds_since(step_start_), {}};
    if (forward_.exit) token.exit_values = exit_->values().back();
    if (options_.continuous) {
      warm_state_.resize(1, result.latents.cols());
      std::copy_n(result.latents.row(result.latents.rows() - 1), result.latents.cols(),
                  warm_state_.row(0));
    }
    emit(std::move(token));
  }

  // A speculative round is over: emits the accepted drafts and the verified token after them.
  void finish_round() {
    in_round_ = false;
    const SpeculativeResult& result = speculative_->result();
    generation_.stats.forwards += result.forwards;
    generation_.stats.core_iterations += result.core_iterations;
    generation_.stats.drafted += result.drafted;
    generation_.stats.accepted += result.accepted;
    ++generation_.stats.rounds;
    const double share = seconds_since(round_start_) / double(result.tokens.size());
    for (std::size_t i = 0; i < result.tokens.size() && !done_; ++i) {
      const bool drafted = i < result.accepted;
      emit({result.tokens[i], result.steps, share, {}, drafted});
    }
  }

  void count(const ForwardResult& result) {
    ++generation_.stats.forwards;
    for (int s : result.steps) generation_.stats.core_iterations += std::size_t(s);
    for (int p : result.probes) generation_.stats.exit_probes += std::size_t(p);
  }

  // Records a produced token; done() when generation ends with it.
  void emit(GeneratedToken token) {
    const std::int32_t id = token.id;
    generation_.tokens.push_back(std::move(token));
    history_.push_back(id);
    if (on_token_) on_token_(generation_.tokens.back());
    const bool stop = std::find(options_.stop_ids.begin(), options_.stop_ids.end(), id) !=
                      options_.stop_ids.end();
    done_ = stop || int(generation_.tokens.size()) >= options_.max_new_tokens;
  }

  typename Model::SessionType& session_;
  const GenerationOptions options_;
  const TokenCallback on_token_;
  Sampler sampler_;
  std::optional<CriterionExit> exit_;
  std::optional<SpeculativeRound<Model>> speculative_;
  std::vector<std::int32_t> history_;  // prompt and produced tokens
  std::size_t cached_before_;          // tokens of earlier calls in the cache
  Matrix<float> warm_state_;           // previous token's final latent (continuous)
  ForwardOptions forward_;             // of the last plain forward
  Generation generation_;
  bool prefilled_ = false, in_round_ = false, done_ = false;
  Clock::time_point start_, step_start_, round_start_;
};

// Generates up to options.max_new_tokens tokens after `prompt` (the session's cache may already
// hold earlier tokens; the prompt continues them).
template <class Model>
Generation generate(const Model& model, typename Model::SessionType& session,
                    std::span<const std::int32_t> prompt, const GenerationOptions& options,
                    const TokenCallback& on_token = {}) {
  GenerationSteps<Model> steps(model, session, prompt, options, on_token);
  while (!steps.done()) {
    const typename Model::BatchItemType item = steps.next_forward();
    steps.take(model.forward(*item.session, item.ids, item.options));
  }
  return steps.finish();
}

}  // namespace recurrent_depth
