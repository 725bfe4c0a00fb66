// Generation flags shared by rdepth generate and chat: sampling (--temperature, --top-k, --top-p,
// --min-p, --repetition-penalty), self-speculative decoding (--draft-steps, --lookahead,
// --accept-ratio), the model directory's tokenizer, and the per-generation statistics both print.
#pragma once

#include <cmath>
#include <filesystem>
#include <limits>
#include <optional>
#include <vector>

#include "common.hpp"
#include "recurrent_depth/generate/chat.hpp"

namespace rdepth {

inline std::vector<FlagSpec> sampling_flags() {
  return {{"--temperature", "T", "0 is greedy; T > 0 samples"},
          {"--top-k", "K", "sample among the K most likely tokens (0: off; needs T > 0)"},
          {"--top-p", "P", "nucleus sampling, 0 < P <= 1 (1: off; needs T > 0)"},
          {"--min-p", "M", "keep tokens with p >= M p_max, 0 <= M <= 1 (0: off; needs T > 0)"},
          {"--repetition-penalty", "X", "X > 0; > 1 discourages tokens already seen (1: off)"}};
}

inline std::vector<FlagSpec> speculative_flags() {
  return {{"--draft-steps", "D", "self-speculative decoding: D core iterations per draft token"},
          {"--lookahead", "L", "tokens drafted per round, L >= 1 (default 8; needs --draft-steps)"},
          {"--accept-ratio", "X",
           "also accept a draft whose verified p >= X p_max, 0 <= X <= 1 (default 0: exact)"}};
}

// A finite number within [low, high] (open at either end where `open_low`/`open_high`), as float.
inline std::optional<float> bounded(const Arguments& args, const char* flag, double low,
                                    bool open_low, double high, bool open_high,
                                    const char* expected) {
  const auto x = args.number(flag);
  if (!x) return std::nullopt;
  const bool ok = (open_low ? *x > low : *x >= low) && (open_high ? *x < high : *x <= high) &&
                  std::isfinite(static_cast<float>(*x));
  if (!ok) fail(flag, " is ", *args.get(flag), ", expected ", expected);
  return static_cast<float>(*x);
}

// The sampling flags over `defaults` (each flag replaces one field).
inline rd::SamplingOptions sampling_options(const Arguments& args,
                                            rd::SamplingOptions defaults = {}) {
  constexpr double inf = std::numeric_limits<double>::infinity();
  constexpr std::int64_t most = std::numeric_limits<int>::max();
  rd::SamplingOptions s = defaults;
  s.temperature =
      bounded(args, "--temperature", 0, false, inf, true, "a number >= 0").value_or(s.temperature);
  s.top_k = static_cast<int>(args.integer("--top-k", 0, most).value_or(s.top_k));
  s.top_p =
      bounded(args, "--top-p", 0, true, 1, false, "a number with 0 < P <= 1").value_or(s.top_p);
  s.min_p =
      bounded(args, "--min-p", 0, false, 1, false, "a number with 0 <= M <= 1").value_or(s.min_p);
  s.repetition_penalty = bounded(args, "--repetition-penalty", 0, true, inf, true, "a number > 0")
                             .value_or(s.repetition_penalty);
  if (s.greedy()) {
    for (const char* flag : {"--top-k", "--top-p", "--min-p"})
      if (args.has(flag)) {
        fail(flag, " needs --temperature T > 0: at temperature 0 decoding is greedy");
      }
  }
  return s;
}

inline std::optional<rd::SpeculativeOptions> speculative_options(const Arguments& args) {
  if (!args.has("--draft-steps")) {
    for (const char* flag : {"--lookahead", "--accept-ratio"})
      if (args.has(flag)) fail(flag, " needs --draft-steps D (self-speculative decoding)");
    return std::nullopt;
  }
  constexpr std::int64_t most = std::numeric_limits<int>::max();
  rd::SpeculativeOptions s;
  s.draft_steps = static_cast<int>(*args.integer("--draft-steps", 0, most));
  s.lookahead = static_cast<int>(args.integer("--lookahead", 1, most).value_or(8));
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

// A tokenizer.json, checked against the model's vocabulary (its ids must be model ids).
inline rd::tokenizer::Tokenizer load_tokenizer_file(const std::filesystem::path& path,
                                                    const rd::ModelConfig& config) {
  rd::tokenizer::Tokenizer tokenizer = rd::tokenizer::Tokenizer::load(path.string());
  if (tokenizer.vocab_size() > static_cast<std::size_t>(config.vocab_size)) {
    fail(path.string(), ": has token ids up to ", tokenizer.vocab_size() - 1,
         ", beyond the model's vocabulary of ", config.vocab_size, " (config.json vocab_size)");
  }
  return tokenizer;
}

// DIR/tokenizer.json, checked against the model's vocabulary.
inline rd::tokenizer::Tokenizer load_tokenizer(const std::filesystem::path& dir,
                                               const rd::ModelConfig& config, const char* why) {
  const std::filesystem::path path = dir / "tokenizer.json";
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    fail("--model ", dir.string(), ": no tokenizer.json in this directory (", why, ")");
  }
  return load_tokenizer_file(path, config);
}

// One token's text; ids the tokenizer lacks (a model's padded vocabulary) are written "#id".
inline std::string token_text(const rd::tokenizer::Tokenizer& tokenizer, std::int32_t id) {
  if (id < 0 || static_cast<std::size_t>(id) >= tokenizer.vocab_size()) {
    std::string text(1, '#');
    return text.append(std::to_string(id));
  }
  return tokenizer.decode(std::span<const std::int32_t>(&id, 1), false);
}

inline std::size_t decoded_count(const rd::Generation& g) {
  return g.tokens.empty() ? 0 : g.tokens.size() - 1;
}

inline double tokens_per_second(const rd::Generation& g) {
  return g.stats.decode_seconds > 0 ? double(decoded_count(g)) / g.stats.decode_seconds : 0.0;
}

// Core iterations after the prompt's forward (which ran the first token's steps for every
// prompt token), per token after the first.
inline double iterations_per_token(const rd::Generation& g) {
  const std::size_t decoded = decoded_count(g);
  if (decoded == 0) return 0.0;
  const std::size_t prefill = g.stats.prompt_tokens * static_cast<std::size_t>(g.tokens[0].steps);
  return double(g.stats.core_iterations - prefill) / double(decoded);
}

}  // namespace rdepth
