// The model side of the HIP model tests, behind host types: a model loaded with
// load_model<HipBackend, F32 | BF16 | INT8> (weights, activations and KV cache in device memory)
// whose forward passes return host results; test_hip_model.cpp compares the results with the
// reference vectors.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "../model_runs.hpp"
#include "recurrent_depth/core/tensor.hpp"
#include "recurrent_depth/model/recurrent_depth_model.hpp"

namespace recurrent_depth::hip_test {

class HipModel {
 public:
  // precision: "f32", "bf16" or "int8". The weights are converted and uploaded once.
  HipModel(const std::filesystem::path& directory, std::string_view precision);
  ~HipModel();

  // All ids in one pass from the given initial states, at r = steps.
  ForwardResult forward_from_states(std::span<const std::int32_t> ids,
                                    ConstMatrixView<float> states, int steps) const;
  // Logits of the first `prefill` ids' last row, then of each further id run one at a time, in
  // a cache stored by `rule` (a CacheRule name).
  Matrix<float> prefill_then_decode(std::span<const std::int32_t> ids, std::size_t prefill,
                                    std::string_view rule = "full") const;
  // The first `prefill` ids, then the rest in one pass (its result).
  ForwardResult prefill_then_chunk(std::span<const std::int32_t> ids, std::size_t prefill) const;

  // Every id run alone through a cache stored by `rule` (a CacheRule name), from a zero state, at
  // most `steps` iterations, with early exit by `criterion` (an ExitCriterion name; empty: none).
  // The ids generate() gives after `prompt` in a new session.
  std::vector<std::int32_t> generated_tokens(std::span<const std::int32_t> prompt,
                                             const GenerationOptions& options) const;

  testing::DecodeRun decode_tokens(std::span<const std::int32_t> ids, std::string_view rule,
                                   int steps, std::string_view criterion = {},
                                   double threshold = 0.0) const;

 private:
  struct Loaded;
  std::unique_ptr<Loaded> loaded_;
};

}  // namespace recurrent_depth::hip_test
