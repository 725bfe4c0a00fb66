// What loading a model takes in memory, estimated from its config and its checkpoint's list of
// tensors before anything is converted, so that a model that would not fit is refused with a
// clear Error up front (LoadOptions::memory_limit, or the memory the machine has available).
#pragma once

#include <algorithm>
#include <cstddef>
#include <string>
#include <type_traits>

#include "../core/memory.hpp"
#include "../core/precision.hpp"
#include "../io/checkpoint.hpp"
#include "../io/config.hpp"
#include "checkpoint_names.hpp"

namespace recurrent_depth {

struct LoadOptions {
  // Bytes the loaded model may take (weights in their compute format, tables, conversion
  // scratch); 0: what the machine has available when loading starts.
  std::size_t memory_limit = 0;
};

// Bytes of one matmul weight as stored by a precision: f32 4, bf16 2, int8 1 (+ a float scale
// per row), q4 4 bits (+ a bf16 scale per group of 32: 18 bytes per 32 weights).
template <class Precision>
constexpr double stored_bytes_per_weight() {
  if constexpr (std::is_same_v<Precision, F32>) return 4.0;
  if constexpr (std::is_same_v<Precision, BF16>) return 2.0;
  if constexpr (std::is_same_v<Precision, INT8>) return 1.0;
  return 18.0 / 32.0;
}

// Estimated bytes of a loaded model: every checkpoint tensor the model reads (matrices in the
// precision's format, the embedding in its own, other tensors as float), the RoPE table of
// block_size positions, and the largest tensor once more as the conversion's scratch. Tensors
// the model does not load are left out: freqs_cis (RoPE is recomputed) and, with tied
// embeddings, lm_head.weight (the released copy of wte is shared, not loaded).
template <class Precision>
std::size_t estimate_load_bytes(const ModelConfig& config, const Checkpoint& checkpoint) {
  using Source = typename Precision::Source;
  const std::string embedding = std::string(names::kEmbedding) + ".weight";
  std::size_t total =
      saturating_product(saturating_product(std::size_t(std::max(config.block_size, 0)),
                                            std::size_t(std::max(config.head_dim(), 0))),
                         sizeof(float));
  std::size_t largest = 0;
  for (const std::string& name : checkpoint.tensor_names()) {
    if (name == "freqs_cis" || (name == "lm_head.weight" && config.tie_embeddings)) continue;
    const TensorInfo& t = checkpoint.at(name);
    const std::size_t count = t.numel();  // numel * dtype size fits: the bytes are in the file
    double per_value = sizeof(float);
    if (t.shape.size() == 2) {
      per_value = name == embedding || name == "lm_head.weight"
                      ? stored_bytes_per_weight<EmbeddingPrecision<Precision>>()
                      : stored_bytes_per_weight<Precision>();
    }
    total = saturating_sum(total, std::size_t(double(count) * per_value));
    largest = std::max(largest, saturating_product(count, sizeof(Source)));
  }
  return saturating_sum(total, largest);
}

// Fails before loading when the estimate exceeds options.memory_limit (or the available memory).
template <class Precision>
void require_load_fits(const ModelConfig& config, const Checkpoint& checkpoint,
                       const LoadOptions& options) {
  std::string what = "loading ";
  what.append(checkpoint.directory().string()).append(" (");
  what.append(Precision::name).append(" weights)");
  require_memory(estimate_load_bytes<Precision>(config, checkpoint), options.memory_limit, what);
}

}  // namespace recurrent_depth
