// RMSNorm policy: y = x / sqrt(mean(x^2) + eps) * weight, computed in float32; weight [n_embd] in
// the backend's Memory.
#pragma once

#include <span>
#include <string>
#include <vector>

#include "../io/config.hpp"
#include "weight_loading.hpp"

namespace recurrent_depth {

struct RmsNorm {
  template <class Backend, class Precision>
  class Layer {
   public:
    void load(const Checkpoint& checkpoint, const std::string& name, const ModelConfig& config) {
      weight_ = Backend::Memory::array(
          std::span<const float>(load_vector(checkpoint, name + ".weight", {config.n_embd})));
      eps_ = static_cast<float>(config.norm_eps);
    }
    void operator()(ConstMatrixView<float> in, MatrixView<float> out) const {
      Backend::rms_norm(in, weight_, eps_, out);
    }
    // x = norm(x + delta)
    void add_and_normalize(MatrixView<float> x, ConstMatrixView<float> delta) const {
      Backend::add_rms_norm(x, delta, weight_, eps_);
    }
    std::size_t parameter_count() const { return weight_.size(); }

   private:
    typename Backend::Memory::template Array<float> weight_;
    float eps_ = 1e-6f;
  };
};

}  // namespace recurrent_depth
