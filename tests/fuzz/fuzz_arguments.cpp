// Fuzz target: rdepth's argument parser. The input is split at NUL bytes into words, parsed
// against a spec with switches, numbers and lists like rdepth generate's, and every accessor is
// read; each must give a value or an Error, never another exception or a crash.
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "arguments.hpp"

namespace {

rdepth::Arguments spec() {
  return rdepth::Arguments("fuzz", "--model DIR [flags]", "A spec for the fuzz target.",
                           {{"--model", "DIR", "model directory"},
                            {"--steps", "R", "core iterations"},
                            {"--temperature", "T", "sampling temperature"},
                            {"--seed", "S", "seed"},
                            {"--prompt-ids", "IDS", "comma-separated ids"},
                            {"--tasks", "FILES", "comma-separated files"},
                            {"--init", "MODE", "zero or random"},
                            {"--json", "", "print JSON"},
                            {"--continuous", "", "warm start"}});
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::vector<std::string> words;  // NUL-separated, as argv after the command name
  for (std::size_t i = 0; i < size; ++i) {
    if (words.empty() || data[i] == 0) words.emplace_back();
    if (data[i] != 0) words.back() += char(data[i]);
  }
  rdepth::Arguments args = spec();
  try {
    if (!args.parse(words)) {
      (void)args.help();
      return 0;
    }
  } catch (const recurrent_depth::Error&) {
    return 0;
  }
  const auto read = [&](auto&& accessor) {
    try {
      accessor();
    } catch (const recurrent_depth::Error&) {
    }
  };
  read([&] { (void)args.required("--model"); });
  read([&] { (void)args.integer("--steps", 0, std::numeric_limits<int>::max()); });
  read([&] { (void)args.number("--temperature"); });
  read([&] { (void)args.unsigned_integer("--seed"); });
  read([&] {
    (void)args.integer_list("--prompt-ids", std::numeric_limits<std::int64_t>::min(),
                            std::numeric_limits<std::int64_t>::max());
  });
  read([&] { (void)args.string_list("--tasks", "task files"); });
  read([&] { (void)args.choice("--init", {"zero", "random"}); });
  (void)args.has("--json");
  (void)args.has("--continuous");
  return 0;
}
