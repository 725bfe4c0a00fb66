// rdepth: the command-line tool of recurrent_depth (DESIGN.md section 5). Dispatches to the
// sub-commands and turns every error into "rdepth: <message>" on stderr with exit code 1.
#include <cstdio>
#include <exception>
#include <iostream>
#include <string>
#include <string_view>
#include <vector>

#include "common.hpp"

namespace {

constexpr const char* kUsage =
    "usage: rdepth COMMAND [flags]    (rdepth COMMAND --help for the flags of one command)\n"
    "\n"
    "commands:\n"
    "  forward   run the model over token ids from a safetensors file; write logits and latents\n"
    "  generate  generation from a prompt of token ids or text\n"
    "  inspect   config, stored tensors, parameter counts, weight and KV cache memory of a model\n"
    "  tokenize  text to token ids and back with a tokenizer.json\n"
    "  chat      interactive multi-turn chat with the model's chat template\n"
    "  bench     prefill and decode speed next to the machine's measured limits and a peer\n"
    "  eval      exact-match accuracy of greedy answers on task files, per number of iterations\n"
    "  trace     latent dynamics per token and iteration: norms, distances, early decodes\n"
    "  serve     OpenAI-compatible HTTP server with continuous batching\n";

struct Command {
  std::string_view name;
  int (*run)(const std::vector<std::string>&);
};

constexpr Command kCommands[] = {
    {"forward", rdepth::command_forward}, {"generate", rdepth::command_generate},
    {"inspect", rdepth::command_inspect}, {"tokenize", rdepth::command_tokenize},
    {"chat", rdepth::command_chat},       {"bench", rdepth::command_bench},
    {"eval", rdepth::command_eval},       {"trace", rdepth::command_trace},
    {"serve", rdepth::command_serve},
};

int dispatch(int argc, char** argv) {
  if (argc < 2) {
    std::fputs("rdepth: no command given\n", stderr);
    std::fputs(kUsage, stderr);
    return 2;
  }
  const std::string_view name = argv[1];
  if (name == "--help" || name == "-h" || name == "help") {
    std::fputs(kUsage, stdout);
    return 0;
  }
  const std::vector<std::string> rest(argv + 2, argv + argc);
  for (const Command& command : kCommands)
    if (command.name == name) return command.run(rest);
  std::fprintf(stderr, "rdepth: unknown command '%s'\n", argv[1]);
  std::fputs(kUsage, stderr);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    recurrent_depth::CpuBackend::check_machine();  // before any kernel runs
    return dispatch(argc, argv);
  } catch (const recurrent_depth::Error& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "rdepth: %s\n", e.what());
  } catch (const std::bad_alloc&) {
    std::fflush(stdout);
    std::fputs("rdepth: out of memory\n", stderr);
  } catch (const std::exception& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "rdepth: %s\n", e.what());
  } catch (...) {
    std::fflush(stdout);
    std::fputs("rdepth: unexpected error\n", stderr);
  }
  return 1;
}
