// ModelConfig: the sizes of a recurrent-depth model (the keys of Huginn's config.json, which
// model_directory.hpp reads), validated so that later code can trust every size.
#pragma once

#include <cmath>
#include <sstream>
#include <string>
#include <string_view>

#include "recurrent_depth/core/error.hpp"

namespace recurrent_depth {

struct ModelConfig {
  int n_embd = 0;
  int n_heads = 0;
  int intermediate_size = 0;
  int vocab_size = 0;
  int padding_multiple = 1;
  int block_size = 0;
  int n_layers_in_prelude = 0;
  int n_layers_in_recurrent_block = 0;
  int n_layers_in_coda = 0;
  int mean_recurrence = 0;
  double rope_base = 0;
  double norm_eps = 0;
  bool tie_embeddings = true;
  bool qk_bias = true;
  int bos_token_id = -1;  // -1: none
  int eos_token_id = -1;
  int pad_token_id = -1;

  int head_dim() const { return n_heads > 0 ? n_embd / n_heads : 0; }

  // Checks the relations between fields (sizes positive, heads divide the width, even head_dim).
  // model_config_from_json calls it; call it on configs built in code.
  void validate(const std::string& source) const {
    const auto positive = [&](int v, const char* key) {
      if (v <= 0) fail(source, ": field ", key, ": expected a positive integer, found ", v);
    };
    positive(n_embd, "n_embd");
    positive(n_heads, "n_heads");
    positive(intermediate_size, "intermediate_size");
    positive(vocab_size, "vocab_size");
    positive(padding_multiple, "padding_multiple");
    positive(block_size, "block_size");
    positive(n_layers_in_recurrent_block, "n_layers_in_recurrent_block");
    positive(mean_recurrence, "mean_recurrence");
    if (n_layers_in_prelude < 0 || n_layers_in_coda < 0) {
      fail(source, ": layer counts must not be negative (prelude ", n_layers_in_prelude, ", coda ",
           n_layers_in_coda, ")");
    }
    if (!(rope_base > 0) || !std::isfinite(rope_base)) {
      fail(source, ": field rope_base: expected a positive number, found ", rope_base);
    }
    if (!(norm_eps > 0) || !std::isfinite(norm_eps)) {
      fail(source, ": field norm_eps: expected a positive number, found ", norm_eps);
    }
    if (n_embd % n_heads != 0) {
      fail(source, ": n_embd ", n_embd, " is not divisible by n_heads ", n_heads);
    }
    if (head_dim() % 2 != 0) {
      fail(source, ": head_dim ", head_dim(), " (n_embd ", n_embd, " / n_heads ", n_heads,
           ") is odd, but RoPE rotates pairs of features");
    }
    const auto token = [&](int id, const char* key) {
      if (id < -1 || id >= vocab_size) {
        fail(source, ": field ", key, ": ", id, " is not a token id below vocab_size ", vocab_size,
             " (or -1 for none)");
      }
    };
    token(bos_token_id, "bos_token_id");
    token(eos_token_id, "eos_token_id");
    token(pad_token_id, "pad_token_id");
  }

  // One line, e.g. "n_embd 96, 6 heads x 16, mlp 256, vocab 384, layers 2/4/2, r 8, ...".
  std::string to_string() const {
    std::ostringstream s;
    s << "n_embd " << n_embd << ", " << n_heads << " heads x " << head_dim() << ", mlp "
      << intermediate_size << ", vocab " << vocab_size << " (padding " << padding_multiple
      << "), layers " << n_layers_in_prelude << "/" << n_layers_in_recurrent_block << "/"
      << n_layers_in_coda << ", mean_recurrence " << mean_recurrence << ", block_size "
      << block_size << ", rope_base " << rope_base << ", norm_eps " << norm_eps
      << (tie_embeddings ? ", tied" : ", untied") << " embeddings" << (qk_bias ? ", qk_bias" : "")
      << ", bos " << bos_token_id << ", eos " << eos_token_id << ", pad " << pad_token_id;
    return s.str();
  }
};

}  // namespace recurrent_depth
