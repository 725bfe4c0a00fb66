// Gated MLP policy: fc [2 * mlp, n_embd] with rows [gate; up], y = proj(act(gate) * up),
// proj [n_embd, mlp], no biases. The activation is a policy (Silu for Huginn).
#pragma once

#include <string>

#include "../io/config.hpp"
#include "block_context.hpp"
#include "weight_loading.hpp"

namespace recurrent_depth {

struct Silu {
  template <class Backend>
  static void gate(ConstMatrixView<float> fc, MatrixView<float> out) {
    Backend::silu_gate(fc, out);
  }
};

template <class Activation = Silu>
struct GatedMlp {
  template <class Backend, class Precision>
  class Layer {
   public:
    void load(const Checkpoint& checkpoint, const std::string& prefix, const ModelConfig& config) {
      const auto width = static_cast<std::size_t>(config.n_embd);
      hidden_ = static_cast<std::size_t>(config.intermediate_size);
      fc_ = load_matrix<Backend, Precision>(checkpoint, prefix + ".fc.weight", 2 * hidden_, width);
      proj_ = load_matrix<Backend, Precision>(checkpoint, prefix + ".proj.weight", width, hidden_);
    }

    void forward(ConstMatrixView<float> x, MatrixView<float> out, WorkspaceOf<Backend>& ws) const {
      const MatrixView<float> fc = scratch(ws.fc, x.rows, 2 * hidden_);
      Backend::linear(x, fc_, fc);
      const MatrixView<float> gated = scratch(ws.gated, x.rows, hidden_);
      Activation::template gate<Backend>(fc, gated);
      Backend::linear(gated, proj_, out);
    }

    std::size_t parameter_count() const {
      return fc_.rows() * fc_.cols() + proj_.rows() * proj_.cols();
    }
    std::size_t weight_bytes() const { return fc_.bytes() + proj_.bytes(); }

   private:
    std::size_t hidden_ = 0;
    WeightsOf<Backend, Precision> fc_, proj_;
  };
};

}  // namespace recurrent_depth
