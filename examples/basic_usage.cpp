// Using the library from C++: load a Huginn checkpoint directory (config.json + safetensors),
// run one forward pass at a chosen number of core iterations, then generate greedily.
// Usage: basic_usage [MODEL_DIR]   (default: the tiny model shipped in tests/data/tiny_huginn)
#include <cstdio>
#include <vector>

#include "recurrent_depth/recurrent_depth.hpp"

namespace rd = recurrent_depth;

int main(int argc, char** argv) try {
  const char* directory = argc > 1 ? argv[1] : "tests/data/tiny_huginn";
  const auto model = rd::load_model<rd::CpuBackend, rd::BF16>(directory);

  const std::vector<std::int32_t> prompt = {3, 17, 5, 42, 7};
  rd::Session session = model.new_session();
  rd::ForwardOptions forward;
  forward.steps = 16;  // core iterations: chosen at test time
  const rd::ForwardResult result = model.forward(session, prompt, forward);
  std::printf("logits [%zu, %zu], latents [%zu, %zu]\n", result.logits.rows(), result.logits.cols(),
              result.latents.rows(), result.latents.cols());

  rd::Session generation = model.new_session();
  rd::GenerationOptions options;  // greedy unless options.sampling says otherwise
  options.max_new_tokens = 8;
  std::printf("greedy continuation:");
  rd::generate(model, generation, prompt, options,
               [](const rd::GeneratedToken& t) { std::printf(" %d", t.id); });
  std::printf("\n");
} catch (const rd::Error& e) {
  std::fprintf(stderr, "error: %s\n", e.what());
  return 1;
}
