// RecurrentDepthModel<Backend, Precision, Architecture>: a loaded model and its forward pass.
// forward() runs T new tokens of a session (positions cache.length() .. +T-1): embed, prelude,
// r core iterations from the initial state, ln_f (the latents), coda, ln_f, head.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <utility>

#include "../io/checkpoint.hpp"
#include "../io/config.hpp"
#include "architecture.hpp"
#include "session.hpp"

namespace recurrent_depth {

struct ForwardOptions {
  std::optional<int> steps;               // core iterations r; default: config mean_recurrence
  StateInit init = StateInit::zero;       //
  ConstMatrixView<float> initial_state;   // [T, n_embd] when init == StateInit::given
  bool all_logits = true;                 // false: logits of the last position only
};

struct ForwardResult {
  Matrix<float> logits;   // [T, vocab] (or [1, vocab] without all_logits)
  Matrix<float> latents;  // [T, n_embd]: ln_f(state) after the last iteration, the coda's input
};

// Parameter counts and weight bytes per stage, as loaded.
struct ModelSummary {
  std::size_t embedding_parameters, prelude_parameters, core_parameters, adapter_parameters,
      coda_parameters, final_norm_parameters;
  std::size_t weight_bytes;
  bool tied_head;
  std::size_t total_parameters() const {
    return embedding_parameters + prelude_parameters + core_parameters + coda_parameters +
           final_norm_parameters;
  }
};

template <class Backend, class Precision, class Arch = Huginn>
class RecurrentDepthModel {
 public:
  using BackendType = Backend;
  using PrecisionType = Precision;
  using ArchitectureType = Arch;

  RecurrentDepthModel(ModelConfig config, const Checkpoint& checkpoint)
      : config_(std::move(config)),
        rope_(rope_table(static_cast<std::size_t>(config_.block_size),
                         static_cast<std::size_t>(config_.head_dim()), config_.rope_base)) {
    embedding_.load(checkpoint, names::kEmbedding, config_);
    prelude_.load(checkpoint, config_);
    core_.load(checkpoint, config_);
    coda_.load(checkpoint, config_);
    final_norm_.load(checkpoint, names::kFinalNorm, config_);
  }

  const ModelConfig& config() const { return config_; }
  std::size_t width() const { return static_cast<std::size_t>(config_.n_embd); }
  std::size_t vocab_rows() const { return embedding_.vocab_rows(); }

  Session new_session(std::uint64_t seed = 0) const { return Session(width(), seed); }

  ForwardResult forward(Session& session, std::span<const std::int32_t> ids,
                        const ForwardOptions& options = {}) const {
    const std::size_t count = ids.size(), first = session.cache.length();
    const int steps = check_inputs(ids, first, options);
    const SequenceRows sequence{&session.cache, first, 0, count};
    const BlockContext context{{&sequence, 1}, 0, rope_.view(), session.workspace};

    const MatrixView<float> x = scratch(session.residual, count, width());
    embedding_.embed(ids, x);
    prelude_.forward(x, context);  // x is now e

    MatrixView<float> state = scratch(session.state, count, width());
    initialise_state(session, options, state);
    if (steps > 0) {
      const MatrixView<float> injected = scratch(session.injected, count, width());
      core_.prepare(x, injected);
      MatrixView<float> next = scratch(session.next, count, width());
      for (int i = 0; i < steps; ++i) {
        core_.iterate(state, injected, next, i, context);
        std::swap(state, next);
      }
    }

    ForwardResult result;
    result.latents.resize(count, width());
    final_norm_(state, result.latents);
    Backend::copy(result.latents, x);
    coda_.forward(x, context);
    const MatrixView<float> head_in = options.all_logits ? x : x.middle_rows(count - 1, 1);
    final_norm_(head_in, head_in);
    result.logits.resize(head_in.rows, vocab_rows());
    embedding_.head(head_in, result.logits);
    session.cache.commit(count);
    return result;
  }

  ModelSummary summary() const {
    return {embedding_.parameter_count(),
            prelude_.parameter_count(),
            core_.parameter_count(),
            core_.adapter_parameter_count(),
            coda_.parameter_count(),
            final_norm_.parameter_count(),
            embedding_.weight_bytes() + prelude_.weight_bytes() + core_.weight_bytes() +
                coda_.weight_bytes(),
            embedding_.tied()};
  }

  // KV cache bytes one token occupies at r core iterations (one entry per block invocation).
  std::size_t kv_bytes_per_token(int steps) const {
    const std::size_t invocations =
        std::size_t(prelude_.size() + core_.layers() * steps + coda_.size());
    return invocations * 2 * width() * sizeof(float);
  }

 private:
  int check_inputs(std::span<const std::int32_t> ids, std::size_t first,
                   const ForwardOptions& options) const {
    require(!ids.empty(), "forward: no input tokens");
    for (std::size_t t = 0; t < ids.size(); ++t)
      require(ids[t] >= 0 && ids[t] < config_.vocab_size, "forward: token id ", ids[t],
              " at index ", t, " is out of range, expected 0 <= id < vocab_size ",
              config_.vocab_size);
    require(first + ids.size() <= std::size_t(config_.block_size), "forward: ", ids.size(),
            " tokens after ", first, " cached ones exceed the context of ", config_.block_size,
            " positions (block_size)");
    const int steps = options.steps.value_or(config_.mean_recurrence);
    require(steps >= 0, "forward: steps (core iterations) is ", steps, ", expected >= 0");
    if (options.init == StateInit::given)
      require(options.initial_state.rows == ids.size() && options.initial_state.cols == width(),
              "forward: initial state is [", options.initial_state.rows, ", ",
              options.initial_state.cols, "], expected [", ids.size(), ", ", width(), "]");
    return steps;
  }

  void initialise_state(Session& session, const ForwardOptions& options,
                        MatrixView<float> state) const {
    switch (options.init) {
      case StateInit::zero:
        for (std::size_t r = 0; r < state.rows; ++r) std::fill_n(state.row(r), state.cols, 0.0f);
        break;
      case StateInit::random:
        Arch::Core::StateInitPolicy::fill(state, session.rng);
        break;
      case StateInit::given:
        Backend::copy(options.initial_state, state);
        break;
    }
  }

  ModelConfig config_;
  Matrix<float> rope_;
  typename Arch::Embedding::template Layer<Backend, Precision> embedding_;
  typename Arch::Prelude::template Layer<Backend, Precision> prelude_;
  typename Arch::Core::template Layer<Backend, Precision> core_;
  typename Arch::Coda::template Layer<Backend, Precision> coda_;
  typename Arch::FinalNorm::template Layer<Backend, Precision> final_norm_;
};

// Loads DIR/config.json and the weights of DIR (single file or sharded), converting them once.
template <class Backend, class Precision, class Arch = Huginn>
RecurrentDepthModel<Backend, Precision, Arch> load_model(const std::filesystem::path& directory) {
  const Checkpoint checkpoint = Checkpoint::open(directory);
  return RecurrentDepthModel<Backend, Precision, Arch>(ModelConfig::load(directory / "config.json"),
                                                       checkpoint);
}

}  // namespace recurrent_depth
