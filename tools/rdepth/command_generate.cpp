// rdepth generate: generation from a prompt (token ids, or text through the model directory's
// tokenizer.json) with the test-time features (early exit, KV cache rules, continuous warm start,
// sampling, self-speculative decoding), streaming the new ids, or the new text for a text prompt,
// to stdout (or printing one JSON object of tokens and statistics with --json).
#include <cmath>
#include <cstdio>
#include <iostream>
#include <limits>
#include <span>

#include <nlohmann/json.hpp>

#include "common.hpp"
#include "generation_flags.hpp"
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
      "Without --json the new token ids stream to stdout, space-separated (with --prompt TEXT: "
      "the\n"
      "new text, decoded by DIR/tokenizer.json, special tokens written out), and a summary goes\n"
      "to stderr. With --json one object is printed: prompt (with --prompt), text (the new text,\n"
      "with --prompt), prompt_ids, tokens, steps (core iterations of "
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
      concat(concat({model_flag(),
                     {"--prompt-ids", "IDS", "prompt as comma-separated token ids, e.g. 3,17,5"},
                     {"--prompt", "TEXT",
                      "prompt as text: DIR/tokenizer.json encodes it, <|begin_text|> (BOS) first"},
                     {"--max-new-tokens", "N", "number of tokens to generate (required)"},
                     steps_flag(),
                     init_flag(),
                     {"--seed", "S",
                      "seed of the sampler and of the random initial state (default 0)"},
                     {"--stop-ids", "IDS",
                      "stop after producing one of these ids, e.g. 65505,65508 (default: none)"},
                     {"--continuous", "", "warm start: each token from the previous one's latent"},
                     cache_flag(),
                     kv_format_flag()},
                    exit_flags()),
             concat(concat(sampling_flags(), speculative_flags()),
                    {weights_flag(),
                     backend_flag(),
                     threads_flag(),
                     {"--json", "", "print one JSON object on stdout instead of streaming"}})));
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
  if (!args.has("--prompt-ids") && !args.has("--prompt")) {
    fail("give the prompt: --prompt TEXT or --prompt-ids 3,17,5");
  }

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

  const rd::ModelConfig config = rd::load_model_config(dir / "config.json");
  const auto text_prompt = args.get("--prompt");
  std::optional<rd::tokenizer::Tokenizer> tokenizer;
  if (text_prompt) {
    tokenizer =
        load_tokenizer(dir, config, "--prompt TEXT needs it; without one give --prompt-ids 3,17,5");
  }
  const std::vector<std::int32_t> prompt =
      tokenizer ? tokenizer->encode(*text_prompt, true) : token_list(args, "--prompt-ids", config);
  const char* prompt_flag = tokenizer ? "--prompt" : "--prompt-ids";
  options.stop_ids = token_list(args, "--stop-ids", config);
  const auto context = static_cast<std::size_t>(config.block_size);
  if (prompt.size() > context) {
    fail(prompt_flag, ": the prompt has ", prompt.size(),
         " tokens, more than the model's context of ", context, " positions (block_size)");
  }
  // The last new token is never fed back, so N new tokens need prompt + N - 1 positions.
  if (max_new > 0 && prompt.size() + static_cast<std::size_t>(max_new) - 1 > context) {
    fail("--max-new-tokens ", max_new, ": the prompt of ", prompt.size(),
         " tokens leaves room for at most ", context - prompt.size() + 1,
         " new tokens in the model's context of ", context, " positions (block_size)");
  }
  const int steps_used = options.steps.value_or(config.mean_recurrence);

  return with_model(dir, format, backend(args), [&](const auto& model) {
    auto session = model.new_session(options.seed, rule);
    bool first = true;
    std::optional<rd::TextStream> decoder;  // with --prompt TEXT: the new text
    std::string new_text;
    if (tokenizer) decoder.emplace(*tokenizer, false);
    const auto stream = [&](const rd::GeneratedToken& token) {
      if (decoder) {
        const std::string piece = decoder->push(token.id);
        new_text += piece;
        if (!json) std::fputs(piece.c_str(), stdout);
      } else if (!json) {
        std::printf(first ? "%d" : " %d", token.id);
      }
      std::fflush(stdout);
      first = false;
    };
    const rd::Generation generation = rd::generate(model, session, prompt, options,
                                                   json && !decoder ? rd::TokenCallback() : stream);
    if (decoder) {
      const std::string rest = decoder->finish();
      new_text += rest;
      if (!json) std::fputs(rest.c_str(), stdout);
    }
    const rd::GenerationStats& stats = generation.stats;

    const std::size_t decoded = decoded_count(generation);
    const double rate = tokens_per_second(generation);
    const std::size_t cached = session.cache.length();
    const double kv_per_token = cached > 0 ? double(session.cache.bytes()) / double(cached) : 0.0;
    const std::size_t kv_formula = model.kv_bytes_per_token(steps_used, rule);
    const std::string weights(rd::weight_format_name(format));

    if (json) {
      nlohmann::ordered_json out;
      if (decoder) {
        out["prompt"] = *text_prompt;
        out["text"] = new_text;
      }
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
      out["tokens_per_second"] = rate;
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
      out["kv_format"] = rd::kv_format_name(session.cache.format());
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
                 stats.prefill_seconds, decoded, stats.decode_seconds, rate, rule.name().c_str(),
                 session.cache.bytes(), kv_per_token, extra.c_str());
    return 0;
  });
}

}  // namespace rdepth
