// Properties of the whole model, on seeded random weights (the "tiny" shape and a smaller, lopsided
// custom config with 1 prelude, 2 core and 3 coda blocks) and on tests/data/tiny_huginn:
// KV-cache decoding and chunking equal one full forward, r = 0 skips the core, more iterations
// change the result, seeded random states are reproducible, bad inputs are refused with a message
// naming the problem (and leave the session untouched), bf16 storage of bf16 weights is exact,
// thread counts do not change results, and greedy generation agrees with the full forward.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "golden.hpp"
#include "recurrent_depth/backends/cpu/kernel_dispatch.hpp"
#include "recurrent_depth/backends/cpu/scalar_reference.hpp"
#include "recurrent_depth/core/threads.hpp"
#include "test_models.hpp"

using namespace recurrent_depth;
using recurrent_depth::testing::data_dir;
using recurrent_depth::testing::relative_l2;
using namespace recurrent_depth::testing;

namespace {

Matrix<float> random_states(std::size_t rows, std::size_t cols, std::uint64_t seed) {
  Rng rng(seed);
  Matrix<float> m(rows, cols);
  TruncatedNormalState::fill(m.view(), rng);
  return m;
}

template <class Model>
ForwardResult full_forward(const Model& model, std::span<const std::int32_t> ids,
                           const ForwardOptions& options = {}, std::uint64_t seed = 0) {
  Session session = model.new_session(seed);
  return model.forward(session, ids, options);
}

// Runs ids in pieces of the given sizes through one session (with `states` rows as the initial
// state when given) and stacks the logits and latents of every position.
template <class Model>
ForwardResult in_pieces(const Model& model, std::span<const std::int32_t> ids,
                        const std::vector<std::size_t>& pieces, ForwardOptions options,
                        ConstMatrixView<float> states = {}, std::uint64_t seed = 0) {
  Session session = model.new_session(seed);
  ForwardResult stacked;
  stacked.logits.resize(ids.size(), model.vocab_rows());
  stacked.latents.resize(ids.size(), model.width());
  std::size_t first = 0;
  for (std::size_t count : pieces) {
    if (options.init == StateInit::given) options.initial_state = states.middle_rows(first, count);
    const ForwardResult part = model.forward(session, ids.subspan(first, count), options);
    REQUIRE(part.logits.rows() == count);
    for (std::size_t t = 0; t < count; ++t) {
      std::copy_n(part.logits.row(t), model.vocab_rows(), stacked.logits.row(first + t));
      std::copy_n(part.latents.row(t), model.width(), stacked.latents.row(first + t));
    }
    first += count;
    REQUIRE(session.cache.length() == first);
  }
  REQUIRE(first == ids.size());
  return stacked;
}

// Prefill P, then one token at a time.
std::vector<std::size_t> prefill_then_decode(std::size_t prefill, std::size_t total) {
  std::vector<std::size_t> pieces{prefill};
  for (std::size_t t = prefill; t < total; ++t) pieces.push_back(1);
  return pieces;
}

Matrix<float> rows_of(ConstMatrixView<float> m, std::size_t first, std::size_t count) {
  Matrix<float> out(count, m.cols);
  for (std::size_t r = 0; r < count; ++r) std::copy_n(m.row(first + r), m.cols, out.row(r));
  return out;
}

bool bitwise_equal(ConstMatrixView<float> a, ConstMatrixView<float> b) {
  if (a.rows != b.rows || a.cols != b.cols) return false;
  for (std::size_t r = 0; r < a.rows; ++r)
    if (!std::equal(a.row(r), a.row(r) + a.cols, b.row(r))) return false;
  return true;
}

class ThreadCount {
 public:
  explicit ThreadCount(int n) : saved_(max_threads()) { set_num_threads(n); }
  ~ThreadCount() { set_num_threads(saved_); }

 private:
  int saved_;
};

// Core slot ids of iterations [0, iterations) for a config.
std::vector<int> core_slots(const ModelConfig& c, int iterations) {
  std::vector<int> ids;
  for (int i = 0; i < iterations; ++i)
    for (int j = 0; j < c.n_layers_in_recurrent_block; ++j)
      ids.push_back(c.n_layers_in_prelude + c.n_layers_in_recurrent_block * i + j);
  return ids;
}

// Steps: nullopt for the config's mean_recurrence.
template <class Model>
void check_decode_equals_full(const Model& model, const std::string& name,
                              std::vector<std::optional<int>> step_counts, bool given_states) {
  const int vocab = model.config().vocab_size;
  const std::vector<std::int32_t> ids = random_ids(12, vocab, 21);
  for (std::optional<int> steps : step_counts) {
    const ForwardOptions options = with_steps(steps);
    const ForwardResult full = full_forward(model, ids, options);
    for (std::size_t prefill : {1, 5}) {
      INFO(name << ": prefill " << prefill << " then decode, steps "
                << steps.value_or(model.config().mean_recurrence));
      const ForwardResult decoded =
          in_pieces(model, ids, prefill_then_decode(prefill, ids.size()), options);
      CHECK(relative_l2(decoded.logits, full.logits) < 1e-5);
      CHECK(relative_l2(decoded.latents, full.latents) < 1e-5);
    }
    INFO(name << ": prefill 4, a chunk of 5, then decode, steps "
              << steps.value_or(model.config().mean_recurrence));
    const ForwardResult chunked = in_pieces(model, ids, {4, 5, 1, 1, 1}, options);
    CHECK(relative_l2(rows_of(chunked.logits, 4, 5), rows_of(full.logits, 4, 5)) < 1e-5);
    CHECK(relative_l2(chunked.logits, full.logits) < 1e-5);
  }
  if (given_states) {
    INFO(name << ": decode with given initial states");
    const Matrix<float> states = random_states(ids.size(), model.width(), 22);
    ForwardOptions options = with_steps(3, StateInit::given);
    options.initial_state = states.view();
    const ForwardResult full = full_forward(model, ids, options);
    const ForwardResult decoded =
        in_pieces(model, ids, prefill_then_decode(3, ids.size()), options, states.view());
    CHECK(relative_l2(decoded.logits, full.logits) < 1e-5);
    CHECK(relative_l2(decoded.latents, full.latents) < 1e-5);
    // Sanity: the given states matter.
    CHECK(relative_l2(full_forward(model, ids, with_steps(3)).logits, full.logits) > 1e-3);
  }
}

// The forward call must throw a recurrent_depth::Error naming `word`, and leave the session's
// cache as it was.
template <class Model, class Call>
void check_refused(const Model& model, Session& session, Call call, const std::string& word) {
  const std::size_t length = session.cache.length(), slots = session.cache.slot_count(),
                    bytes = session.cache.bytes();
  REQUIRE_THROWS_AS(call(), Error);
  REQUIRE_THROWS_WITH(call(), Catch::Contains(word, Catch::CaseSensitive::No));
  CHECK(session.cache.length() == length);
  CHECK(session.cache.slot_count() == slots);
  CHECK(session.cache.bytes() == bytes);
  (void)model;
}

}  // namespace

TEST_CASE("properties: KV-cache decode and chunks equal one full forward", "[properties]") {
  const std::optional<int> mean;  // the config's mean_recurrence
  check_decode_equals_full(small_model().model, "small", {mean, 2}, true);
  check_decode_equals_full(tiny_model().model, "tiny", {mean}, false);
  check_decode_equals_full(huginn_f32(), "tiny_huginn f32", {mean}, true);
  check_decode_equals_full(huginn_bf16(), "tiny_huginn bf16", {2}, false);
}

TEST_CASE("properties: interleaved sessions do not affect each other", "[properties]") {
  // The model is const and shared; everything per sequence lives in the session.
  const F32Model& model = small_model().model;
  const int vocab = model.config().vocab_size;
  const std::vector<std::int32_t> a = random_ids(8, vocab, 45), b = random_ids(11, vocab, 46);
  const ForwardResult full_a = full_forward(model, a), full_b = full_forward(model, b);
  Session sa = model.new_session(), sb = model.new_session();
  const std::span<const std::int32_t> span_a(a), span_b(b);
  const ForwardResult a0 = model.forward(sa, span_a.first(3));
  const ForwardResult b0 = model.forward(sb, span_b.first(9));  // longer: resizes its scratch
  const ForwardResult a1 = model.forward(sa, span_a.subspan(3));
  const ForwardResult b1 = model.forward(sb, span_b.subspan(9));
  CHECK(relative_l2(a0.logits, rows_of(full_a.logits, 0, 3)) < 1e-5);
  CHECK(relative_l2(a1.logits, rows_of(full_a.logits, 3, 5)) < 1e-5);
  CHECK(relative_l2(b0.logits, rows_of(full_b.logits, 0, 9)) < 1e-5);
  CHECK(relative_l2(b1.logits, rows_of(full_b.logits, 9, 2)) < 1e-5);
}

TEST_CASE("properties: all_logits = false gives the last row of the full logits", "[properties]") {
  const F32Model& model = tiny_model().model;
  const std::vector<std::int32_t> ids = random_ids(7, model.config().vocab_size, 23);
  const ForwardResult full = full_forward(model, ids);
  ForwardOptions last_only;
  last_only.all_logits = false;
  const ForwardResult last = full_forward(model, ids, last_only);
  REQUIRE(last.logits.rows() == 1);
  CHECK(relative_l2(last.logits, rows_of(full.logits, 6, 1)) < 1e-6);
  CHECK(bitwise_equal(last.latents, full.latents));
}

TEST_CASE("properties: truncating the cache rolls back to an earlier position", "[properties]") {
  // As speculative decoding does with rejected tokens: run 9 tokens, forget the last 4, then run
  // different continuation tokens; the result equals a forward over the accepted sequence.
  const F32Model& model = small_model().model;
  const int vocab = model.config().vocab_size;
  const std::vector<std::int32_t> rejected = random_ids(9, vocab, 24);
  std::vector<std::int32_t> accepted(rejected.begin(), rejected.begin() + 5);
  for (std::int32_t id : random_ids(6, vocab, 25)) accepted.push_back(id);
  const ForwardResult full = full_forward(model, accepted);

  Session session = model.new_session();
  model.forward(session, std::span<const std::int32_t>(rejected));
  session.cache.truncate(5);
  REQUIRE(session.cache.length() == 5);
  const ForwardResult tail =
      model.forward(session, std::span<const std::int32_t>(accepted).subspan(5));
  CHECK(relative_l2(tail.logits, rows_of(full.logits, 5, 6)) < 1e-5);
  // Sanity: without the truncation the continuation sees the rejected tokens and differs.
  Session stale = model.new_session();
  model.forward(stale, std::span<const std::int32_t>(rejected));
  const ForwardResult wrong =
      model.forward(stale, std::span<const std::int32_t>(accepted).subspan(5));
  CHECK(relative_l2(wrong.logits, rows_of(full.logits, 5, 6)) > 1e-3);
}

TEST_CASE("properties: r = 0 gives ln_f of the initial state and leaves the core alone",
          "[properties]") {
  const SyntheticModel& m = small_model();
  const F32Model& model = m.model;
  const ModelConfig& c = m.config;
  const std::vector<std::int32_t> ids = random_ids(6, c.vocab_size, 26);
  const std::vector<float> ln_f = m.final_norm_weight();
  const float eps = static_cast<float>(c.norm_eps);

  SECTION("given state") {
    const Matrix<float> states = random_states(ids.size(), model.width(), 27);
    ForwardOptions options = with_steps(0, StateInit::given);
    options.initial_state = states.view();
    Session session = model.new_session();
    const ForwardResult result = model.forward(session, ids, options);
    Matrix<float> expected(ids.size(), model.width());
    cpu::scalar::rms_norm(states.view(), ln_f, eps, expected.view());
    CHECK(relative_l2(result.latents, expected) < 1e-6);

    // Prelude and coda slots hold every token; no core slot exists.
    for (int id = 0; id < c.n_layers_in_prelude; ++id) {
      REQUIRE(session.cache.find(id) != nullptr);
      CHECK(session.cache.find(id)->entries() == ids.size());
    }
    for (int id = -1; id >= -c.n_layers_in_coda; --id) {
      REQUIRE(session.cache.find(id) != nullptr);
      CHECK(session.cache.find(id)->entries() == ids.size());
    }
    for (int id : core_slots(c, 2 * c.mean_recurrence)) CHECK(session.cache.find(id) == nullptr);
    CHECK(session.cache.slot_count() == std::size_t(c.n_layers_in_prelude + c.n_layers_in_coda));
    CHECK(session.cache.length() == ids.size());
  }
  SECTION("zero state: latents are exactly zero") {
    const ForwardResult result = full_forward(model, ids, with_steps(0));
    for (std::size_t t = 0; t < ids.size(); ++t)
      for (std::size_t i = 0; i < model.width(); ++i) REQUIRE(result.latents(t, i) == 0.0f);
  }
  SECTION("random state: drawn from the session's seed by TruncatedNormalState") {
    const std::uint64_t seed = 28;
    const ForwardResult result = full_forward(model, ids, with_steps(0, StateInit::random), seed);
    const Matrix<float> states = random_states(ids.size(), model.width(), seed);
    Matrix<float> expected(ids.size(), model.width());
    cpu::scalar::rms_norm(states.view(), ln_f, eps, expected.view());
    CHECK(relative_l2(result.latents, expected) < 1e-6);
  }
  SECTION("r = 2 writes the core slots of iterations 0 and 1 only") {
    Session session = model.new_session();
    model.forward(session, ids, with_steps(2));
    for (int id : core_slots(c, 2)) {
      REQUIRE(session.cache.find(id) != nullptr);
      CHECK(session.cache.find(id)->entries() == ids.size());
    }
    const std::vector<int> deeper = core_slots(c, 3);
    for (std::size_t k = core_slots(c, 2).size(); k < deeper.size(); ++k)
      CHECK(session.cache.find(deeper[k]) == nullptr);
    CHECK(session.cache.slot_count() ==
          std::size_t(c.n_layers_in_prelude + 2 * c.n_layers_in_recurrent_block +
                      c.n_layers_in_coda));
    CHECK(session.cache.bytes() == ids.size() * model.kv_bytes_per_token(2));
  }
}

TEST_CASE("properties: more core iterations change the logits", "[properties]") {
  for (const SyntheticModel* m : {&small_model(), &tiny_model()}) {
    const std::vector<std::int32_t> ids = random_ids(5, m->config.vocab_size, 29);
    std::vector<Matrix<float>> logits;
    for (int steps : {0, 1, 2, 4, 8})
      logits.push_back(full_forward(m->model, ids, with_steps(steps)).logits);
    for (std::size_t a = 0; a < logits.size(); ++a)
      for (std::size_t b = a + 1; b < logits.size(); ++b) {
        INFO("model width " << m->config.n_embd << ", runs " << a << " and " << b);
        CHECK(relative_l2(logits[a], logits[b]) > 1e-3);
      }
    // The default is mean_recurrence.
    CHECK(bitwise_equal(full_forward(m->model, ids).logits,
                        full_forward(m->model, ids, with_steps(m->config.mean_recurrence)).logits));
  }
}

TEST_CASE("properties: seeded random initial states are reproducible", "[properties]") {
  const F32Model& model = tiny_model().model;
  const std::vector<std::int32_t> ids = random_ids(6, model.config().vocab_size, 30);
  const ForwardOptions random = with_steps(4, StateInit::random);
  const ForwardResult a = full_forward(model, ids, random, 7);
  const ForwardResult b = full_forward(model, ids, random, 7);
  const ForwardResult other = full_forward(model, ids, random, 8);
  const ForwardResult zero = full_forward(model, ids, with_steps(4));
  CHECK(bitwise_equal(a.logits, b.logits));
  CHECK(bitwise_equal(a.latents, b.latents));
  CHECK(relative_l2(other.logits, a.logits) > 1e-4);
  CHECK(relative_l2(other.latents, a.latents) > 1e-4);
  CHECK(relative_l2(zero.logits, a.logits) > 1e-4);
  // The state of each token depends only on the seed and the tokens before it, not on how the
  // sequence is split into calls (the generator is drawn row after row).
  const ForwardResult decoded =
      in_pieces(model, ids, prefill_then_decode(2, ids.size()), random, {}, 7);
  CHECK(relative_l2(decoded.logits, a.logits) < 1e-5);
}

TEST_CASE("properties: bad inputs are refused with a message and leave the session as it was",
          "[properties]") {
  const F32Model& model = small_model().model;
  const ModelConfig& c = model.config();
  Session session = model.new_session();
  const std::vector<std::int32_t> prompt = random_ids(4, c.vocab_size, 31);
  const ForwardResult before = model.forward(session, prompt);
  const auto forward = [&](std::vector<std::int32_t> ids, ForwardOptions options = {}) {
    return [&model, &session, ids, options] { model.forward(session, ids, options); };
  };

  check_refused(model, session, forward({1, c.vocab_size}), "token id");
  check_refused(model, session, forward({1, c.vocab_size}), "vocab_size");
  check_refused(model, session, forward({c.vocab_size + 1000}), "out of range");
  check_refused(model, session, forward({3, -1, 2}), "token id");
  check_refused(model, session, forward({}), "no input tokens");
  check_refused(model, session, forward(random_ids(c.block_size - 3, c.vocab_size, 32)),
                "block_size");
  check_refused(model, session, forward({1}, with_steps(-1)), "steps");

  const Matrix<float> wrong_rows = random_states(2, model.width(), 33);
  const Matrix<float> wrong_cols = random_states(3, model.width() + 1, 34);
  ForwardOptions given = with_steps(2, StateInit::given);
  given.initial_state = wrong_rows.view();
  check_refused(model, session, forward({1, 2, 3}, given), "initial state");
  given.initial_state = wrong_cols.view();
  check_refused(model, session, forward({1, 2, 3}, given), "initial state");
  given.initial_state = {};
  check_refused(model, session, forward({1, 2, 3}, given), "initial state");

  // A fresh session refuses more tokens than the context holds.
  Session fresh = model.new_session();
  check_refused(
      model, fresh, [&] { model.forward(fresh, random_ids(c.block_size + 1, c.vocab_size, 35)); },
      "block_size");
  CHECK(fresh.cache.slot_count() == 0);

  // After the refusals the session goes on as if they never happened.
  const std::vector<std::int32_t> next = random_ids(3, c.vocab_size, 36);
  const ForwardResult after = model.forward(session, next);
  std::vector<std::int32_t> all = prompt;
  all.insert(all.end(), next.begin(), next.end());
  const ForwardResult reference = full_forward(model, all);
  CHECK(relative_l2(after.logits, rows_of(reference.logits, 4, 3)) < 1e-5);
  CHECK(relative_l2(before.logits, rows_of(reference.logits, 0, 4)) < 1e-5);

  // The context fills up to exactly block_size positions.
  const std::size_t room = std::size_t(c.block_size) - session.cache.length();
  check_refused(model, session, forward(random_ids(room + 1, c.vocab_size, 37)), "block_size");
  CHECK_NOTHROW(model.forward(session, random_ids(room, c.vocab_size, 38)));
  CHECK(session.cache.length() == std::size_t(c.block_size));
  check_refused(model, session, forward({1}), "block_size");

  // Generation options.
  Session generation = model.new_session();
  GenerationOptions negative;
  negative.max_new_tokens = -1;
  check_refused(
      model, generation, [&] { generate(model, generation, prompt, negative); }, "max_new_tokens");
  GenerationOptions given_init;
  given_init.init = StateInit::given;
  check_refused(
      model, generation, [&] { generate(model, generation, prompt, given_init); }, "initial state");
}

TEST_CASE("properties: bf16 storage of bf16-valued weights gives the f32 logits",
          "[properties][bf16]") {
  // tiny_huginn's weights are exactly bf16 values, so storing them as bf16 loses nothing; only
  // kernels that round the activations of bf16 products (the AMX tiles, from 8 positions) add
  // their declared error.
  const double bound = 1e-6 + cpu::selected_kernels().bf16_activation_error;
  const std::vector<std::int32_t> ids = random_ids(9, huginn_f32().config().vocab_size, 39);
  // Random given states, so that r = 0 has nonzero latents (a zero state stays zero to the end).
  const Matrix<float> states = random_states(ids.size(), huginn_f32().width(), 44);
  for (int steps : {0, 3, 8}) {
    ForwardOptions options = with_steps(steps, StateInit::given);
    options.initial_state = states.view();
    const ForwardResult f32 = full_forward(huginn_f32(), ids, options);
    const ForwardResult b16 = full_forward(huginn_bf16(), ids, options);
    INFO("steps " << steps);
    CHECK(relative_l2(b16.logits, f32.logits) < bound);
    CHECK(relative_l2(b16.latents, f32.latents) < bound);
  }
  // The same on synthetic weights stored as BF16, loaded both ways.
  const ModelConfig c = small_config();
  const Checkpoint stored = synthetic_checkpoint(c, 40, DType::BF16);
  const F32Model as_f32(c, stored);
  const BF16Model as_bf16(c, stored);
  const std::vector<std::int32_t> small_ids = random_ids(7, c.vocab_size, 41);
  // (The float and bf16 kernels sum in different orders: bf16 adds even and odd elements in
  // separate lanes.)
  CHECK(relative_l2(full_forward(as_bf16, small_ids).logits,
                    full_forward(as_f32, small_ids).logits) < 1e-5);
  // Sanity: f32 weights rounded to bf16 do change the logits (the comparison can fail).
  const Checkpoint f32_weights = synthetic_checkpoint(c, 40, DType::F32);
  const F32Model exact(c, f32_weights);
  const BF16Model rounded(c, f32_weights);
  CHECK(relative_l2(full_forward(rounded, small_ids).logits,
                    full_forward(exact, small_ids).logits) > 1e-5);
}

TEST_CASE("properties: results do not depend on the number of threads", "[properties][threads]") {
  const F32Model& model = tiny_model().model;
  const std::vector<std::int32_t> ids = random_ids(13, model.config().vocab_size, 42);
  ForwardResult one, two;
  {
    const ThreadCount threads(1);
    REQUIRE(max_threads() == 1);
    one = full_forward(model, ids);
  }
  {
    const ThreadCount threads(2);
    two = full_forward(model, ids);
  }
  CHECK(relative_l2(two.logits, one.logits) < 1e-6);
  CHECK(relative_l2(two.latents, one.latents) < 1e-6);
}

TEST_CASE("properties: greedy generation", "[properties][generate]") {
  const auto check = [](const auto& model, const std::string& name) {
    const std::vector<std::int32_t> prompt = random_ids(4, model.config().vocab_size, 43);
    GenerationOptions options;
    options.max_new_tokens = 6;
    options.steps = 3;

    Session session = model.new_session();
    std::vector<std::int32_t> streamed;
    const std::vector<GeneratedToken> tokens =
        generate(model, session, prompt, options, [&](const GeneratedToken& t) {
          streamed.push_back(t.id);
        }).tokens;
    INFO(name);
    REQUIRE(tokens.size() == 6);
    std::vector<std::int32_t> ids;
    for (const GeneratedToken& t : tokens) {
      ids.push_back(t.id);
      CHECK(t.steps == 3);
      CHECK(t.id >= 0);
      CHECK(t.id < model.config().vocab_size);
      CHECK(t.seconds >= 0.0);
    }
    CHECK(streamed == ids);
    // The last token is produced but not yet fed back.
    CHECK(session.cache.length() == prompt.size() + tokens.size() - 1);

    // Each token is the argmax of the full forward over the prompt and the tokens before it.
    std::vector<std::int32_t> sequence = prompt;
    sequence.insert(sequence.end(), ids.begin(), ids.end() - 1);
    const ForwardResult full = full_forward(model, sequence, with_steps(3));
    for (std::size_t k = 0; k < ids.size(); ++k) {
      const float* row = full.logits.row(prompt.size() - 1 + k);
      CHECK(argmax({row, full.logits.cols()}) == ids[k]);
    }

    // A stop id ends generation right after its first occurrence.
    GenerationOptions stopping = options;
    stopping.stop_ids = {ids[3], -5};
    const std::size_t first = std::size_t(std::find(ids.begin(), ids.end(), ids[3]) - ids.begin());
    Session session2 = model.new_session();
    const std::vector<GeneratedToken> stopped = generate(model, session2, prompt, stopping).tokens;
    REQUIRE(stopped.size() == first + 1);
    for (std::size_t k = 0; k < stopped.size(); ++k) CHECK(stopped[k].id == ids[k]);

    // A stop id never produced changes nothing; zero new tokens runs nothing.
    GenerationOptions never = options;
    never.stop_ids = {-7};
    Session session3 = model.new_session();
    CHECK(generate(model, session3, prompt, never).tokens.size() == 6);
    GenerationOptions none = options;
    none.max_new_tokens = 0;
    Session session4 = model.new_session();
    CHECK(generate(model, session4, prompt, none).tokens.empty());
    CHECK(session4.cache.length() == 0);
  };
  check(tiny_model().model, "tiny");
  check(huginn_f32(), "tiny_huginn");

  // tiny_huginn's reference continuation of its golden prompt repeats 60 from the fourth token.
  const recurrent_depth::testing::Golden golden("tiny_huginn");
  const std::size_t prompt_length = golden.meta["greedy_prompt_len"];
  const std::span<const std::int32_t> prompt(golden.input_ids.data(), prompt_length);
  const auto expected = golden.meta["greedy_plain_tokens"].get<std::vector<std::int32_t>>();
  GenerationOptions options;
  options.max_new_tokens = int(expected.size());
  options.stop_ids = {expected[3]};
  Session session = huginn_f32().new_session();
  const std::vector<GeneratedToken> stopped =
      generate(huginn_f32(), session, prompt, options).tokens;
  REQUIRE(stopped.size() == 4);
  for (std::size_t k = 0; k < 4; ++k) CHECK(stopped[k].id == expected[k]);
}
