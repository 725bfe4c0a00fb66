// Seeded random weights with a checkpoint's exact names and shapes, built in memory: for
// benchmarks (`--shape tiny|huginn-mini|huginn-0125`), examples and tests that need a model of a
// given size without a file. Matmul weights are uniform with variance 1/fan_in, so activations
// keep their scale through the blocks; norm weights are near 1 and q/k biases small.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "../core/random.hpp"
#include "../io/checkpoint.hpp"
#include "../io/config.hpp"
#include "../io/safetensors.hpp"
#include "checkpoint_names.hpp"

namespace recurrent_depth {

// Huginn-0125's layout at a named size: "tiny" (width 96, the test model's size), "huginn-mini"
// (one fifth of Huginn-0125's width) or "huginn-0125".
inline ModelConfig shape_config(std::string_view shape) {
  ModelConfig c;
  c.n_layers_in_prelude = 2;
  c.n_layers_in_recurrent_block = 4;
  c.n_layers_in_coda = 2;
  c.rope_base = 50000;
  c.norm_eps = 1e-6;
  c.tie_embeddings = true;
  if (shape == "tiny") {
    c.n_embd = 96, c.n_heads = 6, c.intermediate_size = 256, c.vocab_size = 384;
    c.block_size = 256, c.mean_recurrence = 8;
  } else if (shape == "huginn-mini") {
    c.n_embd = 1056, c.n_heads = 11, c.intermediate_size = 3584, c.vocab_size = 65536;
    c.block_size = 4096, c.mean_recurrence = 32;
  } else if (shape == "huginn-0125") {
    c.n_embd = 5280, c.n_heads = 55, c.intermediate_size = 17920, c.vocab_size = 65536;
    c.block_size = 4096, c.mean_recurrence = 32;
  } else {
    fail("shape: unknown model shape '", shape, "', expected tiny, huginn-mini or huginn-0125");
  }
  c.validate("shape " + std::string(shape));
  return c;
}

namespace detail {

class SyntheticWriter {
 public:
  SyntheticWriter(std::uint64_t seed, DType storage) : rng_(seed), storage_(storage) {}

  // Uniform in [center - spread, center + spread].
  void add(const std::string& name, std::vector<std::int64_t> shape, double center, double spread) {
    std::size_t count = 1;
    for (std::int64_t d : shape) count *= static_cast<std::size_t>(d);
    std::vector<float> values(count);
    for (float& v : values) v = static_cast<float>(center + spread * (2.0 * rng_.uniform() - 1.0));
    if (storage_ == DType::BF16)
      writer_.add_bf16(name, std::move(shape), std::span<const float>(values));
    else
      writer_.add_f32(name, std::move(shape), std::span<const float>(values));
  }
  // A matmul weight [rows, cols] with variance 1 / cols.
  void add_matrix(const std::string& name, std::int64_t rows, std::int64_t cols) {
    add(name, {rows, cols}, 0.0, std::sqrt(3.0 / static_cast<double>(cols)));
  }
  void add_block(const std::string& prefix, const ModelConfig& c) {
    const std::int64_t h = c.n_embd;
    for (int i = 1; i <= 4; ++i)
      add(prefix + ".norm_" + std::to_string(i) + ".weight", {h}, 1.0, 0.2);
    add_matrix(prefix + ".attn.Wqkv.weight", 3 * h, h);
    add_matrix(prefix + ".attn.proj.weight", h, h);
    if (c.qk_bias) add(prefix + ".attn.qk_bias", {2, 1, c.n_heads, c.head_dim()}, 0.0, 0.1);
    add_matrix(prefix + ".mlp.fc.weight", 2 * std::int64_t(c.intermediate_size), h);
    add_matrix(prefix + ".mlp.proj.weight", h, c.intermediate_size);
  }
  SafetensorsFile finish(const std::string& description) {
    return parse_safetensors(writer_.bytes(), description);
  }

 private:
  Rng rng_;
  DType storage_;
  SafetensorsWriter writer_;
};

}  // namespace detail

// Whether every block gets its own random weights, or all blocks name the first block's stored
// tensors (a model of full size whose checkpoint holds one block: for benchmarks of large shapes;
// the loaded model still packs every block separately).
enum class SyntheticBlocks { distinct, shared };

// A checkpoint for `config` with seeded random weights stored as BF16 or F32. Without
// `with_adapter` no `transformer.adapter.weight` is written (for parameter-free adapters).
inline Checkpoint synthetic_checkpoint(const ModelConfig& config, std::uint64_t seed,
                                       DType storage = DType::BF16, bool with_adapter = true,
                                       SyntheticBlocks blocks = SyntheticBlocks::distinct) {
  require(storage == DType::BF16 || storage == DType::F32,
          "synthetic weights: storage must be BF16 or F32");
  detail::SyntheticWriter w(seed, storage);
  const std::int64_t h = config.n_embd;
  w.add(std::string(names::kEmbedding) + ".weight", {config.vocab_size, h}, 0.0,
        std::sqrt(3.0 / static_cast<double>(h)));
  std::vector<std::string> block_names;
  for (int i = 0; i < config.n_layers_in_prelude; ++i)
    block_names.push_back(names::block(names::kPrelude, i));
  for (int i = 0; i < config.n_layers_in_recurrent_block; ++i)
    block_names.push_back(names::block(names::kCore, i));
  for (int i = 0; i < config.n_layers_in_coda; ++i)
    block_names.push_back(names::block(names::kCoda, i));
  const bool shared = blocks == SyntheticBlocks::shared;
  const std::size_t prelude = static_cast<std::size_t>(config.n_layers_in_prelude);
  for (std::size_t b = 0; b < block_names.size(); ++b) {
    if (b == prelude && with_adapter)  // the stream order of the checkpoint's own layout
      w.add_matrix(std::string(names::kAdapter) + ".weight", h, 2 * h);
    if (b == 0 || !shared) w.add_block(block_names[b], config);
  }
  w.add(std::string(names::kFinalNorm) + ".weight", {h}, 1.0, 0.2);
  std::vector<SafetensorsFile> files;
  files.push_back(w.finish("synthetic weights (seed " + std::to_string(seed) + ")"));
  Checkpoint checkpoint = Checkpoint::from_files(std::move(files), "synthetic weights");
  if (shared) {
    const std::string first = block_names.front() + ".";
    for (const std::string& name : checkpoint.tensor_names()) {
      if (!name.starts_with(first)) continue;
      for (std::size_t b = 1; b < block_names.size(); ++b)
        checkpoint.add_alias(block_names[b] + "." + name.substr(first.size()), name);
    }
  }
  return checkpoint;
}

}  // namespace recurrent_depth
