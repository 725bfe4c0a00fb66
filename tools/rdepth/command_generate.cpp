// rdepth generate: generation from a prompt of token ids with the test-time features (early exit,
// KV cache rules, continuous warm start, sampling, self-speculative decoding), streaming the new
// ids to stdout (or printing one JSON object of tokens and statistics with --json).
#include <cmath>
#include <cstdio>
#include <iostream>
#include <limits>
#include <span>

#include <nlohmann/json.hpp>

#include "common.hpp"
#include "test_time.hpp"

namespace rdepth {
namespace {

constexpr std::int64_t kMostInt = std::numeric_limits<int>::max();

Arguments generate_arguments() {
  return Arguments(
      "generate",
      "--model DIR (--prompt-ids 3,17,5 | --prompt TEXT) --max-new-tokens N [--steps R]\n"
      "                       [--init zero|random] [--seed S] [--continuous] [--cache RULE]\n"
      "                       [--exit CRITERION --exit-threshold X [--exit-min-steps N] "
      "[--exit-every N]]\n"
      "                       [--temperature T --top-k K --top-p P --min-p M] "
      "[--repetition-penalty X]\n"
      "                       [--draft-steps D [--lookahead L] [--accept-ratio X]] [--stop-ids "
      "IDS]\n"
      "                       [--weights f32|bf16] [--threads N] [--json]",
      "Prefills the prompt through the KV cache, then generates up to N tokens one at a time, "
      "each\n"
      "with r core iterations, taking the most likely token (greedy) unless --temperature T > 0.\n"
      "Without --json the new token ids stream to stdout, space-separated, and a summary goes to\n"
      "stderr. With --json one object is printed: prompt_ids, tokens, steps (core iterations of "
      "the\n"
      "forward that produced each token), exit_values (with --exit: the criterion's value at each\n"
      "check, per token; none for the first, which comes from the prompt's forward),\n"
      "tokens_per_second (tokens after the first / decode_seconds; 0 with no decode step),\n"
      "prefill_seconds, decode_seconds, iterations_per_token (core iterations spent while "
      "decoding,\n"
      "drafts and verifications included, per token after the first), exit_probes (exit checks "
      "that\n"
      "ran ln_f -> coda -> ln_f -> head), forwards, core_iterations (prompt included), kv_bytes "
      "and\n"
      "cached_tokens (the KV cache at the end), kv_bytes_per_token (kv_bytes / cached_tokens) and\n"
      "kv_bytes_per_token_formula (the model's figure at r for the rule), cache, weights, seed "
      "and,\n"
      "with --draft-steps, drafted, accepted, acceptance_rate and rounds.\n"
      "\n"
      "Test-time features:\n"
      "  --exit C --exit-threshold X  each decoded token stops iterating once criterion C says so\n"
      "                               (at most r iterations; the prompt runs all r)\n"
      "  --cache RULE                 how the KV cache stores the core iterations' entries\n"
      "  --continuous                 each new token starts from the previous token's final "
      "latent\n"
      "  --temperature T > 0          sample (chain: repetition penalty, temperature, top-k, "
      "top-p,\n"
      "                               min-p); --seed S seeds both the sampler and --init random\n"
      "  --draft-steps D              self-speculative decoding: draft L tokens with D "
      "iterations,\n"
      "                               verify them in one pass at r; greedy with --accept-ratio 0\n"
      "                               gives exactly the tokens of plain decoding",
      concat(
          concat(
              {model_flag(),
               {"--prompt-ids", "IDS", "prompt as comma-separated token ids, e.g. 3,17,5"},
               {"--prompt", "TEXT", "prompt as text (needs the tokenizer: not supported yet)"},
               {"--max-new-tokens", "N", "number of tokens to generate (required)"},
               steps_flag(),
               init_flag(),
               {"--seed", "S", "seed of the sampler and of the random initial state (default 0)"},
               {"--stop-ids", "IDS",
                "stop after producing one of these ids, e.g. 65505,65508 (default: none)"},
               {"--continuous", "", "warm start: each token from the previous one's latent"},
               cache_flag()},
              exit_flags()),
          {{"--temperature", "T", "0 (default) is greedy; T > 0 samples"},
           {"--top-k", "K", "sample among the K most likely tokens (0: off; needs T > 0)"},
           {"--top-p", "P", "nucleus sampling, 0 < P <= 1 (1: off; needs T > 0)"},
           {"--min-p", "M", "keep tokens with p >= M p_max, 0 <= M <= 1 (0: off; needs T > 0)"},
           {"--repetition-penalty", "X", "X > 0; > 1 discourages tokens already seen (1: off)"},
           {"--draft-steps", "D", "self-speculative decoding: D core iterations per draft token"},
           {"--lookahead", "L",
            "tokens drafted per round, L >= 1 (default 8; needs --draft-steps)"},
           {"--accept-ratio", "X",
            "also accept a draft whose verified p >= X p_max, 0 <= X <= 1 (default 0: exact)"},
           weights_flag(),
           threads_flag(),
           {"--json", "", "print one JSON object on stdout instead of streaming"}}));
}

// A list of token ids, each checked against the vocabulary.
std::vector<std::int32_t> token_list(const Arguments& args, const char* flag,
                                     const rd::ModelConfig& config) {
  std::vector<std::int32_t> ids;
  const auto list = args.integer_list(flag, std::numeric_limits<std::int64_t>::min(),
                                      std::numeric_limits<std::int64_t>::max());
  if (!list) return ids;
  for (std::size_t i = 0; i < list->size(); ++i) {
    const std::int64_t id = (*list)[i];
    if (id < 0 || id >= config.vocab_size) {
      fail(flag, ": item ", i, " is ", id, ", not a token id (expected 0 <= id < vocab_size ",
           config.vocab_size, ")");
    }
    ids.push_back(static_cast<std::int32_t>(id));
  }
  return ids;
}

// A finite number within [low, high] (open at either end where `open_low`/`open_high`), as float.
std::optional<float> bounded(const Arguments& args, const char* flag, double low, bool open_low,
                             double high, bool open_high, const char* expected) {
  const auto x = args.number(flag);
  if (!x) return std::nullopt;
  const bool ok = (open_low ? *x > low : *x >= low) && (open_high ? *x < high : *x <= high) &&
                  std::isfinite(static_cast<float>(*x));
  if (!ok) fail(flag, " is ", *args.get(flag), ", expected ", expected);
  return static_cast<float>(*x);
}

rd::SamplingOptions sampling_options(const Arguments& args) {
  constexpr double inf = std::numeric_limits<double>::infinity();
  rd::SamplingOptions s;
  s.temperature = bounded(args, "--temperature", 0, false, inf, true, "a number >= 0").value_or(0);
  s.top_k = static_cast<int>(args.integer("--top-k", 0, kMostInt).value_or(0));
  s.top_p = bounded(args, "--top-p", 0, true, 1, false, "a number with 0 < P <= 1").value_or(1);
  s.min_p = bounded(args, "--min-p", 0, false, 1, false, "a number with 0 <= M <= 1").value_or(0);
  s.repetition_penalty =
      bounded(args, "--repetition-penalty", 0, true, inf, true, "a number > 0").value_or(1);
  if (s.greedy()) {
    for (const char* flag : {"--top-k", "--top-p", "--min-p"})
      if (args.has(flag)) {
        fail(flag, " needs --temperature T > 0: at temperature 0 (the default) decoding is greedy");
      }
  }
  return s;
}

std::optional<rd::SpeculativeOptions> speculative_options(const Arguments& args) {
  if (!args.has("--draft-steps")) {
    for (const char* flag : {"--lookahead", "--accept-ratio"})
      if (args.has(flag)) fail(flag, " needs --draft-steps D (self-speculative decoding)");
    return std::nullopt;
  }
  rd::SpeculativeOptions s;
  s.draft_steps = static_cast<int>(*args.integer("--draft-steps", 0, kMostInt));
  s.lookahead = static_cast<int>(args.integer("--lookahead", 1, kMostInt).value_or(8));
  if (const auto ratio = args.number("--accept-ratio")) {
    if (*ratio < 0 || *ratio > 1) {
      fail("--accept-ratio is ", *args.get("--accept-ratio"), ", expected 0 <= X <= 1");
    }
    s.accept_ratio = *ratio;
  }
  if (args.has("--continuous")) {
    fail(
        "--continuous does not combine with --draft-steps: a drafted token's warm start would "
        "depend on the previous token's full-depth latent");
  }
  if (args.has("--exit")) {
    fail("--exit does not combine with --draft-steps: speculative decoding verifies at full depth");
  }
  return s;
}

std::size_t decoded_count(const rd::Generation& g) {
  return g.tokens.empty() ? 0 : g.tokens.size() - 1;
}

// Core iterations after the prompt's forward (which ran the first token's steps for every
// prompt token), per token after the first.
double iterations_per_token(const rd::Generation& g) {
  const std::size_t decoded = decoded_count(g);
  if (decoded == 0) return 0.0;
  const std::size_t prefill = g.stats.prompt_tokens * static_cast<std::size_t>(g.tokens[0].steps);
  return double(g.stats.core_iterations - prefill) / double(decoded);
}

}  // namespace

int command_generate(const std::vector<std::string>& words) {
  Arguments args = generate_arguments();
  if (!args.parse(words)) {
    std::cout << args.help();
    return 0;
  }
  if (args.has("--prompt") && args.has("--prompt-ids")) {
    fail("give either --prompt or --prompt-ids, not both");
  }
  if (args.has("--prompt")) {
    fail(
        "--prompt TEXT needs the tokenizer, which is not supported yet; "
        "give the prompt as token ids with --prompt-ids 3,17,5");
  }
  if (!args.has("--prompt-ids")) fail("--prompt-ids is required (e.g. --prompt-ids 3,17,5)");

  const std::filesystem::path dir = model_directory(args);
  const rd::WeightFormat format = weight_format(args);
  if (!args.has("--max-new-tokens")) fail("--max-new-tokens is required");
  const auto max_new = static_cast<int>(*args.integer("--max-new-tokens", 0, kMostInt));
  rd::GenerationOptions options;
  options.max_new_tokens = max_new;
  options.steps = steps(args);
  options.init = state_init(args);
  options.continuous = args.has("--continuous");
  options.exit = exit_options(args);
  options.sampling = sampling_options(args);
  options.speculative = speculative_options(args);
  options.seed = seed(args);  // the sampler's; the session's random initial state uses it too
  const rd::CacheRule rule = cache_rule(args);
  const bool json = args.has("--json");
  apply_threads(args);

  const rd::ModelConfig config = rd::ModelConfig::load(dir / "config.json");
  const std::vector<std::int32_t> prompt = token_list(args, "--prompt-ids", config);
  options.stop_ids = token_list(args, "--stop-ids", config);
  const auto context = static_cast<std::size_t>(config.block_size);
  if (prompt.size() > context) {
    fail("--prompt-ids: the prompt has ", prompt.size(),
         " tokens, more than the model's context of ", context, " positions (block_size)");
  }
  // The last new token is never fed back, so N new tokens need prompt + N - 1 positions.
  if (max_new > 0 && prompt.size() + static_cast<std::size_t>(max_new) - 1 > context) {
    fail("--max-new-tokens ", max_new, ": the prompt of ", prompt.size(),
         " tokens leaves room for at most ", context - prompt.size() + 1,
         " new tokens in the model's context of ", context, " positions (block_size)");
  }
  const int steps_used = options.steps.value_or(config.mean_recurrence);

  return with_model(dir, format, [&](const auto& model) {
    auto session = model.new_session(options.seed, rule);
    bool first = true;
    const auto stream = [&](const rd::GeneratedToken& token) {
      std::printf(first ? "%d" : " %d", token.id);
      std::fflush(stdout);
      first = false;
    };
    const rd::Generation generation =
        rd::generate(model, session, prompt, options, json ? rd::TokenCallback() : stream);
    const rd::GenerationStats& stats = generation.stats;

    const std::size_t decoded = decoded_count(generation);
    const double tokens_per_second =
        stats.decode_seconds > 0 ? double(decoded) / stats.decode_seconds : 0.0;
    const std::size_t cached = session.cache.length();
    const double kv_per_token = cached > 0 ? double(session.cache.bytes()) / double(cached) : 0.0;
    const std::size_t kv_formula = model.kv_bytes_per_token(steps_used, rule);
    const std::string weights(rd::weight_format_name(format));

    if (json) {
      nlohmann::ordered_json out;
      out["prompt_ids"] = prompt;
      out["tokens"] = generation.ids();
      std::vector<int> steps_per_token;
      nlohmann::ordered_json exit_values = nlohmann::ordered_json::array();
      for (const rd::GeneratedToken& t : generation.tokens) {
        steps_per_token.push_back(t.steps);
        exit_values.push_back(t.exit_values);
      }
      out["steps"] = steps_per_token;
      if (options.exit) {
        out["exit"] = std::string(rd::exit_criterion_name(options.exit->criterion));
        out["exit_threshold"] = options.exit->threshold;
        out["exit_values"] = std::move(exit_values);
      }
      out["tokens_per_second"] = tokens_per_second;
      out["prefill_seconds"] = stats.prefill_seconds;
      out["decode_seconds"] = stats.decode_seconds;
      out["iterations_per_token"] = iterations_per_token(generation);
      out["exit_probes"] = stats.exit_probes;
      out["forwards"] = stats.forwards;
      out["core_iterations"] = stats.core_iterations;
      out["kv_bytes"] = session.cache.bytes();
      out["cached_tokens"] = cached;
      out["kv_bytes_per_token"] = kv_per_token;
      out["kv_bytes_per_token_formula"] = kv_formula;
      out["cache"] = rule.name();
      out["weights"] = weights;
      out["seed"] = options.seed;
      if (options.speculative) {
        out["draft_steps"] = options.speculative->draft_steps;
        out["lookahead"] = options.speculative->lookahead;
        out["drafted"] = stats.drafted;
        out["accepted"] = stats.accepted;
        out["acceptance_rate"] = stats.acceptance_rate();
        out["rounds"] = stats.rounds;
      }
      std::cout << out.dump() << std::endl;
      return 0;
    }

    std::printf("\n");
    std::fflush(stdout);
    std::string extra;
    char text[256];
    if (options.exit || options.speculative) {
      std::snprintf(text, sizeof text, "; %.2f core iterations per decoded token",
                    iterations_per_token(generation));
      extra += text;
    }
    if (options.speculative) {
      std::snprintf(text, sizeof text,
                    "; speculative: %zu of %zu drafts accepted (%.1f%%), %zu rounds",
                    stats.accepted, stats.drafted, 100.0 * stats.acceptance_rate(), stats.rounds);
      extra += text;
    }
    std::fprintf(stderr,
                 "rdepth generate: %zu new tokens, r = %d core iterations per token, %s weights; "
                 "prefill %zu tokens %.3f s; decode %zu tokens %.3f s (%.1f tokens/s); KV cache "
                 "(%s) %zu bytes, %.0f per token%s\n",
                 generation.tokens.size(), steps_used, weights.c_str(), prompt.size(),
                 stats.prefill_seconds, decoded, stats.decode_seconds, tokens_per_second,
                 rule.name().c_str(), session.cache.bytes(), kv_per_token, extra.c_str());
    return 0;
  });
}

}  // namespace rdepth
