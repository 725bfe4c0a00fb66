// Test support: the reference vectors of tests/data/<model>/ (see the README there) and the
// relative L2 error used to compare against them.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "model_runs.hpp"
#include "recurrent_depth/recurrent_depth.hpp"

namespace recurrent_depth::testing {

// tests/data: the build's, or $RECURRENT_DEPTH_TEST_DATA (a test binary run from another checkout).
inline std::filesystem::path data_dir() {
  if (const char* moved = std::getenv("RECURRENT_DEPTH_TEST_DATA")) return moved;
  return RECURRENT_DEPTH_TEST_DATA;
}

// A tensor of a safetensors file as a matrix [product of leading dims, last dim].
inline Matrix<float> tensor_matrix(const SafetensorsFile& file, const std::string& name) {
  const TensorInfo& t = file.at(name);
  const auto cols = static_cast<std::size_t>(t.shape.back());
  std::vector<float> values(t.numel());
  read_values(t, std::span<float>(values));
  Matrix<float> m(values.size() / cols, cols);
  for (std::size_t r = 0; r < m.rows(); ++r) std::copy_n(&values[r * cols], cols, m.row(r));
  return m;
}

struct Golden {
  explicit Golden(const std::string& model)
      : directory(data_dir() / model),
        file(open_safetensors(directory / "golden.safetensors")),
        config(load_model_config(directory / "config.json")) {
    std::ifstream in(directory / "golden.json");
    in >> meta;
    for (std::int64_t id : read_integers(file.at("input_ids")))
      input_ids.push_back(static_cast<std::int32_t>(id));
  }

  // The tensor `name` as a matrix [product of leading dims, last dim].
  Matrix<float> matrix(const std::string& name) const { return tensor_matrix(file, name); }

  // golden.json's "adaptive" table, stored as an object or as a Python dict string.
  nlohmann::json adaptive_table() const {
    const nlohmann::json& table = meta["adaptive"];
    if (!table.is_string()) return table;
    std::string text = table.get<std::string>();
    std::replace(text.begin(), text.end(), '\'', '"');
    return nlohmann::json::parse(text);
  }

  // The forward pass of the forward_r{steps} vectors: all input ids from input_states.
  template <class Model>
  ForwardResult forward_from_states(const Model& model, int steps) const {
    const Matrix<float> states = matrix("input_states");
    Session session = model.new_session();
    ForwardOptions options;
    options.steps = steps;
    options.init = StateInit::given;
    options.initial_state = states.view();
    return model.forward(session, input_ids, options);
  }

  // Logits of the decode_* vectors: the first decode_prefill_len ids in one pass (its last row),
  // then the rest one at a time through `session`'s cache.
  template <class Model>
  Matrix<float> prefill_then_decode(const Model& model, Session& session) const {
    return testing::prefill_then_decode(model, session, input_ids, meta["decode_prefill_len"]);
  }

  // The tokens generate() gives after the first greedy_prompt_len input ids.
  template <class Model>
  std::vector<std::int32_t> generated_tokens(const Model& model, GenerationOptions options) const {
    options.max_new_tokens = 8;
    return testing::generated_tokens(model, std::span(input_ids).first(greedy_prompt()), options);
  }
  std::size_t greedy_prompt() const { return meta["greedy_prompt_len"]; }

  std::filesystem::path directory;
  SafetensorsFile file;
  ModelConfig config;
  nlohmann::json meta;
  std::vector<std::int32_t> input_ids;
};

// ||actual - expected|| / ||expected|| over all entries.
inline double relative_l2(ConstMatrixView<float> actual, ConstMatrixView<float> expected) {
  if (actual.rows != expected.rows || actual.cols != expected.cols) return INFINITY;
  double diff = 0.0, norm = 0.0;
  for (std::size_t r = 0; r < actual.rows; ++r)
    for (std::size_t c = 0; c < actual.cols; ++c) {
      const double e = expected(r, c), d = actual(r, c) - e;
      diff += d * d;
      norm += e * e;
    }
  return std::sqrt(diff / norm);
}

}  // namespace recurrent_depth::testing
