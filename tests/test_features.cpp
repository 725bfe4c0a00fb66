// Properties of the test-time features: self-speculative greedy decoding gives exactly the tokens
// of plain greedy decoding at full depth (several draft depths and lookaheads, cache rules, stops);
// a batch of sequences of different lengths, each with its own cache and exit decisions, equals
// the sequences run alone; a restarted session equals a new one; a compressed cache with K >= 4r
// equals the full cache; seeded sampling is reproducible and top-k 1 is greedy; bad options are
// refused with a message.
#include <catch2/catch.hpp>

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "test_models.hpp"

using namespace recurrent_depth;
using namespace recurrent_depth::testing;

namespace {

template <class Model>
Generation run_generate(const Model& model, std::span<const std::int32_t> prompt,
                        const GenerationOptions& options, CacheRule rule = {},
                        std::size_t* cache_length = nullptr) {
  Session session = model.new_session(0, rule);
  Generation result = generate(model, session, prompt, options);
  if (cache_length) *cache_length = session.cache.length();
  return result;
}

template <class Model>
void check_speculative_equals_plain(const Model& model, const std::string& name,
                                    std::span<const std::int32_t> prompt, int steps,
                                    const char* cache) {
  GenerationOptions plain;
  plain.max_new_tokens = 13;
  plain.steps = steps;
  const CacheRule rule = CacheRule::parse(cache);
  std::size_t plain_length = 0;
  const std::vector<std::int32_t> expected =
      run_generate(model, prompt, plain, rule, &plain_length).ids();
  REQUIRE(expected.size() == 13);
  for (const int draft_steps : {0, 1, 2, steps}) {
    for (const int lookahead : {1, 3, 8}) {
      INFO(name << " cache " << cache << " D=" << draft_steps << " L=" << lookahead);
      GenerationOptions options = plain;
      options.speculative = SpeculativeOptions{draft_steps, lookahead, 0.0};
      std::size_t length = 0;
      const Generation result = run_generate(model, prompt, options, rule, &length);
      CHECK(result.ids() == expected);
      CHECK(length == plain_length);
      CHECK(result.stats.drafted >= result.stats.accepted);
      for (const GeneratedToken& t : result.tokens) CHECK(t.steps == steps);
      // Drafting at full depth agrees with the verification every time.
      if (draft_steps == steps) CHECK(result.stats.accepted == result.stats.drafted);
    }
  }
}

}  // namespace

TEST_CASE("features: speculative greedy decoding equals plain greedy decoding", "[features]") {
  const std::vector<std::int32_t> prompt = random_ids(5, tiny_model().config.vocab_size, 71);
  check_speculative_equals_plain(tiny_model().model, "tiny", prompt, 4, "full");
  check_speculative_equals_plain(small_model().model, "small", random_ids(3, 50, 72), 3, "full");
  const Golden golden("tiny_huginn");
  const std::span<const std::int32_t> ids(golden.input_ids);
  // (Not compressed caches: see speculative.hpp.)
  for (const char* cache : {"full", "latest-m4"})
    check_speculative_equals_plain(huginn_f32(), "tiny_huginn", ids.first(5), 8, cache);
}

TEST_CASE("features: speculative decoding stops and continues like plain decoding", "[features]") {
  const auto& model = huginn_f32();
  const Golden golden("tiny_huginn");
  const std::span<const std::int32_t> prompt = std::span(golden.input_ids).first(4);
  GenerationOptions plain;
  plain.max_new_tokens = 10;
  const std::vector<std::int32_t> expected = run_generate(model, prompt, plain).ids();

  GenerationOptions options = plain;
  options.speculative = SpeculativeOptions{2, 4, 0.0};
  options.stop_ids = {expected[5]};
  const std::size_t first_stop =
      std::size_t(std::find(expected.begin(), expected.end(), expected[5]) - expected.begin());
  std::size_t length = 0;
  const Generation stopped = run_generate(model, prompt, options, {}, &length);
  CHECK(stopped.ids() == std::vector(expected.begin(), expected.begin() + first_stop + 1));
  CHECK(length == prompt.size() + first_stop);

  // Two calls on one session give the tokens of one long call.
  Session session = model.new_session();
  options.stop_ids.clear();
  options.max_new_tokens = 4;
  std::vector<std::int32_t> joined = generate(model, session, prompt, options).ids();
  const std::int32_t last = joined.back();
  options.max_new_tokens = 6;
  const std::vector<std::int32_t> more = generate(model, session, {&last, 1}, options).ids();
  joined.insert(joined.end(), more.begin(), more.end());
  CHECK(joined == expected);
}

TEST_CASE("features: a batch equals its sequences run alone", "[features][batch]") {
  const auto& model = tiny_model().model;
  const ExitOptions exit_options = median_latent_diff_exit(model);
  for (const bool with_exit : {false, true}) {
    for (const char* cache : {"full", "latest-m4"}) {
      INFO("exit " << with_exit << " cache " << cache);
      const ExitOptions* exit = with_exit ? &exit_options : nullptr;
      const SequencesRun alone = run_three_sequences(model, CacheRule::parse(cache), exit, false);
      const SequencesRun batch = run_three_sequences(model, CacheRule::parse(cache), exit, true);
      bool early = false;
      for (std::size_t i = 0; i < 3; ++i) {
        CHECK(batch.results[i].steps == alone.results[i].steps);
        CHECK(relative_l2(batch.results[i].logits, alone.results[i].logits) < 1e-5);
        CHECK(relative_l2(batch.results[i].latents, alone.results[i].latents) < 1e-5);
        CHECK(batch.cache_lengths[i] == alone.cache_lengths[i]);
        for (int s : alone.results[i].steps) early = early || s < int(3 + i);
      }
      CHECK(early == with_exit);  // the criterion really stopped some tokens early
    }
  }
}

TEST_CASE(
    "features: a restarted session equals a new one; under the same rule its cache's memory "
    "stays",
    "[features][cache]") {
  const auto& model = tiny_model().model;
  const int vocab = tiny_model().config.vocab_size;
  const ForwardOptions options = with_steps(3, StateInit::random);
  // The first sequence runs under the f32 model's default rule: full, f32 entries.
  struct Restart {
    const char* rule;
    KvFormat format;
  };
  for (const Restart restart :
       {Restart{"full", KvFormat::f32}, Restart{"latest-m4", KvFormat::f32},
        Restart{"compress-s2", KvFormat::f32}, Restart{"full", KvFormat::bf16}}) {
    INFO("restarted under " << restart.rule << ", " << kv_format_name(restart.format));
    CacheRule rule = CacheRule::parse(restart.rule);
    rule.format = restart.format;
    Session reused = model.new_session(4);
    model.forward(reused, random_ids(9, vocab, 73), options);
    const float* first_keys = reused.cache.storage(0).key_words(0);
    model.restart_session(reused, 9, rule);
    CHECK(reused.cache.length() == 0);
    CHECK(reused.cache.bytes() == 0);
    Session fresh = model.new_session(9, rule);
    const std::vector<std::int32_t> ids = random_ids(7, vocab, 74);
    const ForwardResult a = model.forward(reused, ids, options);
    const ForwardResult b = model.forward(fresh, ids, options);
    CHECK(relative_l2(a.logits, b.logits) == 0.0);  // the same seed drew the same initial state
    CHECK(a.steps == b.steps);
    CHECK(reused.cache.bytes() == fresh.cache.bytes());
    CHECK(reused.cache.slot_count() == fresh.cache.slot_count());
    if (rule == model.new_session(4).cache.rule())  // the rows were written where they were
      CHECK(reused.cache.storage(0).key_words(0) == first_keys);
  }
}

TEST_CASE("features: a compressed cache with K >= 4r equals the full cache", "[features][cache]") {
  const auto& model = huginn_f32();
  const Golden golden("tiny_huginn");
  const std::span<const std::int32_t> ids(golden.input_ids);
  const int steps = 3;
  const auto decode = [&](const char* cache) {
    Session session = model.new_session(0, CacheRule::parse(cache));
    model.forward(session, ids.first(4), with_steps(steps));
    Matrix<float> logits(ids.size() - 4, model.vocab_rows());
    for (std::size_t t = 4; t < ids.size(); ++t) {
      const ForwardResult r = model.forward(session, ids.subspan(t, 1), with_steps(steps));
      std::copy_n(r.logits.row(0), logits.cols(), logits.row(t - 4));
    }
    return std::pair(std::move(logits), session.cache.bytes());
  };
  const auto [full, full_bytes] = decode("full");
  for (const char* cache : {"compress-s12", "compress-s13", "latest-m4-compress-s12"}) {
    const auto [logits, bytes] = decode(cache);
    INFO(cache);
    CHECK(relative_l2(logits, full) == 0.0);
    CHECK(bytes == full_bytes);
  }
  // Fewer shared slots change the result and take less memory.
  const auto [small, small_bytes] = decode("compress-s4");
  CHECK(relative_l2(small, full) > 1e-4);
  CHECK(small_bytes < full_bytes);
}

TEST_CASE("features: seeded sampling is reproducible; top-k 1 is greedy", "[features][sampling]") {
  const auto& model = huginn_f32();
  const Golden golden("tiny_huginn");
  const std::span<const std::int32_t> prompt = std::span(golden.input_ids).first(5);
  GenerationOptions options;
  options.max_new_tokens = 12;
  options.sampling.temperature = 1.5f;
  options.sampling.top_p = 0.95f;
  options.seed = 1234;
  const std::vector<std::int32_t> first = run_generate(model, prompt, options).ids();
  CHECK(run_generate(model, prompt, options).ids() == first);
  options.seed = 1235;
  CHECK(run_generate(model, prompt, options).ids() != first);

  GenerationOptions greedy;
  greedy.max_new_tokens = 12;
  GenerationOptions top1 = options;
  top1.sampling = {};
  top1.sampling.temperature = 1.0f;
  top1.sampling.top_k = 1;
  CHECK(run_generate(model, prompt, top1).ids() == run_generate(model, prompt, greedy).ids());
}

TEST_CASE("features: bad options are refused with a message", "[features][errors]") {
  const auto refused = [](auto&& action, const std::string& text) {
    INFO(text);
    CHECK_THROWS_WITH(action(), Catch::Contains(text));
  };
  refused([] { parse_exit_criterion("klx"); }, "unknown name 'klx'");
  refused([] { CacheRule::parse("compress-s0"); }, "expected K >= 1");
  refused([] { CacheRule::parse("latest-m5"); }, "latest-m5");
  refused([] { CacheRule::parse("compress-sx"); }, "compress-sx");
  refused([] { SpeculativeOptions{4, 0, 0.0}.validate(); }, "lookahead is 0, expected >= 1");
  refused([] { SpeculativeOptions{-1, 4, 0.0}.validate(); }, "draft_steps is -1");
  refused([] { SpeculativeOptions{4, 4, 1.5}.validate(); }, "accept_ratio is 1.5");
  refused([] { ExitOptions{ExitCriterion::kl, NAN, 1, 1}.validate(); }, "not a finite number");

  GenerationOptions options;
  options.speculative = SpeculativeOptions{};
  options.continuous = true;
  refused([&] { options.validate(); }, "cannot warm-start");
  options.continuous = false;
  options.exit = ExitOptions{};
  refused([&] { options.validate(); }, "does not combine with early exit");
}
