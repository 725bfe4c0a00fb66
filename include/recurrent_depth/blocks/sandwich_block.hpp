// Sandwich block policy: x = n2(x + attn(n1(x))); x = n4(x + mlp(n3(x))), over rows [T, n_embd].
// Checkpoint names: PREFIX.norm_{1..4}.weight, PREFIX.attn.*, PREFIX.mlp.*.
#pragma once

#include <string>

#include "../io/config.hpp"
#include "attention.hpp"
#include "mlp.hpp"
#include "rms_norm.hpp"

namespace recurrent_depth {

template <class Norm = RmsNorm, class Attention = CausalSelfAttention<>, class Mlp = GatedMlp<>>
struct SandwichBlock {
  template <class Backend, class Precision>
  class Layer {
   public:
    void load(const Checkpoint& checkpoint, const std::string& prefix, const ModelConfig& config) {
      for (int i = 0; i < 4; ++i)
        norms_[i].load(checkpoint, prefix + ".norm_" + std::to_string(i + 1), config);
      attention_.load(checkpoint, prefix + ".attn", config);
      mlp_.load(checkpoint, prefix + ".mlp", config);
    }

    // Updates x [T, n_embd] in place; the attention uses context's slot and positions.
    void forward(MatrixView<float> x, const BlockContextOf<Backend>& context) const {
      WorkspaceOf<Backend>& ws = context.workspace;
      const MatrixView<float> normed = scratch(ws.normed, x.rows, x.cols);
      const MatrixView<float> delta = scratch(ws.delta, x.rows, x.cols);
      norms_[0](x, normed);
      attention_.forward(normed, delta, context);
      norms_[1].add_and_normalize(x, delta);
      norms_[2](x, normed);
      mlp_.forward(normed, delta, ws);
      norms_[3].add_and_normalize(x, delta);
    }

    std::size_t parameter_count() const {
      std::size_t total = attention_.parameter_count() + mlp_.parameter_count();
      for (const auto& norm : norms_) total += norm.parameter_count();
      return total;
    }
    std::size_t weight_bytes() const { return attention_.weight_bytes() + mlp_.weight_bytes(); }

   private:
    typename Norm::template Layer<Backend, Precision> norms_[4];
    typename Attention::template Layer<Backend, Precision> attention_;
    typename Mlp::template Layer<Backend, Precision> mlp_;
  };
};

}  // namespace recurrent_depth
