// rdepth forward: reads input_ids (and optionally input_states) from a safetensors file, runs the
// model (one causal pass; --prefill P then token by token through the KV cache; or --exit: token by
// token with per-token early exit) under a KV cache rule, and writes logits, latents (and steps).
#include <chrono>
#include <cstdio>
#include <iostream>
#include <map>
#include <optional>
#include <span>

#include "common.hpp"
#include "test_time.hpp"

namespace rdepth {
namespace {

Arguments forward_arguments() {
  return Arguments(
      "forward",
      "--model DIR --input IN.safetensors --output OUT.safetensors [--steps R] [--prefill P]\n"
      "                      [--cache full|latest-m4|compress-sK|latest-m4-compress-sK]\n"
      "                      [--exit CRITERION --exit-threshold X [--exit-min-steps N] "
      "[--exit-every N]]\n"
      "                      [--weights f32|bf16] [--threads N] [--init zero|random --seed S]",
      "Runs the model over the tokens of IN (tensor input_ids, I64 or I32, shape [T] or [1, T]) "
      "and\n"
      "writes logits (F32 [T, vocab]) and latents (F32 [T, n_embd], the post-ln_f state the coda\n"
      "receives) to OUT. If IN also holds input_states (F32 [T, n_embd] or [1, T, n_embd]), row t "
      "is\n"
      "token t's initial recurrent state; otherwise the state starts at zero (or random with "
      "--init\n"
      "random). By default all T tokens go through one causal pass; with --prefill P the first P "
      "do,\n"
      "then the others one at a time through the KV cache. With --exit every token goes through "
      "the\n"
      "cache alone from the start, stopping when the criterion says so (at most R iterations), "
      "and\n"
      "OUT also gets steps (I32 [T], the core iterations each token ran). --cache sets how the KV\n"
      "cache stores and finds the core iterations' entries (see DESIGN.md).",
      concat(
          {model_flag(),
           {"--input", "IN", "safetensors file with input_ids and optionally input_states"},
           {"--output", "OUT", "safetensors file to write (logits, latents; steps with --exit)"},
           steps_flag(),
           {"--prefill", "P", "first P tokens in one pass, then one token at a time (1 <= P <= T)"},
           cache_flag(),
           kv_format_flag()},
          concat(exit_flags(),
                 {weights_flag(), backend_flag(), threads_flag(), init_flag(), seed_flag()})));
}

struct ForwardInput {
  std::vector<std::int64_t> ids;
  std::vector<float> states;  // [T, width] row-major, empty without input_states
  std::size_t width = 0;      // columns of input_states
};

ForwardInput read_input(const std::filesystem::path& file) {
  const std::string name = file.string();
  std::error_code ec;
  if (!std::filesystem::is_regular_file(file, ec)) fail("--input ", name, ": no such file");
  const rd::SafetensorsFile input = rd::open_safetensors(file);

  const rd::TensorInfo* ids = input.find("input_ids");
  if (ids == nullptr) fail("--input ", name, ": no tensor input_ids");
  if (ids->dtype != rd::DType::I64 && ids->dtype != rd::DType::I32) {
    fail("--input ", name, ": input_ids is ", rd::dtype_name(ids->dtype), ", expected I64 or I32");
  }
  const bool ids_shape_ok =
      ids->shape.size() == 1 || (ids->shape.size() == 2 && ids->shape[0] == 1);
  if (!ids_shape_ok) {
    fail("--input ", name, ": input_ids has shape ", ids->shape_string(),
         ", expected [T] or [1, T]");
  }
  ForwardInput result;
  result.ids = rd::read_integers(*ids);
  if (result.ids.empty()) fail("--input ", name, ": input_ids is empty");
  const auto count = static_cast<std::int64_t>(result.ids.size());

  if (const rd::TensorInfo* states = input.find("input_states")) {
    const auto& s = states->shape;
    const bool shape_ok =
        (s.size() == 2 && s[0] == count) || (s.size() == 3 && s[0] == 1 && s[1] == count);
    if (!shape_ok) {
      fail("--input ", name, ": input_states has shape ", states->shape_string(), ", expected [",
           count, ", n_embd] or [1, ", count, ", n_embd] (input_ids has ", count, " tokens)");
    }
    result.width = static_cast<std::size_t>(s.back());
    result.states.resize(states->numel());
    rd::read_values(*states, std::span<float>(result.states));  // F32 (BF16/F16 converted)
  }
  return result;
}

// Checks the input against the model's config, before the (possibly slow) model load.
void check_input(const ForwardInput& input, const rd::ModelConfig& config) {
  if (input.ids.size() > static_cast<std::size_t>(config.block_size)) {
    fail("--input: ", input.ids.size(), " tokens exceed the model's context of ", config.block_size,
         " positions (block_size)");
  }
  for (std::size_t t = 0; t < input.ids.size(); ++t) {
    if (input.ids[t] < 0 || input.ids[t] >= config.vocab_size) {
      fail("--input: input_ids[", t, "] = ", input.ids[t],
           " is out of range, expected 0 <= id < vocab_size ", config.vocab_size);
    }
  }
  if (!input.states.empty() && input.width != static_cast<std::size_t>(config.n_embd)) {
    fail("--input: input_states has ", input.width, " columns, the model's n_embd is ",
         config.n_embd);
  }
}

// Rows of `m` copied into the row-major `out` ([*, m.cols]) from row `first` on.
void put_rows(rd::ConstMatrixView<float> m, std::vector<float>& out, std::size_t first) {
  for (std::size_t r = 0; r < m.rows; ++r)
    std::copy_n(m.row(r), m.cols, out.begin() + static_cast<std::ptrdiff_t>((first + r) * m.cols));
}

}  // namespace

int command_forward(const std::vector<std::string>& words) {
  Arguments args = forward_arguments();
  if (!args.parse(words)) {
    std::cout << args.help();
    return 0;
  }
  const std::filesystem::path dir = model_directory(args);
  const std::filesystem::path input_path = args.required("--input");
  const std::filesystem::path output_path = args.required("--output");
  const rd::WeightFormat format = weight_format(args);
  const std::optional<int> requested_steps = steps(args);
  const auto prefill = args.integer("--prefill", 1, std::numeric_limits<int>::max());
  const rd::CacheRule rule = cache_rule(args);
  const std::optional<rd::ExitOptions> exit = exit_options(args);
  if (exit && prefill) {
    fail("--exit runs every token alone from the start; it does not combine with --prefill");
  }
  const rd::StateInit init = state_init(args);
  const std::uint64_t random_seed = seed(args);
  apply_threads(args);

  const rd::ModelConfig config = rd::load_model_config(dir / "config.json");
  const ForwardInput input = read_input(input_path);
  check_input(input, config);
  const std::size_t count = input.ids.size();
  const bool given = !input.states.empty();
  if (given && args.has("--init")) {
    fail("--init conflicts with the input_states of ", input_path.string(),
         ", which set the initial state");
  }
  if (prefill && static_cast<std::size_t>(*prefill) > count) {
    fail("--prefill is ", *prefill, ", expected 1 <= --prefill <= ", count,
         " (the number of input tokens)");
  }
  const int steps_used = requested_steps.value_or(config.mean_recurrence);
  std::vector<std::int32_t> ids(input.ids.begin(), input.ids.end());  // checked < vocab_size
  const rd::ConstMatrixView<float> states(input.states.data(), given ? count : 0, input.width);

  return with_model(dir, format, backend(args), [&](const auto& model) {
    auto session = model.new_session(random_seed, rule);
    std::optional<rd::CriterionExit> decider;
    if (exit) decider.emplace(*exit);
    rd::ForwardOptions options;
    options.steps = requested_steps;
    options.init = given ? rd::StateInit::given : init;
    options.exit = decider ? &*decider : nullptr;
    const std::span<const std::int32_t> all(ids);
    std::vector<float> logits, latents;
    std::vector<std::int32_t> token_steps(count, 0);
    std::size_t probes = 0;
    const auto run = [&](std::size_t first, std::size_t n) {
      if (given) options.initial_state = states.middle_rows(first, n);
      const rd::ForwardResult result = model.forward(session, all.subspan(first, n), options);
      logits.resize(count * result.logits.cols());
      latents.resize(count * result.latents.cols());
      put_rows(result.logits.view(), logits, first);
      put_rows(result.latents.view(), latents, first);
      std::copy(result.steps.begin(), result.steps.end(),
                token_steps.begin() + static_cast<std::ptrdiff_t>(first));
      for (int p : result.probes) probes += static_cast<std::size_t>(p);
      return result.logits.cols();
    };

    const auto start = std::chrono::steady_clock::now();
    std::size_t vocab = 0;
    if (exit) {
      for (std::size_t t = 0; t < count; ++t) vocab = run(t, 1);
    } else if (!prefill) {
      vocab = run(0, count);
    } else {
      vocab = run(0, static_cast<std::size_t>(*prefill));
      for (std::size_t t = static_cast<std::size_t>(*prefill); t < count; ++t) run(t, 1);
    }
    const std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - start;

    std::map<std::string, std::string> metadata{
        {"steps", std::to_string(steps_used)},
        {"weights", std::string(rd::weight_format_name(format))},
        {"prefill", std::to_string(exit ? 1 : prefill.value_or(count))},
        {"cache", rule.name()}};
    if (exit) {
      metadata["exit"] = std::string(rd::exit_criterion_name(exit->criterion));
      metadata["exit_threshold"] = *args.get("--exit-threshold");
    }
    rd::SafetensorsWriter writer(metadata);
    const auto rows = static_cast<std::int64_t>(count);
    writer.add_f32("logits", {rows, static_cast<std::int64_t>(vocab)}, logits);
    writer.add_f32("latents", {rows, static_cast<std::int64_t>(model.width())}, latents);
    if (exit) writer.add_i32("steps", {rows}, token_steps);
    writer.write(output_path);

    std::string mode =
        prefill ? "prefill " + std::to_string(*prefill) + " then decode" : "one pass";
    if (exit) {
      std::size_t total = 0;
      for (int s : token_steps) total += static_cast<std::size_t>(s);
      char text[160];
      std::snprintf(text, sizeof text,
                    "token by token, exit %s: %.2f iterations per token, %zu probes",
                    metadata["exit"].c_str(), double(total) / double(count), probes);
      mode = text;
    }
    std::fprintf(stderr,
                 "rdepth forward: %zu tokens, r = %d, %s weights, cache %s, %s, %.3f s -> %s\n",
                 count, steps_used, std::string(rd::weight_format_name(format)).c_str(),
                 rule.name().c_str(), mode.c_str(), elapsed.count(), output_path.c_str());
    return 0;
  });
}

}  // namespace rdepth
