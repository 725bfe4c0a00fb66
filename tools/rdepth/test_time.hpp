// Test-time flags shared by rdepth forward and generate: --cache RULE, --kv-format FMT and --exit
// CRITERION with --exit-threshold, --exit-min-steps and --exit-every, parsed into the library's
// CacheRule and ExitOptions; every error names the flag and what was expected.
#pragma once

#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "common.hpp"

namespace rdepth {

inline constexpr const char* kCacheRules = "full, latest-m4, compress-sK or latest-m4-compress-sK";

inline FlagSpec cache_flag() {
  return {"--cache", "RULE",
          std::string("KV cache rule: ") + kCacheRules + " (K >= 1; default full)"};
}

inline FlagSpec kv_format_flag() {
  return {"--kv-format", "FMT",
          "KV cache entries: f32 or bf16 (half the bytes; default bf16 with int8 and q4 weights, "
          "f32 with f32 and bf16)"};
}

inline std::vector<FlagSpec> exit_flags() {
  return {
      {"--exit", "CRITERION",
       "per-token early exit: kl, minp-kl, entropy-diff, latent-diff, cosine or argmax-stability"},
      {"--exit-threshold", "X",
       "stop a token when the criterion's value is below X (argmax-stability: reaches X)"},
      {"--exit-min-steps", "N", "never stop before N core iterations (default 1)"},
      {"--exit-every", "N", "test the criterion after every N-th iteration only (default 1)"}};
}

// Appends `extra` to `flags` (the lists above go in the middle of a command's flags).
inline std::vector<FlagSpec> concat(std::vector<FlagSpec> flags,
                                    const std::vector<FlagSpec>& extra) {
  flags.insert(flags.end(), extra.begin(), extra.end());
  return flags;
}

// --kv-format; nullopt (the model's default) without it.
inline std::optional<rd::KvFormat> kv_format(const Arguments& args) {
  const auto text = args.get("--kv-format");
  if (!text) return std::nullopt;
  if (*text != "f32" && *text != "bf16") fail("--kv-format ", *text, ": expected f32 or bf16");
  return rd::parse_kv_format(*text);
}

// --cache and --kv-format.
inline rd::CacheRule cache_rule(const Arguments& args) {
  rd::CacheRule rule;
  if (const auto text = args.get("--cache")) {
    try {
      rule = rd::CacheRule::parse(*text);
    } catch (const rd::Error&) {
      fail("--cache ", *text, ": unknown cache rule, expected ", kCacheRules,
           " with K an integer >= 1");
    }
  }
  rule.format = kv_format(args);
  return rule;
}

inline std::string exit_criterion_list() {
  std::string list;
  for (std::size_t i = 0; i < std::size(rd::kExitCriterionNames); ++i) {
    if (i > 0) list += i + 1 == std::size(rd::kExitCriterionNames) ? " or " : ", ";
    list += rd::kExitCriterionNames[i];
  }
  return list;
}

// --exit and its companions; nullopt without --exit. --exit and --exit-threshold go together.
inline std::optional<rd::ExitOptions> exit_options(const Arguments& args) {
  if (!args.has("--exit")) {
    for (const char* name : {"--exit-threshold", "--exit-min-steps", "--exit-every"})
      if (args.has(name))
        fail(name, " needs --exit CRITERION (e.g. --exit kl --exit-threshold 5e-4)");
    return std::nullopt;
  }
  const std::string name = *args.get("--exit");
  if (!args.has("--exit-threshold")) {
    fail("--exit ", name, " needs --exit-threshold X (e.g. --exit kl --exit-threshold 5e-4)");
  }
  rd::ExitOptions options;
  bool known = false;
  for (std::size_t i = 0; i < std::size(rd::kExitCriterionNames); ++i)
    if (rd::kExitCriterionNames[i] == name) {
      options.criterion = static_cast<rd::ExitCriterion>(i);
      known = true;
    }
  if (!known) fail("--exit ", name, ": unknown criterion, expected ", exit_criterion_list());
  options.threshold = *args.number("--exit-threshold");  // finite, or an error naming the flag
  if (options.threshold < 0) {
    fail("--exit-threshold is ", *args.get("--exit-threshold"),
         ", expected a number >= 0 (the criteria's values are not negative)");
  }
  constexpr std::int64_t most = std::numeric_limits<int>::max();
  options.min_steps = static_cast<int>(args.integer("--exit-min-steps", 1, most).value_or(1));
  options.check_every = static_cast<int>(args.integer("--exit-every", 1, most).value_or(1));
  return options;
}

}  // namespace rdepth
