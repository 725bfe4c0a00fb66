// Embedding policy: token rows of wte [vocab, n_embd] scaled by sqrt(n_embd), and the output head
// logits = x head^T [T, vocab]. The head is wte itself (tied) unless the checkpoint stores a
// different `lm_head.weight`; a stored copy equal to wte (as in the released Huginn-0125) is
// shared, not loaded twice. The table is stored in the model's weight format, except that 4-bit
// models keep it in int8 (EmbeddingPrecision, core/precision.hpp).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string>

#include "../core/precision.hpp"
#include "../io/config.hpp"
#include "weight_loading.hpp"

namespace recurrent_depth {

struct ScaledTiedEmbedding {
  template <class Backend, class Precision>
  class Layer {
    using Stored = EmbeddingPrecision<Precision>;  // the table's own storage (int8 for q4)

   public:
    void load(const Checkpoint& checkpoint, const std::string& name, const ModelConfig& config) {
      const TensorInfo& table = checkpoint.at(name + ".weight");
      require(table.shape.size() == 2 && table.shape[0] >= config.vocab_size &&
                  table.shape[1] == config.n_embd,
              "tensor ", name, ".weight in ", table.source, ": shape ", table.shape_string(),
              ", expected [", config.vocab_size, " or more, ", config.n_embd, "]");
      rows_ = static_cast<std::size_t>(table.shape[0]);
      const auto width = static_cast<std::size_t>(config.n_embd);
      scale_ = std::sqrt(static_cast<float>(config.n_embd));
      table_ = load_matrix<Backend, Stored>(checkpoint, name + ".weight", rows_, width);
      const TensorInfo* head = checkpoint.find("lm_head.weight");
      if (head) {
        const bool duplicate = config.tie_embeddings && same_bytes(*head, table);
        checkpoint.release(*head);  // the comparison touched every page of both
        checkpoint.release(table);
        if (!duplicate)
          head_ = load_matrix<Backend, Stored>(checkpoint, "lm_head.weight", rows_, width);
      }
    }

    // out [T, n_embd] = wte[ids] * sqrt(n_embd); ids must be < vocab_rows().
    void embed(std::span<const std::int32_t> ids, MatrixView<float> out) const {
      Backend::gather_rows(table_, ids, scale_, out);
    }
    void head(ConstMatrixView<float> x, MatrixView<float> logits) const {
      Backend::linear(x, head_ ? *head_ : table_, logits);
    }

    std::size_t vocab_rows() const { return rows_; }
    bool tied() const { return !head_.has_value(); }
    std::size_t parameter_count() const { return (head_ ? 2 : 1) * table_.rows() * table_.cols(); }
    std::size_t weight_bytes() const { return (head_ ? 2 : 1) * table_.bytes(); }

   private:
    static bool same_bytes(const TensorInfo& a, const TensorInfo& b) {
      return a.dtype == b.dtype && a.shape == b.shape && a.bytes.size() == b.bytes.size() &&
             std::memcmp(a.bytes.data(), b.bytes.data(), a.bytes.size()) == 0;
    }

    std::size_t rows_ = 0;
    float scale_ = 1.0f;
    WeightsOf<Backend, Stored> table_;
    std::optional<WeightsOf<Backend, Stored>> head_;
  };
};

}  // namespace recurrent_depth
