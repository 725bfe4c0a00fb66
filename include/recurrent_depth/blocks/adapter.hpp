// Adapter (injection) policies: how each core iteration combines the recurrent state s with the
// prelude output e, both [T, n_embd]. prepare() runs once per forward on e (it does not change
// across iterations); apply() runs every iteration.
#pragma once

#include <string>
#include <vector>

#include "../io/config.hpp"
#include "block_context.hpp"
#include "weight_loading.hpp"

namespace recurrent_depth {

// Huginn's adapter: Linear(2h -> h) on [s ; e] (state first). The weight [h, 2h] is split at load
// into W_s and W_e, so the concatenation is never built and W_e e is computed once per forward.
struct ConcatLinearAdapter {
  template <class Backend, class Precision>
  class Layer {
   public:
    void load(const Checkpoint& checkpoint, const std::string& name, const ModelConfig& config) {
      using Source = typename Precision::Source;
      const auto h = static_cast<std::size_t>(config.n_embd);
      const std::int64_t rows = config.n_embd, cols = 2 * rows;
      checkpoint.at(name + ".weight", {rows, cols});  // before the allocation
      std::vector<Source> both(h * 2 * h);
      checkpoint.read<Source>(name + ".weight", {rows, cols}, both);
      std::vector<Source> half(h * h);
      for (std::size_t side = 0; side < 2; ++side) {
        for (std::size_t r = 0; r < h; ++r)
          std::copy_n(both.begin() + r * 2 * h + side * h, h, half.begin() + r * h);
        (side == 0 ? state_ : embedding_) =
            WeightsOf<Backend, Precision>::from_rows(std::span<const Source>(half), h, h);
      }
    }
    void prepare(ConstMatrixView<float> e, MatrixView<float> injected) const {
      Backend::linear(e, embedding_, injected);
    }
    void apply(ConstMatrixView<float> s, ConstMatrixView<float> injected,
               MatrixView<float> out) const {
      Backend::copy(injected, out);
      Backend::linear(s, state_, out, /*accumulate=*/true);
    }
    std::size_t parameter_count() const { return 2 * state_.rows() * state_.cols(); }
    std::size_t weight_bytes() const { return state_.bytes() + embedding_.bytes(); }
    // What each iteration reads (W_s); W_e is read once per forward.
    std::size_t iteration_parameter_count() const { return state_.rows() * state_.cols(); }
    std::size_t iteration_weight_bytes() const { return state_.bytes(); }

   private:
    WeightsOf<Backend, Precision> state_, embedding_;
  };
};

// s + e: a parameter-free injection, for variants that do not learn an adapter.
struct AdditiveAdapter {
  template <class Backend, class Precision>
  class Layer {
   public:
    void load(const Checkpoint&, const std::string&, const ModelConfig&) {}
    void prepare(ConstMatrixView<float> e, MatrixView<float> injected) const {
      Backend::copy(e, injected);
    }
    void apply(ConstMatrixView<float> s, ConstMatrixView<float> injected,
               MatrixView<float> out) const {
      Backend::add(s, injected, out);
    }
    std::size_t parameter_count() const { return 0; }
    std::size_t weight_bytes() const { return 0; }
    std::size_t iteration_parameter_count() const { return 0; }
    std::size_t iteration_weight_bytes() const { return 0; }
  };
};

}  // namespace recurrent_depth
