// evaluate_exact_match and trace_latents (generate/exact_match.hpp, generate/latent_trace.hpp)
// on the tiny reference model: answers built from the model's own greedy tokens are all right,
// a changed answer token is wrong wherever it is, batching changes nothing, early exit runs the
// prompt but its last token at r and reports its iterations; the trace's recording pass leaves the
// forward unchanged, its early decodes equal forwards stopped at each depth, and its distances
// agree with its stored states.
#include <catch2/catch.hpp>

#include <cmath>
#include <numeric>

#include "test_models.hpp"

using namespace recurrent_depth;
using namespace recurrent_depth::testing;

namespace {

ExactMatchOptions at_depth(int steps) {
  ExactMatchOptions options;
  options.steps = steps;
  return options;
}

// Greedy continuation of `prompt` by `count` tokens at r = steps, one forward per token.
std::vector<std::int32_t> greedy(const F32Model& model, const std::vector<std::int32_t>& prompt,
                                 std::size_t count, int steps) {
  Session session = model.new_session();
  std::vector<std::int32_t> feed = prompt, out;
  for (std::size_t i = 0; i < count; ++i) {
    const ForwardResult r = model.forward(session, feed, with_steps(steps));
    out.push_back(argmax(r.logits.row_span(r.logits.rows() - 1)));
    feed = {out.back()};
  }
  return out;
}

std::vector<ExactMatchProblem> greedy_problems(const F32Model& model, int steps) {
  std::vector<ExactMatchProblem> problems;
  for (std::uint64_t seed = 0; seed < 7; ++seed) {
    const auto prompt = random_ids(3 + 2 * seed, model.config().vocab_size, 500 + seed);
    problems.push_back({prompt, greedy(model, prompt, 1 + seed % 3, steps)});
  }
  return problems;
}

}  // namespace

TEST_CASE("exact match: the model's own greedy answers are right, changed ones wrong",
          "[evaluation]") {
  const F32Model& model = huginn_f32();
  std::vector<ExactMatchProblem> problems = greedy_problems(model, 4);
  ExactMatchOptions options = at_depth(4);
  options.batch = 3;  // several batches, the last one partial
  const ExactMatchResult all = evaluate_exact_match(model, problems, options);
  CHECK(all.correct == problems.size());
  CHECK(all.accuracy == 1.0);
  CHECK(all.mean_iterations == 4.0);

  // Change one answer token of every other problem: first, middle or last position.
  for (std::size_t i = 0; i < problems.size(); i += 2) {
    auto& answer = problems[i].answer;
    const std::size_t at = i % answer.size();
    answer[at] = (answer[at] + 1) % model.config().vocab_size;
  }
  const ExactMatchResult changed = evaluate_exact_match(model, problems, options);
  CHECK(changed.correct == problems.size() / 2);
  for (std::size_t i = 0; i < problems.size(); ++i) CHECK(changed.right[i] == (i % 2 == 1));

  options.batch = 64;  // one batch: the same verdicts
  CHECK(evaluate_exact_match(model, problems, options).right == changed.right);
}

TEST_CASE("exact match with early exit reports the iterations it used", "[evaluation]") {
  const F32Model& model = huginn_f32();
  const std::vector<ExactMatchProblem> problems = greedy_problems(model, 8);
  ExactMatchOptions options = at_depth(8);
  options.exit = ExitOptions{ExitCriterion::kl, 1e9};  // every token stops at its first check
  const ExactMatchResult early = evaluate_exact_match(model, problems, options);
  CHECK(early.mean_iterations == 1.0);
  CHECK(early.mean_iterations_all_tokens > 1.0);       // the prompt but its last token ran at r = 8
  for (std::size_t i = 0; i < problems.size(); ++i) {  // as generate: prefill at r, then exit
    const std::vector<std::int32_t>& prompt = problems[i].prompt;
    Session session = model.new_session();
    model.forward(session, std::span(prompt).first(prompt.size() - 1), with_steps(8));
    const std::vector<std::int32_t> last_token = {prompt.back()};
    const ForwardResult last = model.forward(session, last_token, with_steps(1));
    CHECK(early.answers[i][0] == argmax(last.logits.row_span(0)));
  }
  options.exit = ExitOptions{ExitCriterion::kl, 0.0};  // never below 0: all 8
  const ExactMatchResult full = evaluate_exact_match(model, problems, options);
  CHECK(full.mean_iterations == 8.0);
  CHECK(full.accuracy == 1.0);
}

TEST_CASE("exact match rejects empty answers and zero iterations", "[evaluation]") {
  const F32Model& model = huginn_f32();
  const std::vector<ExactMatchProblem> problems = {{{1, 2, 3}, {}}};
  CHECK_THROWS_WITH(evaluate_exact_match(model, problems, at_depth(2)),
                    Catch::Contains("problem 0 has an empty answer"));
  const std::vector<ExactMatchProblem> fine = {{{1, 2, 3}, {4}}};
  CHECK_THROWS_WITH(evaluate_exact_match(model, fine, at_depth(0)), Catch::Contains("steps is 0"));
}

TEST_CASE("latent trace: the recorded forward equals a plain one; early decodes match",
          "[evaluation]") {
  const F32Model& model = huginn_f32();
  const auto ids = random_ids(9, model.config().vocab_size, 77);
  constexpr int kSteps = 5;
  Session traced_session = model.new_session();
  LatentTraceOptions options;
  options.steps = kSteps;
  options.keep_states = true;
  const LatentTrace trace = trace_latents(model, traced_session, ids, options);
  Session plain_session = model.new_session();
  const ForwardResult plain = model.forward(plain_session, ids, with_steps(kSteps));
  CHECK(relative_l2(trace.result.logits.view(), plain.logits.view()) == 0.0);
  CHECK(traced_session.cache.length() == plain_session.cache.length());

  REQUIRE(trace.tokens.size() == ids.size());
  REQUIRE(trace.states.size() == ids.size());
  for (int i = 1; i <= kSteps; ++i) {  // the decode after i iterations = a forward at r = i
    Session session = model.new_session();
    const ForwardResult at_i = model.forward(session, ids, with_steps(i));
    for (std::size_t t = 0; t < ids.size(); ++t) {
      const LatentStep& step = trace.tokens[t][static_cast<std::size_t>(i - 1)];
      CHECK(step.argmax == argmax(at_i.logits.row_span(t)));
      const auto row = at_i.logits.row_span(t);
      double sum = 0.0;
      for (float l : row) sum += std::exp(double(l) - double(row[step.argmax]));
      CHECK(step.probability == Approx(1.0 / sum).epsilon(1e-5));
    }
  }
  for (std::size_t t = 0; t < ids.size(); ++t) {
    const auto& states = trace.states[t];
    REQUIRE(states.size() == kSteps + 1);
    CHECK(std::all_of(states[0].begin(), states[0].end(), [](float v) { return v == 0.0f; }));
    const auto& steps = trace.tokens[t];
    CHECK(steps.back().distance_to_last == 0.0);
    for (std::size_t i = 0; i < steps.size(); ++i) {
      double norm = 0.0, to_previous = 0.0, to_last = 0.0;
      for (std::size_t k = 0; k < states[i + 1].size(); ++k) {
        norm += double(states[i + 1][k]) * states[i + 1][k];
        to_previous += std::pow(double(states[i + 1][k]) - states[i][k], 2);
        to_last += std::pow(double(states[i + 1][k]) - states.back()[k], 2);
      }
      CHECK(steps[i].norm == Approx(std::sqrt(norm)));
      CHECK(steps[i].distance_to_previous == Approx(std::sqrt(to_previous)));
      CHECK(steps[i].distance_to_last == Approx(std::sqrt(to_last)).margin(1e-9));
      CHECK(steps[i].distance_to_previous > 0.0);
    }
  }
}
