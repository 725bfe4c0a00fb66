// rdepth trace: the latent dynamics of one forward over a prompt (rd::trace_latents): per token
// and core iteration the state's norm, its distance to the previous and to the last iteration,
// and the token an early stop would decode, with its probability. A table on stdout, or one JSON
// object with --json ({"tokens": [{"id", "text", "iterations": [{...}]}]}); --states adds the
// raw states [r + 1][n_embd] per token for PCA (tools/analysis/plot_latents.py).
#include <cstdio>
#include <iostream>
#include <limits>

#include <nlohmann/json.hpp>

#include "common.hpp"
#include "generation_flags.hpp"
#include "recurrent_depth/generate/latent_trace.hpp"

namespace rdepth {
namespace {

Arguments trace_arguments() {
  return Arguments(
      "trace",
      "--model DIR (--prompt TEXT | --prompt-ids 3,17,5) [--steps R] [--init zero|random]\n"
      "                    [--seed S] [--weights FMT] [--threads N] [--json [--states]]",
      "Runs the prompt through the model in one pass with r core iterations and records, for\n"
      "every token and iteration i, the raw latent state s_i: its norm, ||s_i - s_{i-1}|| (s_0 "
      "the\n"
      "initial state), ||s_i - s_r||, and the argmax token of ln_f -> coda -> ln_f -> head on s_i\n"
      "with its probability. Without --json: one line per token at the last iteration and the\n"
      "iteration from which its early decode equals the final one.",
      {model_flag(),
       {"--prompt", "TEXT", "prompt as text: DIR/tokenizer.json encodes it, BOS first"},
       {"--prompt-ids", "IDS", "prompt as comma-separated token ids"},
       steps_flag(),
       init_flag(),
       seed_flag(),
       weights_flag(),
       backend_flag(),
       threads_flag(),
       {"--json", "", "print one JSON object with every token's iterations"},
       {"--states", "", "with --json: include the raw states (\"states\": [r + 1][n_embd])"}});
}

}  // namespace

int command_trace(const std::vector<std::string>& words) {
  Arguments args = trace_arguments();
  if (!args.parse(words)) {
    std::cout << args.help();
    return 0;
  }
  if (args.has("--prompt") == args.has("--prompt-ids")) {
    fail("give the prompt: either --prompt TEXT or --prompt-ids 3,17,5");
  }
  if (args.has("--states") && !args.has("--json")) fail("--states needs --json");
  const std::filesystem::path dir = model_directory(args);
  const rd::WeightFormat format = weight_format(args);
  const rd::ModelConfig config = rd::load_model_config(dir / "config.json");
  rd::LatentTraceOptions options;
  options.steps = steps(args).value_or(config.mean_recurrence);
  if (options.steps < 1) fail("--steps ", options.steps, ": trace needs at least 1 iteration");
  options.init = state_init(args);
  options.keep_states = args.has("--states");
  apply_threads(args);

  std::optional<rd::tokenizer::Tokenizer> tokenizer;
  std::vector<std::int32_t> prompt;
  if (const auto text = args.get("--prompt")) {
    tokenizer = load_tokenizer(dir, config, "--prompt TEXT needs it");
    prompt = tokenizer->encode(*text, true);
  } else {
    const std::vector<std::int64_t> ids =
        *args.integer_list("--prompt-ids", 0, config.vocab_size - 1);
    for (std::int64_t id : ids) prompt.push_back(static_cast<std::int32_t>(id));
  }
  if (prompt.empty()) fail("the prompt has no tokens");
  if (prompt.size() > static_cast<std::size_t>(config.block_size)) {
    fail("the prompt has ", prompt.size(), " tokens, more than the model's context of ",
         config.block_size, " positions (block_size)");
  }
  const auto piece = [&](std::int32_t id) {
    return tokenizer ? token_text(*tokenizer, id) : std::to_string(id);
  };

  return with_model(dir, format, backend(args), [&](const auto& model) {
    auto session = model.new_session(seed(args));
    const rd::LatentTrace trace = rd::trace_latents(model, session, prompt, options);
    if (args.has("--json")) {
      nlohmann::ordered_json out;
      out["steps"] = options.steps;
      out["tokens"] = nlohmann::ordered_json::array();
      for (std::size_t t = 0; t < prompt.size(); ++t) {
        nlohmann::ordered_json token;
        token["position"] = t;
        token["id"] = prompt[t];
        token["text"] = piece(prompt[t]);
        nlohmann::ordered_json iterations = nlohmann::ordered_json::array();
        for (const rd::LatentStep& s : trace.tokens[t])
          iterations.push_back({{"norm", s.norm},
                                {"distance_to_previous", s.distance_to_previous},
                                {"distance_to_last", s.distance_to_last},
                                {"argmax", s.argmax},
                                {"argmax_text", piece(s.argmax)},
                                {"probability", s.probability}});
        token["iterations"] = std::move(iterations);
        if (options.keep_states) token["states"] = trace.states[t];
        out["tokens"].push_back(std::move(token));
      }
      std::cout << out.dump() << std::endl;
      return 0;
    }
    std::printf("%4s  %-8s %10s %12s  %-8s %7s  %s\n", "pos", "token", "norm", "last step",
                "decodes", "p", "settled at");
    for (std::size_t t = 0; t < prompt.size(); ++t) {
      const std::vector<rd::LatentStep>& steps = trace.tokens[t];
      std::size_t settled = steps.size();  // first iteration from which the decode stays final
      while (settled > 1 && steps[settled - 2].argmax == steps.back().argmax) --settled;
      std::printf("%4zu  %-8s %10.3f %12.3g  %-8s %7.3f  %zu\n", t,
                  nlohmann::json(piece(prompt[t])).dump().c_str(), steps.back().norm,
                  steps.back().distance_to_previous,
                  nlohmann::json(piece(steps.back().argmax)).dump().c_str(),
                  steps.back().probability, settled);
    }
    return 0;
  });
}

}  // namespace rdepth
