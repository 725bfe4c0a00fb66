// Causal self-attention policy: fused Wqkv [3 * n_embd, n_embd] with rows [Q; K; V], an optional
// learned q/k bias [2, 1, heads, head_dim] added before the rotary embedding, scale
// 1/sqrt(head_dim), KV entries written to the block's cache slot, output projection [n_embd,
// n_embd].
#pragma once

#include <span>
#include <string>
#include <vector>

#include "../io/config.hpp"
#include "block_context.hpp"
#include "weight_loading.hpp"

namespace recurrent_depth {

// Rotary embedding on adjacent pairs (2i, 2i+1), Huginn's layout (not the half-split one).
struct RoPEAdjacentPairs {
  template <class Backend>
  static void apply(MatrixView<float> x, std::size_t heads, std::size_t head_dim,
                    std::span<const float> bias, ConstMatrixView<float> table,
                    std::size_t first_position) {
    Backend::rope_adjacent_pairs(x, heads, head_dim, bias, table, first_position);
  }
};

// Learned per-head biases for q and k (`attn.qk_bias`).
struct QkBias {
  static constexpr bool enabled = true;
};
struct NoQkBias {
  static constexpr bool enabled = false;
};

template <class Rope = RoPEAdjacentPairs, class Bias = QkBias>
struct CausalSelfAttention {
  template <class Backend, class Precision>
  class Layer {
    using Memory = typename Backend::Memory;

   public:
    void load(const Checkpoint& checkpoint, const std::string& prefix, const ModelConfig& config) {
      width_ = static_cast<std::size_t>(config.n_embd);
      heads_ = static_cast<std::size_t>(config.n_heads);
      head_dim_ = width_ / heads_;
      qkv_ =
          load_matrix<Backend, Precision>(checkpoint, prefix + ".Wqkv.weight", 3 * width_, width_);
      proj_ = load_matrix<Backend, Precision>(checkpoint, prefix + ".proj.weight", width_, width_);
      if constexpr (Bias::enabled)
        qk_bias_ = Memory::array(std::span<const float>(load_vector(
            checkpoint, prefix + ".qk_bias", {2, 1, config.n_heads, std::int64_t(head_dim_)})));
    }

    // out = proj(attention(x)) for the rows of x; each sequence's rows write their keys and
    // values to its cache slot and attend to that sequence only.
    void forward(ConstMatrixView<float> x, MatrixView<float> out,
                 const BlockContextOf<Backend>& context) const {
      WorkspaceOf<Backend>& ws = context.workspace;
      const MatrixView<float> qkv = scratch(ws.qkv, x.rows, 3 * width_);
      Backend::linear(x, qkv_, qkv);
      const MatrixView<float> attended = scratch(ws.attention, x.rows, width_);
      for (const SequenceRowsOf<Backend>& sequence : context.sequences) {
        const MatrixView<float> rows = qkv.middle_rows(sequence.first_row, sequence.rows);
        const MatrixView<float> q = rows.middle_cols(0, width_);
        const MatrixView<float> k = rows.middle_cols(width_, width_);
        const MatrixView<float> v = rows.middle_cols(2 * width_, width_);
        Rope::template apply<Backend>(q, heads_, head_dim_, bias(0), context.rope,
                                      sequence.first_position);
        Rope::template apply<Backend>(k, heads_, head_dim_, bias(1), context.rope,
                                      sequence.first_position);
        sequence.cache->write(context.slot, sequence.first_position, k, v);
        const KvView seen =
            sequence.cache->view(context.slot, sequence.first_position + sequence.rows);
        seen.visit([&](auto keys, auto values) {  // float or bf16 rows
          Backend::causal_attention(q, keys, values, heads_, head_dim_, sequence.first_position,
                                    attended.middle_rows(sequence.first_row, sequence.rows),
                                    seen.positions);
        });
      }
      Backend::linear(attended, proj_, out);
    }

    std::size_t parameter_count() const {
      return qkv_.rows() * qkv_.cols() + proj_.rows() * proj_.cols() + qk_bias_.size();
    }
    std::size_t weight_bytes() const { return qkv_.bytes() + proj_.bytes(); }

   private:
    std::span<const float> bias(std::size_t which) const {
      if (qk_bias_.empty()) return {};
      return std::span<const float>(qk_bias_).subspan(which * width_, width_);
    }

    std::size_t width_ = 0, heads_ = 0, head_dim_ = 0;
    WeightsOf<Backend, Precision> qkv_, proj_;
    typename Memory::template Array<float> qk_bias_;  // [q biases ; k biases], heads * head_dim
  };
};

}  // namespace recurrent_depth
