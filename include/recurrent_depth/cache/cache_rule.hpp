// How a KV cache stores and finds the entries of recurrent iterations, by name:
//   full                    every core slot kept; a token that stopped early is missing at slots
//                           it never reached (attention skips it there)
//   latest-m4               such a token is seen through its deepest entry of the same core layer:
//                           the largest slot s' <= s with (s' - 2) % 4 == (s - 2) % 4 (the paper's
//                           rule)
//   compress-sK             core slot s > 1 is stored at (s - 2) % K + 2: K slots shared by all
//                           iterations, each token keeping its latest entry there
//   latest-m4-compress-sK   both
// The constants 2 and 4 are the reference's (Huginn: 2 prelude blocks, 4 core layers); they are
// kept literally so every model matches the reference's caches. A rule also says in which number
// format the entries are stored (kv_format.hpp); unset, the model chooses.
#pragma once

#include <charconv>
#include <optional>
#include <string>
#include <string_view>

#include "../core/error.hpp"
#include "kv_format.hpp"

namespace recurrent_depth {

struct CacheRule {
  bool latest_same_layer = false;  // latest-m4
  int compress = 0;                // K of compress-sK; 0: not compressed
  std::optional<KvFormat> format;  // unset: the model's default (RecurrentDepthModel::new_session)

  bool operator==(const CacheRule&) const = default;

  static CacheRule parse(std::string_view name) {
    CacheRule rule;
    std::string_view rest = name;
    if (rest == "full") return rule;
    if (rest.starts_with("latest-m4")) {
      rule.latest_same_layer = true;
      rest.remove_prefix(9);
      if (rest.empty()) return rule;
      if (!rest.starts_with("-")) bad(name);
      rest.remove_prefix(1);
    }
    if (!rest.starts_with("compress-s")) bad(name);
    rest.remove_prefix(10);
    const auto [end, error] =
        std::from_chars(rest.data(), rest.data() + rest.size(), rule.compress);
    if (error != std::errc() || end != rest.data() + rest.size()) bad(name);
    require(rule.compress >= 1, "cache: ", name, ": K is ", rule.compress, ", expected K >= 1");
    return rule;
  }

  std::string name() const {
    std::string result = latest_same_layer ? "latest-m4" : "";
    if (compress > 0) {
      if (!result.empty()) result += '-';
      result += "compress-s";
      result += std::to_string(compress);
    }
    return result.empty() ? "full" : result;
  }

  // The slot an entry of block invocation `slot` is stored in.
  int storage_slot(int slot) const {
    return compress > 0 && slot > 1 ? (slot - 2) % compress + 2 : slot;
  }

  // Whether entries at `candidate` stand in for missing entries at `slot` under latest-m4.
  static bool same_layer(int candidate, int slot) {
    const auto residue = [](int s) { return ((s - 2) % 4 + 4) % 4; };
    return candidate >= 0 && candidate <= slot && residue(candidate) == residue(slot);
  }

 private:
  [[noreturn]] static void bad(std::string_view name) {
    fail(
        "cache: unknown rule '", name,
        "', expected full, latest-m4, compress-sK or latest-m4-compress-sK (K a positive integer)");
  }
};

}  // namespace recurrent_depth
