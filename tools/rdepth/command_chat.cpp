// rdepth chat: an interactive multi-turn chat (DESIGN.md section 5). Reads the user's lines from
// stdin (a terminal or a pipe), streams each reply to stdout and a statistics line to stderr (dim
// on a terminal); /reset, /steps N, /help and /quit (or end of input). The conversation stays in
// one KV cache: each turn prefills only its new tokens (rd::ChatSession, generate/chat.hpp).
#include <unistd.h>

#include <charconv>
#include <cstdio>
#include <iostream>
#include <limits>
#include <string>
#include <string_view>

#include "common.hpp"
#include "generation_flags.hpp"
#include "test_time.hpp"

namespace rdepth {
namespace {

constexpr int kDefaultMaxNewTokens = 256;
constexpr const char* kCommands = "/reset (new conversation), /steps N, /help, /quit";

Arguments chat_arguments() {
  return Arguments(
      "chat",
      "--model DIR [--steps R] [--system TEXT] [--max-new-tokens N] [--cache RULE]\n"
      "                   [--exit CRITERION --exit-threshold X [--exit-min-steps N] "
      "[--exit-every N]]\n"
      "                   [--continuous] [--temperature T --top-k K --top-p P --min-p M] "
      "[--repetition-penalty X]\n"
      "                   [--seed S] [--draft-steps D [--lookahead L] [--accept-ratio X]]\n"
      "                   [--weights f32|bf16|int8|q4] [--threads N]",
      "Chats with the model in DIR (config.json, weights, tokenizer.json and optionally\n"
      "generation_config.json). Each line read from stdin is a user message; the reply streams\n"
      "to stdout, then a line of statistics goes to stderr: tokens, tokens/s, core iterations per\n"
      "token, the tokens this turn prefilled and the KV cache's length. Lines starting with / are\n"
      "commands: /reset forgets the conversation, /steps N sets r, /help lists them, /quit (or\n"
      "the end of input) ends the chat.\n"
      "\n"
      "Messages are written with the model's chat template (Huginn's: no system message unless\n"
      "--system). A reply ends at one of generation_config.json's eos_token_id or <|end_turn|>,\n"
      "or after N tokens. Sampling defaults come from generation_config.json (greedy without\n"
      "\"do_sample\": true); the sampling flags override them one by one. Only each turn's new\n"
      "tokens are prefilled: the conversation so far stays in the KV cache.",
      concat(concat(concat({model_flag(),
                            steps_flag(),
                            {"--system", "TEXT", "a system message opening the conversation"},
                            {"--max-new-tokens", "N",
                             "most tokens per reply (default: generation_config.json's, or 256)"},
                            {"--seed", "S", "seed of the sampler (default 0)"},
                            {"--continuous", "",
                             "warm start: each token from the previous one's "
                             "latent"},
                            cache_flag(),
                            kv_format_flag()},
                           exit_flags()),
                    concat(sampling_flags(), speculative_flags())),
             {weights_flag(), backend_flag(), threads_flag()}));
}

// Where the chat writes: reply text to stdout; prompts to stdout on a terminal; notes and
// statistics to stderr, dim when stderr is a terminal.
struct Console {
  bool interactive = ::isatty(STDIN_FILENO) != 0;
  bool dim = ::isatty(STDERR_FILENO) != 0;

  void note(const std::string& text) const {
    std::cout.flush();
    std::cerr << (dim ? "\x1b[2m" : "") << text << (dim ? "\x1b[0m" : "") << std::endl;
  }
  void prompt() const {
    if (interactive) std::cout << "> " << std::flush;
  }
};

std::string statistics(const rd::ChatTurn& turn, int steps) {
  char line[320];
  std::snprintf(line, sizeof line,
                "[%zu tokens, %.1f tokens/s, %.2f core iterations/token at r = %d; prefilled %zu "
                "tokens in %.3f s; KV cache %zu tokens]",
                turn.generation.tokens.size(), tokens_per_second(turn.generation),
                iterations_per_token(turn.generation), steps, turn.prompt.size(),
                turn.generation.stats.prefill_seconds, turn.cached_after);
  return line;
}

// "/steps N": a non-negative integer N.
std::optional<int> parse_steps(std::string_view text) {
  text = rd::trim_whitespace(text);
  int n = -1;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (ec != std::errc() || end != text.data() + text.size() || n < 0) return std::nullopt;
  return n;
}

template <class Chat>
int chat_loop(Chat& chat, const Console& console, int default_steps) {
  std::string line;
  while (true) {
    console.prompt();
    if (!std::getline(std::cin, line)) break;
    const std::string_view text = rd::trim_whitespace(line);
    if (text.empty()) continue;
    if (text.front() == '/') {
      const std::size_t space = text.find(' ');
      const std::string_view command = text.substr(0, space);
      const std::string_view rest = space == std::string_view::npos ? "" : text.substr(space);
      if (command == "/quit" || command == "/exit") return 0;
      if (command == "/reset") {
        chat.reset();
        console.note("(conversation reset)");
      } else if (command == "/steps") {
        if (const auto n = parse_steps(rest)) {
          chat.generation_options().steps = *n;
          console.note("(r = " + std::to_string(*n) + " core iterations per token)");
        } else {
          console.note("rdepth chat: /steps expects a non-negative integer, e.g. /steps 8");
        }
      } else if (command == "/help") {
        console.note(std::string("commands: ") + kCommands);
      } else {
        console.note("rdepth chat: unknown command " + std::string(command) +
                     " (commands: " + kCommands + ")");
      }
      continue;
    }
    try {
      const rd::ChatTurn turn =
          chat.send(text, [](std::string_view piece) { std::cout << piece << std::flush; });
      std::cout << std::endl;
      console.note(statistics(turn, chat.generation_options().steps.value_or(default_steps)));
    } catch (const rd::Error& e) {
      console.note(std::string("rdepth chat: ") + e.what());
    }
  }
  if (console.interactive) std::cout << std::endl;
  return 0;
}

}  // namespace

int command_chat(const std::vector<std::string>& words) {
  Arguments args = chat_arguments();
  if (!args.parse(words)) {
    std::cout << args.help();
    return 0;
  }
  const std::filesystem::path dir = model_directory(args);
  const rd::WeightFormat format = weight_format(args);
  const rd::ModelConfig config = rd::load_model_config(dir / "config.json");
  const rd::GenerationConfig defaults = rd::GenerationConfig::load(dir / "generation_config.json");

  rd::ChatOptions options;
  rd::GenerationOptions& g = options.generation;
  g.max_new_tokens =
      static_cast<int>(args.integer("--max-new-tokens", 1, std::numeric_limits<int>::max())
                           .value_or(defaults.max_new_tokens.value_or(kDefaultMaxNewTokens)));
  g.steps = steps(args);
  g.continuous = args.has("--continuous");
  g.exit = exit_options(args);
  g.sampling = sampling_options(args, defaults.sampling);
  g.speculative = speculative_options(args);
  g.seed = seed(args);
  g.stop_ids = defaults.stop_ids;
  options.system = args.get("--system");
  options.cache = cache_rule(args);
  apply_threads(args);
  const rd::tokenizer::Tokenizer tokenizer = load_tokenizer(dir, config, "chat needs it");

  return with_model(dir, format, backend(args), [&](const auto& model) {
    rd::ChatSession chat(model, tokenizer, options);
    const Console console;
    if (console.interactive) {
      console.note("rdepth chat: " + dir.string() +
                   ", r = " + std::to_string(g.steps.value_or(config.mean_recurrence)) + ", " +
                   std::string(rd::weight_format_name(format)) + " weights. " + kCommands);
    }
    return chat_loop(chat, console, config.mean_recurrence);
  });
}

}  // namespace rdepth
