// Pieces shared by rdepth's sub-commands: the command entry points, the flags every command has
// (--model, --weights, --threads, --init/--seed) and model loading.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "arguments.hpp"
#include "load_progress.hpp"
#include "recurrent_depth/core/threads.hpp"
#include "recurrent_depth/recurrent_depth.hpp"
#if defined(RDEPTH_WITH_HIP)
#include "recurrent_depth/backends/hip/hip_backend.hpp"
#endif

namespace rdepth {

namespace rd = recurrent_depth;

// Each returns the process exit code; errors are thrown as recurrent_depth::Error.
int command_forward(const std::vector<std::string>& args);
int command_generate(const std::vector<std::string>& args);
int command_inspect(const std::vector<std::string>& args);
int command_tokenize(const std::vector<std::string>& args);
int command_chat(const std::vector<std::string>& args);
int command_bench(const std::vector<std::string>& args);
int command_eval(const std::vector<std::string>& args);
int command_trace(const std::vector<std::string>& args);
int command_serve(const std::vector<std::string>& args);

inline constexpr const char* kDefaultWeights = "bf16";

inline FlagSpec model_flag() {
  return {"--model", "DIR", "model directory: config.json and model.safetensors (or sharded)"};
}
inline FlagSpec weights_flag() {
  return {"--weights", "FMT",
          std::string("weight storage: f32, bf16, int8 (per-row scales) or q4 (4-bit, a scale "
                      "per 32 weights) (default ") +
              kDefaultWeights + ")"};
}
inline FlagSpec backend_flag() {
  return {"--backend", "NAME",
          "where the model runs: cpu (default) or hip (a GPU; rdepth built with "
          "-DRECURRENT_DEPTH_HIP=ON; f32, bf16 and int8 weights)"};
}
inline FlagSpec threads_flag() {
  return {"--threads", "N", "number of CPU threads (default: all cores, or OMP_NUM_THREADS)"};
}
inline FlagSpec steps_flag() {
  return {"--steps", "R", "core iterations r (default: the config's mean_recurrence)"};
}
inline FlagSpec init_flag() {
  return {"--init", "KIND", "initial recurrent state: zero (default) or random"};
}
inline FlagSpec seed_flag() {
  return {"--seed", "S", "seed of the random initial state (default 0)"};
}

// --model DIR, checked to be a directory with a config.json.
inline std::filesystem::path model_directory(const Arguments& args) {
  const std::filesystem::path dir = args.required("--model");
  std::error_code ec;
  if (!std::filesystem::exists(dir, ec)) fail("--model ", dir.string(), ": no such directory");
  if (!std::filesystem::is_directory(dir, ec)) {
    fail("--model ", dir.string(), ": not a directory");
  }
  if (!std::filesystem::exists(dir / "config.json", ec)) {
    fail("--model ", dir.string(), ": no config.json in this directory");
  }
  return dir;
}

inline rd::WeightFormat weight_format(const Arguments& args) {
  const std::string text = args.get("--weights").value_or(kDefaultWeights);
  for (const rd::WeightFormat format : {rd::WeightFormat::f32, rd::WeightFormat::bf16,
                                        rd::WeightFormat::int8, rd::WeightFormat::q4})
    if (text == rd::weight_format_name(format)) return format;
  fail("--weights ", text, ": unknown weight format, expected f32, bf16, int8 or q4");
}

enum class BackendChoice { cpu, hip };

inline BackendChoice backend(const Arguments& args) {
  const auto name = args.choice("--backend", {"cpu", "hip"});
  return name && *name == "hip" ? BackendChoice::hip : BackendChoice::cpu;
}

inline void apply_threads(const Arguments& args) {
  if (const auto n = args.integer("--threads", 1, 4096)) rd::set_num_threads(static_cast<int>(*n));
}

inline std::optional<int> steps(const Arguments& args) {
  if (const auto r = args.integer("--steps", 0, std::numeric_limits<int>::max()))
    return static_cast<int>(*r);
  return std::nullopt;
}

inline rd::StateInit state_init(const Arguments& args) {
  const auto kind = args.choice("--init", {"zero", "random"});
  return kind && *kind == "random" ? rd::StateInit::random : rd::StateInit::zero;
}

inline std::uint64_t seed(const Arguments& args) {
  return args.unsigned_integer("--seed").value_or(0);
}

inline FlagSpec shape_flag() {
  return {"--shape", "NAME", "seeded random weights: tiny, huginn-mini or huginn-0125"};
}

// The weights of --model DIR, or of --shape NAME (seeded random ones of a named size).
struct ModelSource {
  rd::ModelConfig config;
  rd::Checkpoint checkpoint;
  std::optional<std::filesystem::path> directory;  // with --model
  std::string name;                                // the directory, or "shape NAME"
  std::string label;                               // what the progress bar says
};

inline ModelSource model_source(const Arguments& args, bool quiet) {
  if (args.has("--model") == args.has("--shape")) fail("give either --model DIR or --shape NAME");
  if (args.has("--model")) {
    const std::filesystem::path dir = model_directory(args);
    return {rd::load_model_config(dir / "config.json"), rd::open_checkpoint(dir), dir, dir.string(),
            std::string("loading ").append(dir.string())};
  }
  const std::string shape = *args.get("--shape");
  rd::ModelConfig config = rd::shape_config(shape);
  if (!quiet) std::fprintf(stderr, "generating seeded random weights for %s ...\n", shape.c_str());
  rd::Checkpoint checkpoint =
      rd::synthetic_checkpoint(config, 1, rd::DType::BF16, true, rd::SyntheticBlocks::shared);
  return {std::move(config), std::move(checkpoint), std::nullopt,
          std::string("shape ").append(shape), std::string("packing ").append(shape)};
}

// Builds RecurrentDepthModel<Backend, Precision> from `checkpoint` (with a progress bar on stderr
// when show_progress) and calls body(model); returns what body returns.
template <class Backend, class Precision, class Body>
int build_model_and_run(const rd::ModelConfig& config, const rd::Checkpoint& checkpoint,
                        const std::string& label, bool show_progress, Body&& body) {
  std::optional<LoadProgress> progress;
  if (show_progress) progress.emplace(checkpoint, label);
  const rd::RecurrentDepthModel<Backend, Precision> model(config, checkpoint);
  progress.reset();
  return body(model);
}

// The same in the chosen weight format on the CPU (the commands that run there only).
template <class Body>
int with_cpu_model(const rd::ModelConfig& config, const rd::Checkpoint& checkpoint,
                   rd::WeightFormat format, const std::string& label, bool show_progress,
                   Body&& body) {
  return rd::with_weight_format(format, [&](auto precision) -> int {
    return build_model_and_run<rd::CpuBackend, decltype(precision)>(config, checkpoint, label,
                                                                    show_progress, body);
  });
}

// The refusal of --backend hip by an rdepth built without HIP.
[[noreturn]] inline void fail_without_hip() {
  fail(
      "--backend hip: this rdepth was built without the HIP backend (cmake "
      "-DRECURRENT_DEPTH_HIP=ON)");
}

// The same on the GPU (HipBackend), in any weight format; refuses a machine without a GPU, and in
// an rdepth built without HIP, every call.
template <class Body>
int with_hip_model(const rd::ModelConfig& config, const rd::Checkpoint& checkpoint,
                   rd::WeightFormat format, const std::string& label, bool show_progress,
                   Body&& body) {
#if defined(RDEPTH_WITH_HIP)
  rd::HipBackend::check_machine();
  return rd::with_weight_format(format, [&](auto precision) -> int {
    return build_model_and_run<rd::HipBackend, decltype(precision)>(config, checkpoint, label,
                                                                    show_progress, body);
  });
#else
  (void)config, (void)checkpoint, (void)format, (void)label, (void)show_progress, (void)body;
  fail_without_hip();
#endif
}

// The same in the chosen weight format on the chosen backend.
template <class Body>
int with_loaded_model(const rd::ModelConfig& config, const rd::Checkpoint& checkpoint,
                      rd::WeightFormat format, BackendChoice backend, const std::string& label,
                      bool show_progress, Body&& body) {
  if (backend == BackendChoice::hip)
    return with_hip_model(config, checkpoint, format, label, show_progress, body);
  return with_cpu_model(config, checkpoint, format, label, show_progress, body);
}

// Loads the model of `dir` in the chosen weight format on the chosen backend and calls
// body(model); the progress bar shows on a terminal only (scripts and tests read stderr).
template <class Body>
int with_model(const std::filesystem::path& dir, rd::WeightFormat format, BackendChoice backend,
               Body&& body) {
  const rd::Checkpoint checkpoint = rd::open_checkpoint(dir);
  const rd::ModelConfig config = rd::load_model_config(dir / "config.json");
  return with_loaded_model(config, checkpoint, format, backend, "loading " + dir.string(),
                           ::isatty(STDERR_FILENO), std::forward<Body>(body));
}

}  // namespace rdepth
