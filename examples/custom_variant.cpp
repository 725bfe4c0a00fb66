// A custom recurrent-depth variant in a few lines: blocks without the q/k bias, a parameter-free
// additive adapter (s + e) instead of Huginn's concat-linear one, and its own layer counts
// (1 prelude, 3 core, 1 coda). Weights are seeded random; the program shows the recurrence
// settling: logits move less and less as the number of core iterations grows.
#include <cmath>
#include <cstdio>
#include <vector>

#include "recurrent_depth/recurrent_depth.hpp"

namespace rd = recurrent_depth;

using Block =
    rd::SandwichBlock<rd::RmsNorm, rd::CausalSelfAttention<rd::RoPEAdjacentPairs, rd::NoQkBias>,
                      rd::GatedMlp<rd::Silu>>;
using AdditiveVariant =
    rd::Architecture<rd::Prelude<Block>, rd::RecurrentCore<rd::AdditiveAdapter, Block>,
                     rd::Coda<Block>>;

int main() {
  rd::ModelConfig config = rd::shape_config("tiny");
  config.n_layers_in_prelude = 1;
  config.n_layers_in_recurrent_block = 3;
  config.n_layers_in_coda = 1;
  config.qk_bias = false;
  const rd::Checkpoint weights =
      rd::synthetic_checkpoint(config, /*seed=*/7, rd::DType::BF16, /*with_adapter=*/false);
  const rd::RecurrentDepthModel<rd::CpuBackend, rd::BF16, AdditiveVariant> model(config, weights);

  const std::vector<std::int32_t> prompt = {11, 42, 7, 300, 5};
  rd::Matrix<float> previous;
  for (int steps : {1, 2, 4, 8, 16, 32}) {
    rd::Session session = model.new_session();
    rd::ForwardOptions options;
    options.steps = steps;
    rd::ForwardResult result = model.forward(session, prompt, options);
    double change = 0.0;
    if (previous.rows() > 0)
      for (std::size_t v = 0; v < result.logits.cols(); ++v)
        change += std::pow(result.logits(prompt.size() - 1, v) - previous(prompt.size() - 1, v), 2);
    std::printf("r = %2d: next token %3d", steps,
                rd::argmax({result.logits.row(prompt.size() - 1), result.logits.cols()}));
    if (previous.rows() > 0)
      std::printf(", logits moved by %.4f since the previous r", std::sqrt(change));
    std::printf("\n");
    previous = std::move(result.logits);
  }
  const rd::ModelSummary summary = model.summary();
  std::printf("%zu parameters (adapter: %zu), KV cache %zu bytes per token at r = 32\n",
              summary.total_parameters(), summary.adapter_parameters, model.kv_bytes_per_token(32));
}
