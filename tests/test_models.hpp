// Test support: the models the property tests run on. Seeded random f32 weights in the "tiny"
// shape and in a small lopsided config (1 prelude, 2 core and 3 coda blocks), and
// tests/data/tiny_huginn with f32 and bf16 storage; each built once per test program.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "golden.hpp"
#include "model_runs.hpp"

namespace recurrent_depth::testing {

using F32Model = RecurrentDepthModel<CpuBackend, F32>;
using BF16Model = RecurrentDepthModel<CpuBackend, BF16>;

// Width 32, 4 heads of 8, 1 / 2 / 3 blocks: slot ids prelude 0, core 1 + 2 i + j, coda -1..-3.
inline ModelConfig small_config() {
  ModelConfig c;
  c.n_embd = 32;
  c.n_heads = 4;
  c.intermediate_size = 40;
  c.vocab_size = 50;
  c.block_size = 24;
  c.n_layers_in_prelude = 1;
  c.n_layers_in_recurrent_block = 2;
  c.n_layers_in_coda = 3;
  c.mean_recurrence = 3;
  c.rope_base = 10000;
  c.norm_eps = 1e-6;
  c.tie_embeddings = true;
  c.qk_bias = true;
  c.validate("small test config");
  return c;
}

// A model on seeded random f32 weights, with its checkpoint kept to read parameters back.
struct SyntheticModel {
  ModelConfig config;
  Checkpoint checkpoint;
  F32Model model;

  SyntheticModel(const ModelConfig& c, std::uint64_t seed)
      : config(c), checkpoint(synthetic_checkpoint(c, seed, DType::F32)), model(c, checkpoint) {}

  std::vector<float> final_norm_weight() const {
    std::vector<float> w(static_cast<std::size_t>(config.n_embd));
    checkpoint.read<float>("transformer.ln_f.weight", {config.n_embd}, std::span<float>(w));
    return w;
  }
};

inline const SyntheticModel& small_model() {
  static const SyntheticModel m(small_config(), 11);
  return m;
}
inline const SyntheticModel& tiny_model() {
  static const SyntheticModel m(shape_config("tiny"), 12);
  return m;
}
inline const F32Model& huginn_f32() {
  static const F32Model m = load_model<CpuBackend, F32>(data_dir() / "tiny_huginn");
  return m;
}
inline const BF16Model& huginn_bf16() {
  static const BF16Model m = load_model<CpuBackend, BF16>(data_dir() / "tiny_huginn");
  return m;
}

inline ForwardOptions with_steps(std::optional<int> steps, StateInit init = StateInit::zero) {
  ForwardOptions o;
  o.steps = steps;
  o.init = init;
  return o;
}

}  // namespace recurrent_depth::testing
