// Exact-match evaluation at a chosen depth: a problem is a prompt and an expected answer (token
// ids); the model answers greedily, token by token through the KV cache, and is right when every
// answer token is its argmax. Problems run in batches through forward_batch (each with its own
// session, so results equal those of running them alone), with zero initial state, r core
// iterations per token or, with early exit, as generate runs it: the prompt but its last token at
// r, then every token that decides an answer token stopped by the criterion (at most r).
//
//   std::vector<rd::ExactMatchProblem> problems = ...;  // ids with BOS, answer ids
//   rd::ExactMatchResult at8 = rd::evaluate_exact_match(model, problems, options);  //
//   options.steps = 8
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "../cache/cache_rule.hpp"
#include "../core/error.hpp"
#include "../model/recurrent_depth_model.hpp"
#include "exit_criteria.hpp"
#include "sampling.hpp"

namespace recurrent_depth {

struct ExactMatchProblem {
  std::vector<std::int32_t> prompt;  // what the model reads (BOS included if it expects one)
  std::vector<std::int32_t> answer;  // what it must produce, at least one token
};

struct ExactMatchOptions {
  int steps = 1;                    // core iterations r (with exit: at most r)
  std::optional<ExitOptions> exit;  // per-token early exit
  CacheRule cache;                  // KV cache rule of every problem's session
  std::size_t batch = 32;           // problems per forward_batch
};

struct ExactMatchResult {
  int steps = 0;
  std::size_t problems = 0, correct = 0;
  double accuracy = 0.0;
  // Core iterations of the forwards that decided answer tokens, per answer token (= steps
  // without exit), and per token of all the forwards (prompts included).
  double mean_iterations = 0.0;
  double mean_iterations_all_tokens = 0.0;
  std::vector<bool> right;  // per problem
  // Per problem, what the model answered: the matching tokens and the first wrong one, if any.
  std::vector<std::vector<std::int32_t>> answers;
};

template <class Model>
ExactMatchResult evaluate_exact_match(const Model& model,
                                      std::span<const ExactMatchProblem> problems,
                                      const ExactMatchOptions& options) {
  require(options.steps >= 1, "exact match: steps is ", options.steps, ", expected >= 1");
  require(options.batch >= 1, "exact match: batch is 0, expected >= 1");
  for (std::size_t i = 0; i < problems.size(); ++i) {
    require(!problems[i].prompt.empty(), "exact match: problem ", i, " has an empty prompt");
    require(!problems[i].answer.empty(), "exact match: problem ", i, " has an empty answer");
  }
  ExactMatchResult result;
  result.steps = options.steps;
  result.problems = problems.size();
  result.right.assign(problems.size(), false);
  result.answers.assign(problems.size(), {});
  double answer_iterations = 0.0, all_iterations = 0.0;
  std::size_t answer_tokens = 0, all_tokens = 0;

  std::vector<typename Model::SessionType> sessions;  // a batch's, restarted for the next
  for (std::size_t first = 0; first < problems.size(); first += options.batch) {
    const std::size_t count = std::min(options.batch, problems.size() - first);
    std::vector<std::unique_ptr<CriterionExit>> exits;
    std::vector<std::vector<std::int32_t>> feed(count);
    std::vector<std::size_t> answered(count, 0);  // answer tokens matched so far
    std::vector<bool> open(count, true);
    for (std::size_t i = 0; i < count; ++i) {
      if (i < sessions.size())
        model.restart_session(sessions[i], 0, options.cache);
      else
        sessions.push_back(model.new_session(0, options.cache));
      if (options.exit) exits.push_back(std::make_unique<CriterionExit>(*options.exit));
      feed[i] = problems[first + i].prompt;
    }
    if (options.exit) {  // the prompt but its last token at r, as generate prefills it
      std::vector<typename Model::BatchItemType> items;
      for (std::size_t i = 0; i < count; ++i) {
        if (feed[i].size() < 2) continue;
        ForwardOptions forward;
        forward.steps = options.steps;
        forward.all_logits = false;
        items.push_back({&sessions[i], std::span(feed[i]).first(feed[i].size() - 1), forward});
      }
      if (!items.empty())
        for (const ForwardResult& out : model.forward_batch(items)) {
          for (int s : out.steps) all_iterations += s;
          all_tokens += out.steps.size();
        }
      for (auto& tokens : feed) tokens = {tokens.back()};
    }
    // One round per answer token: the prompt first, then each matched token fed back.
    while (std::find(open.begin(), open.end(), true) != open.end()) {
      std::vector<typename Model::BatchItemType> items;
      std::vector<std::size_t> owner;
      for (std::size_t i = 0; i < count; ++i) {
        if (!open[i]) continue;
        ForwardOptions forward;
        forward.steps = options.steps;
        forward.all_logits = false;
        forward.exit = options.exit ? exits[i].get() : nullptr;
        items.push_back({&sessions[i], feed[i], forward});
        owner.push_back(i);
      }
      const std::vector<ForwardResult> outputs = model.forward_batch(items);
      for (std::size_t k = 0; k < owner.size(); ++k) {
        const std::size_t i = owner[k];
        const ForwardResult& out = outputs[k];
        for (int s : out.steps) all_iterations += s;
        all_tokens += out.steps.size();
        answer_iterations += out.steps.back();
        ++answer_tokens;
        const ExactMatchProblem& problem = problems[first + i];
        const std::int32_t guess = argmax(out.logits.row_span(0));
        result.answers[first + i].push_back(guess);
        if (guess != problem.answer[answered[i]]) {
          open[i] = false;
          continue;
        }
        if (++answered[i] == problem.answer.size()) {
          result.right[first + i] = true;
          ++result.correct;
          open[i] = false;
        } else {
          feed[i] = {guess};
        }
      }
    }
  }
  if (result.problems > 0) result.accuracy = double(result.correct) / double(result.problems);
  if (answer_tokens > 0) result.mean_iterations = answer_iterations / double(answer_tokens);
  if (all_tokens > 0) result.mean_iterations_all_tokens = all_iterations / double(all_tokens);
  return result;
}

}  // namespace recurrent_depth
