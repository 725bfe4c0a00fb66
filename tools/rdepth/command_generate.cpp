// rdepth generate: greedy generation from a prompt of token ids, streaming the new ids to stdout
// (or one JSON object with --json) and timing prefill and decode.
#include <cstdio>
#include <iostream>
#include <limits>
#include <span>

#include <nlohmann/json.hpp>

#include "common.hpp"

namespace rdepth {
namespace {

Arguments generate_arguments() {
  return Arguments(
      "generate",
      "--model DIR (--prompt-ids 3,17,5 | --prompt TEXT) --max-new-tokens N [--steps R]\n"
      "                       [--init zero|random --seed S] [--temperature 0] [--stop-ids 65505,65508]\n"
      "                       [--weights f32|bf16] [--threads N] [--json]",
      "Prefills the prompt through the KV cache, then generates up to N tokens one at a time, each\n"
      "with r core iterations, taking the most likely token (greedy). Without --json the new token ids\n"
      "stream to stdout, space-separated, and a summary goes to stderr. With --json one object is\n"
      "printed: prompt_ids, tokens, steps (per new token), tokens_per_second (decode: tokens after the\n"
      "first / decode_seconds; 0 with no decode step), prefill_seconds (the prompt's forward, which\n"
      "yields the first token), decode_seconds, kv_bytes (KV cache at the end) and weights.",
      {model_flag(),
       {"--prompt-ids", "IDS", "prompt as comma-separated token ids, e.g. 3,17,5"},
       {"--prompt", "TEXT", "prompt as text (needs the tokenizer: not supported yet)"},
       {"--max-new-tokens", "N", "number of tokens to generate (required)"},
       steps_flag(),
       init_flag(),
       seed_flag(),
       {"--stop-ids", "IDS", "stop after producing one of these ids, e.g. 65505,65508 (default: none)"},
       {"--temperature", "T", "0 (default) is greedy; sampling is not supported yet"},
       {"--top-k", "K", "top-k sampling (not supported yet)"},
       {"--top-p", "P", "nucleus sampling (not supported yet)"},
       {"--min-p", "M", "min-p sampling (not supported yet)"},
       {"--continuous", "", "warm start from the previous token's latent (not supported yet)"},
       {"--exit", "CRITERION", "per-token early exit (not supported yet)"},
       {"--exit-threshold", "X", "early-exit threshold (not supported yet)"},
       {"--cache", "KIND", "KV cache: full (default; compressed caches are not supported yet)"},
       {"--draft-steps", "D", "self-speculative decoding draft depth (not supported yet)"},
       {"--lookahead", "L", "self-speculative decoding lookahead (not supported yet)"},
       weights_flag(),
       threads_flag(),
       {"--json", "", "print one JSON object on stdout instead of streaming"}});
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
  reject_unsupported(args, {"--top-k", "--top-p", "--min-p", "--continuous", "--exit",
                            "--exit-threshold", "--draft-steps", "--lookahead"});
  check_cache(args);
  if (const auto temperature = args.number("--temperature")) {
    if (*temperature < 0) fail("--temperature is ", *temperature, ", expected >= 0");
    if (*temperature != 0) {
      fail("--temperature ", *temperature,
           " is not supported yet: sampling is a later feature; use --temperature 0 (greedy)");
    }
  }
  if (args.has("--prompt") && args.has("--prompt-ids")) {
    fail("give either --prompt or --prompt-ids, not both");
  }
  if (args.has("--prompt")) {
    fail("--prompt TEXT needs the tokenizer, which is not supported yet; "
         "give the prompt as token ids with --prompt-ids 3,17,5");
  }
  if (!args.has("--prompt-ids")) fail("--prompt-ids is required (e.g. --prompt-ids 3,17,5)");

  const std::filesystem::path dir = model_directory(args);
  const rd::WeightFormat format = weight_format(args);
  if (!args.has("--max-new-tokens")) fail("--max-new-tokens is required");
  const auto max_new =
      static_cast<int>(*args.integer("--max-new-tokens", 0, std::numeric_limits<int>::max()));
  rd::GenerationOptions options;
  options.max_new_tokens = max_new;
  options.steps = steps(args);
  options.init = state_init(args);
  const std::uint64_t random_seed = seed(args);
  const bool json = args.has("--json");
  apply_threads(args);

  const rd::ModelConfig config = rd::ModelConfig::load(dir / "config.json");
  const std::vector<std::int32_t> prompt = token_list(args, "--prompt-ids", config);
  options.stop_ids = token_list(args, "--stop-ids", config);
  const auto context = static_cast<std::size_t>(config.block_size);
  if (prompt.size() > context) {
    fail("--prompt-ids: the prompt has ", prompt.size(), " tokens, more than the model's context of ",
         context, " positions (block_size)");
  }
  // The last new token is never fed back, so N new tokens need prompt + N - 1 positions.
  if (max_new > 0 && prompt.size() + static_cast<std::size_t>(max_new) - 1 > context) {
    fail("--max-new-tokens ", max_new, ": the prompt of ", prompt.size(), " tokens leaves room for at most ",
         context - prompt.size() + 1, " new tokens in the model's context of ", context,
         " positions (block_size)");
  }
  const int steps_used = options.steps.value_or(config.mean_recurrence);

  return with_model(dir, format, [&](const auto& model) {
    auto session = model.new_session(random_seed);
    bool first = true;
    const auto stream = [&](const rd::GeneratedToken& token) {
      std::printf(first ? "%d" : " %d", token.id);
      std::fflush(stdout);
      first = false;
    };
    const std::vector<rd::GeneratedToken> generated =
        json ? rd::generate(model, session, prompt, options)
             : rd::generate(model, session, prompt, options, stream);

    const double prefill_seconds = generated.empty() ? 0.0 : generated.front().seconds;
    double decode_seconds = 0.0;
    for (std::size_t i = 1; i < generated.size(); ++i) decode_seconds += generated[i].seconds;
    const std::size_t decoded = generated.empty() ? 0 : generated.size() - 1;
    const double tokens_per_second = decode_seconds > 0 ? double(decoded) / decode_seconds : 0.0;
    const std::string weights(rd::weight_format_name(format));

    if (json) {
      nlohmann::ordered_json out;
      out["prompt_ids"] = prompt;
      std::vector<std::int32_t> tokens;
      std::vector<int> steps_per_token;
      for (const rd::GeneratedToken& t : generated) {
        tokens.push_back(t.id);
        steps_per_token.push_back(t.steps);
      }
      out["tokens"] = tokens;
      out["steps"] = steps_per_token;
      out["tokens_per_second"] = tokens_per_second;
      out["prefill_seconds"] = prefill_seconds;
      out["decode_seconds"] = decode_seconds;
      out["kv_bytes"] = session.cache.bytes();
      out["weights"] = weights;
      std::cout << out.dump() << std::endl;
    } else {
      std::printf("\n");
      std::fflush(stdout);
      std::fprintf(stderr,
                   "rdepth generate: %zu new tokens, r = %d core iterations per token, %s weights; "
                   "prefill %zu tokens %.3f s; decode %zu tokens %.3f s (%.1f tokens/s); KV cache "
                   "%zu bytes\n",
                   generated.size(), steps_used, weights.c_str(), prompt.size(), prefill_seconds,
                   decoded, decode_seconds, tokens_per_second, session.cache.bytes());
    }
    return 0;
  });
}

}  // namespace rdepth
