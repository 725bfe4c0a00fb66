// Compile-time composition of a recurrent-depth model: block kinds (policies from blocks/) form
// SandwichBlocks, blocks form the three stages Prelude, RecurrentCore and Coda, and the stages
// form an Architecture. Sizes (width, heads, layer counts) come from config.json at run time.
//
//   using Block  = SandwichBlock<RmsNorm, CausalSelfAttention<RoPEAdjacentPairs, QkBias>,
//   GatedMlp<Silu>>; using Huginn = Architecture<Prelude<Block>, RecurrentCore<ConcatLinearAdapter,
//   Block>, Coda<Block>>;
#pragma once

#include <string>
#include <vector>

#include "../blocks/adapter.hpp"
#include "../blocks/embedding.hpp"
#include "../blocks/sandwich_block.hpp"
#include "checkpoint_names.hpp"
#include "state_init.hpp"

namespace recurrent_depth {

// Blocks run one after the other; block i of a stack uses KV slot slot_of(i).
template <class Block, class Backend, class Precision>
class BlockStack {
 public:
  void load(const Checkpoint& checkpoint, const char* stage, int count, const ModelConfig& config) {
    blocks_.resize(static_cast<std::size_t>(count));
    for (int i = 0; i < count; ++i) blocks_[i].load(checkpoint, names::block(stage, i), config);
  }
  template <class SlotOf>
  void forward(MatrixView<float> x, const BlockContextOf<Backend>& context, SlotOf slot_of) const {
    for (std::size_t i = 0; i < blocks_.size(); ++i)
      blocks_[i].forward(x, context.at_slot(slot_of(static_cast<int>(i))));
  }
  int size() const { return static_cast<int>(blocks_.size()); }
  std::size_t parameter_count() const {
    std::size_t total = 0;
    for (const auto& block : blocks_) total += block.parameter_count();
    return total;
  }
  std::size_t weight_bytes() const {
    std::size_t total = 0;
    for (const auto& block : blocks_) total += block.weight_bytes();
    return total;
  }

 private:
  std::vector<typename Block::template Layer<Backend, Precision>> blocks_;
};

// The prelude: `transformer.prelude.N`, KV slots 0 .. n-1.
template <class Block>
struct Prelude {
  template <class Backend, class Precision>
  class Layer : public BlockStack<Block, Backend, Precision> {
   public:
    void load(const Checkpoint& checkpoint, const ModelConfig& config) {
      BlockStack<Block, Backend, Precision>::load(checkpoint, names::kPrelude,
                                                  config.n_layers_in_prelude, config);
    }
    void forward(MatrixView<float> x, const BlockContextOf<Backend>& context) const {
      BlockStack<Block, Backend, Precision>::forward(x, context, [](int i) { return i; });
    }
  };
};

// The recurrent core: adapter `transformer.adapter` and blocks `transformer.core_block.N`;
// iteration i, layer j uses KV slot n_prelude + n_core * i + j.
template <class Adapter, class Block, class InitialState = TruncatedNormalState>
struct RecurrentCore {
  using StateInitPolicy = InitialState;

  template <class Backend, class Precision>
  class Layer {
   public:
    void load(const Checkpoint& checkpoint, const ModelConfig& config) {
      adapter_.load(checkpoint, names::kAdapter, config);
      blocks_.load(checkpoint, names::kCore, config.n_layers_in_recurrent_block, config);
      first_slot_ = config.n_layers_in_prelude;
    }
    // Once per forward: the part of the injection that depends only on e.
    void prepare(ConstMatrixView<float> e, MatrixView<float> injected) const {
      adapter_.prepare(e, injected);
    }
    // next = core_blocks(adapter([state ; e])) for core iteration `iteration` (0-based).
    void iterate(ConstMatrixView<float> state, ConstMatrixView<float> injected,
                 MatrixView<float> next, int iteration,
                 const BlockContextOf<Backend>& context) const {
      adapter_.apply(state, injected, next);
      const int base = first_slot_ + blocks_.size() * iteration;
      blocks_.forward(next, context, [base](int j) { return base + j; });
    }
    int layers() const { return blocks_.size(); }
    std::size_t parameter_count() const {
      return adapter_.parameter_count() + blocks_.parameter_count();
    }
    std::size_t adapter_parameter_count() const { return adapter_.parameter_count(); }
    std::size_t weight_bytes() const { return adapter_.weight_bytes() + blocks_.weight_bytes(); }
    // What one iteration reads: the blocks and the adapter's per-iteration part (all of an
    // adapter that does not say).
    std::size_t iteration_parameter_count() const {
      if constexpr (requires { adapter_.iteration_parameter_count(); })
        return adapter_.iteration_parameter_count() + blocks_.parameter_count();
      else
        return parameter_count();
    }
    std::size_t iteration_weight_bytes() const {
      if constexpr (requires { adapter_.iteration_weight_bytes(); })
        return adapter_.iteration_weight_bytes() + blocks_.weight_bytes();
      else
        return weight_bytes();
    }

   private:
    typename Adapter::template Layer<Backend, Precision> adapter_;
    BlockStack<Block, Backend, Precision> blocks_;
    int first_slot_ = 0;
  };
};

// The coda: `transformer.coda.N`, KV slots -1, -2, ...
template <class Block>
struct Coda {
  template <class Backend, class Precision>
  class Layer : public BlockStack<Block, Backend, Precision> {
   public:
    void load(const Checkpoint& checkpoint, const ModelConfig& config) {
      BlockStack<Block, Backend, Precision>::load(checkpoint, names::kCoda, config.n_layers_in_coda,
                                                  config);
    }
    void forward(MatrixView<float> x, const BlockContextOf<Backend>& context) const {
      BlockStack<Block, Backend, Precision>::forward(x, context, [](int i) { return -(i + 1); });
    }
  };
};

template <class PreludeStage, class CoreStage, class CodaStage,
          class EmbeddingKind = ScaledTiedEmbedding, class FinalNormKind = RmsNorm>
struct Architecture {
  using Prelude = PreludeStage;
  using Core = CoreStage;
  using Coda = CodaStage;
  using Embedding = EmbeddingKind;
  using FinalNorm = FinalNormKind;
};

using HuginnBlock =
    SandwichBlock<RmsNorm, CausalSelfAttention<RoPEAdjacentPairs, QkBias>, GatedMlp<Silu>>;
using Huginn = Architecture<Prelude<HuginnBlock>, RecurrentCore<ConcatLinearAdapter, HuginnBlock>,
                            Coda<HuginnBlock>>;

}  // namespace recurrent_depth
