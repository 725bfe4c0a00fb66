// GenerationSteps: generations driven one forward at a time, their forwards run together through
// forward_batch, joining and leaving the batch at token boundaries as rdepth serve runs them, give
// the tokens, iterations and statistics that generate() gives each alone (greedy, early exit,
// warm start, cache rules, speculative decoding, seeded sampling with a random initial state).
#include <catch2/catch.hpp>

#include <memory>
#include <vector>

#include "test_models.hpp"

using namespace recurrent_depth;
using namespace recurrent_depth::testing;

namespace {

struct Case {
  GenerationOptions options;
  CacheRule cache;
  std::size_t joins_at;  // the batch step at which it starts
};

std::vector<Case> cases() {
  std::vector<Case> list(7);
  for (std::size_t i = 0; i < list.size(); ++i) {
    list[i].options.max_new_tokens = int(4 + 2 * i);
    list[i].options.steps = int(2 + i % 3);
    list[i].options.seed = 100 + i;
    list[i].joins_at = i % 4;
  }
  list[1].options.exit = ExitOptions{ExitCriterion::kl, 1e-2};
  list[1].options.steps = 6;
  list[2].options.continuous = true;
  list[2].cache = CacheRule::parse("latest-m4");
  list[3].options.speculative = SpeculativeOptions{1, 3, 0.0};
  list[4].options.sampling = {.temperature = 0.9f, .top_p = 0.95f};
  list[4].options.init = StateInit::random;
  list[5].cache = CacheRule::parse("compress-s2");
  list[6].options.stop_ids = {7, 8, 9, 10, 11, 12};
  return list;
}

}  // namespace

TEST_CASE("GenerationSteps: generations batched together equal each alone", "[features][batch]") {
  const auto& model = tiny_model().model;
  const int vocab = tiny_model().config.vocab_size;
  const std::vector<Case> list = cases();
  std::vector<std::vector<std::int32_t>> prompts;
  std::vector<Generation> alone;
  for (std::size_t i = 0; i < list.size(); ++i) {
    prompts.push_back(random_ids(3 + i, vocab, 500 + i));
    Session session = model.new_session(list[i].options.seed, list[i].cache);
    alone.push_back(generate(model, session, prompts.back(), list[i].options));
  }

  using Steps = GenerationSteps<F32Model>;
  std::vector<Session> sessions;
  for (const Case& c : list) sessions.push_back(model.new_session(c.options.seed, c.cache));
  std::vector<std::unique_ptr<Steps>> running(list.size());
  std::vector<Generation> batched(list.size());
  std::size_t finished = 0, largest = 0;
  for (std::size_t step = 0; finished < list.size(); ++step) {
    for (std::size_t i = 0; i < list.size(); ++i)
      if (list[i].joins_at == step)
        running[i] = std::make_unique<Steps>(model, sessions[i], prompts[i], list[i].options);
    std::vector<BatchItem> items;
    std::vector<std::size_t> owners;
    for (std::size_t i = 0; i < list.size(); ++i)
      if (running[i]) {
        items.push_back(running[i]->next_forward());
        owners.push_back(i);
      }
    largest = std::max(largest, items.size());
    if (items.empty()) continue;
    const std::vector<ForwardResult> results = model.forward_batch(items);
    for (std::size_t k = 0; k < owners.size(); ++k) {
      Steps& steps = *running[owners[k]];
      steps.take(results[k]);
      if (!steps.done()) continue;
      batched[owners[k]] = steps.finish();
      running[owners[k]].reset();
      ++finished;
    }
  }
  CHECK(largest >= 4);
  for (std::size_t i = 0; i < list.size(); ++i) {
    INFO("case " << i);
    CHECK(batched[i].ids() == alone[i].ids());
    std::vector<int> steps_batched, steps_alone;
    for (const GeneratedToken& t : batched[i].tokens) steps_batched.push_back(t.steps);
    for (const GeneratedToken& t : alone[i].tokens) steps_alone.push_back(t.steps);
    CHECK(steps_batched == steps_alone);
    CHECK(batched[i].stats.core_iterations == alone[i].stats.core_iterations);
    CHECK(batched[i].stats.forwards == alone[i].stats.forwards);
    CHECK(batched[i].stats.accepted == alone[i].stats.accepted);
    CHECK(sessions[i].cache.length() == prompts[i].size() + batched[i].tokens.size() - 1);
  }
}
