// RecurrentDepthModel<Backend, Precision, Architecture>: a loaded model and its forward pass.
// forward() runs T new tokens of a session (positions cache.length() .. +T-1): embed, prelude,
// r core iterations from the initial state, ln_f (the latents), coda, ln_f, head.
#pragma once

#include <algorithm>
#include <cstdint>
#include <optional>
#include <set>
#include <span>
#include <utility>
#include <vector>

#include "../io/checkpoint.hpp"
#include "../io/config.hpp"
#include "active_rows.hpp"
#include "architecture.hpp"
#include "exit_decider.hpp"
#include "load_estimate.hpp"
#include "session.hpp"

namespace recurrent_depth {

struct ForwardOptions {
  std::optional<int> steps;              // core iterations r; default: config mean_recurrence
  std::span<const int> steps_per_token;  // a fixed schedule, one r per token (overrides steps)
  StateInit init = StateInit::zero;      //
  ConstMatrixView<float> initial_state;  // [T, n_embd] when init == StateInit::given
  bool all_logits = true;                // false: logits of the last position only
  ExitDecider* exit = nullptr;           // per-token early exit; at most `steps` iterations
};

struct ForwardResult {
  Matrix<float> logits;     // [T, vocab] (or [1, vocab] without all_logits)
  Matrix<float> latents;    // [T, n_embd]: ln_f(state) after the last iteration, the coda's input
  std::vector<int> steps;   // core iterations each token ran
  std::vector<int> probes;  // exit checks that ran ln_f -> coda -> ln_f -> head, per token
};

// One sequence of a batched forward: its session (KV cache) and new tokens.
template <class Memory = HostMemory>
struct BasicBatchItem {
  BasicSession<Memory>* session;
  std::span<const std::int32_t> ids;
  ForwardOptions options;
};
using BatchItem = BasicBatchItem<>;

// What one token costs at r iterations: the weight bytes it streams (prelude, the e part of the
// adapter, r x (adapter state part + core blocks), coda, head) and 2 FLOP per weight it multiplies
// (attention over the cache and the row-wise operations left out). weight_bytes = once_bytes +
// r x iteration_bytes: iteration_bytes are read again by every core iteration (a cache that holds
// them serves all but the first), once_bytes once per token.
struct TokenCost {
  double weight_bytes;
  double flops;
  double once_bytes;
  double iteration_bytes;
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
  using Memory = typename Backend::Memory;  // where activations and the KV cache live
  using SessionType = BasicSession<Memory>;
  using BatchItemType = BasicBatchItem<Memory>;

  // Checks the config and that the model fits (options.memory_limit, or the memory available)
  // before allocating anything, then reads and converts the weights.
  RecurrentDepthModel(ModelConfig config, const Checkpoint& checkpoint,
                      const LoadOptions& options = {})
      : config_(std::move(config)),
        // The backend's check of this CPU runs first, before anything compiled for it.
        rope_(in_memory(
            (Backend::check_machine(), config_.validate(checkpoint.directory().string()),
             require_load_fits<Precision>(config_, checkpoint, options),
             rope_table(static_cast<std::size_t>(config_.block_size),
                        static_cast<std::size_t>(config_.head_dim()), config_.rope_base)))) {
    embedding_.load(checkpoint, names::kEmbedding, config_);
    prelude_.load(checkpoint, config_);
    core_.load(checkpoint, config_);
    coda_.load(checkpoint, config_);
    final_norm_.load(checkpoint, names::kFinalNorm, config_);
  }

  const ModelConfig& config() const { return config_; }
  std::size_t width() const { return static_cast<std::size_t>(config_.n_embd); }
  std::size_t vocab_rows() const { return embedding_.vocab_rows(); }

  // The format of a session's KV cache when its rule names none.
  static constexpr KvFormat default_kv_format = default_kv_format_for<Precision>;

  // A new sequence: its KV cache (stored by `rule`, bounded by `limit`) and its seeded generator.
  SessionType new_session(std::uint64_t seed = 0, CacheRule rule = {},
                          KvCacheLimit limit = {}) const {
    return SessionType(width(), seed, with_default_format(rule), limit);
  }
  // A finished sequence's session made new_session(seed, rule, limit)'s equal, its memory kept.
  void restart_session(SessionType& session, std::uint64_t seed = 0, CacheRule rule = {},
                       KvCacheLimit limit = {}) const {
    session.restart(seed, with_default_format(rule), limit);
  }

  // Runs T new tokens of one sequence (positions cache.length() .. +T-1).
  ForwardResult forward(SessionType& session, std::span<const std::int32_t> ids,
                        const ForwardOptions& options = {}) const {
    BatchItemType item{&session, ids, options};
    return std::move(forward_batch({&item, 1}).front());
  }

  // Runs the new tokens of several sequences in one pass: every weight is read once for all
  // rows, each sequence attends to its own cache, and each token has its own iteration budget
  // and exit decision. Results equal those of running each sequence alone.
  std::vector<ForwardResult> forward_batch(std::span<const BatchItemType> items) const {
    require(!items.empty(), "forward: a batch with no items");
    std::vector<SequenceRowsOf<Backend>> sequences;
    std::vector<int> budget;
    for (const BatchItemType& item : items) {
      check_item(item, items);
      sequences.push_back(
          {&item.session->cache, item.session->cache.length(), budget.size(), item.ids.size()});
      for (std::size_t t = 0; t < item.ids.size(); ++t)
        budget.push_back(item.options.steps_per_token.empty()
                             ? item.options.steps.value_or(config_.mean_recurrence)
                             : item.options.steps_per_token[t]);
    }
    SessionType& scratch_owner = *items.front().session;
    const typename Memory::StreamScope on_stream(scratch_owner.stream);  // all of it queued there
    const std::size_t count = budget.size();
    const BlockContextOf<Backend> context{sequences, 0, rope_.view(), scratch_owner.workspace};

    const MatrixView<float> x = scratch(scratch_owner.residual, count, width());
    MatrixView<float> state = scratch(scratch_owner.state, count, width());
    for (std::size_t i = 0; i < items.size(); ++i) {
      const SequenceRowsOf<Backend>& rows = sequences[i];
      embedding_.embed(Memory::stage(items[i].ids, items[i].session->staged_ids),
                       x.middle_rows(rows.first_row, rows.rows));
      initialise_state(*items[i].session, items[i].options,
                       state.middle_rows(rows.first_row, rows.rows));
    }
    prelude_.forward(x, context);  // x is now e
    const MatrixView<float> injected = scratch(scratch_owner.injected, count, width());
    core_.prepare(x, injected);  // from here on x is free: it receives the final states

    std::vector<int> steps(count, 0), probes(count, 0);
    iterate_core(scratch_owner, items, sequences, budget, state, injected, x, steps, probes);

    std::vector<ForwardResult> results(items.size());
    const MatrixView<float> latents = scratch(scratch_owner.latents, count, width());
    final_norm_(x, latents);
    Backend::copy(latents, x);
    coda_.forward(x, context);
    final_norm_(x, x);
    for (std::size_t i = 0; i < items.size(); ++i) {
      const SequenceRowsOf<Backend>& rows = sequences[i];
      ForwardResult& result = results[i];
      const MatrixView<float> head_in = items[i].options.all_logits
                                            ? x.middle_rows(rows.first_row, rows.rows)
                                            : x.middle_rows(rows.first_row + rows.rows - 1, 1);
      result.logits.resize(head_in.rows, vocab_rows());
      if constexpr (Memory::host_visible) {
        embedding_.head(head_in, result.logits);
      } else {
        const MatrixView<float> logits =
            scratch(scratch_owner.probe_logits, head_in.rows, vocab_rows());
        embedding_.head(head_in, logits);
        Memory::download(logits, result.logits);
      }
      result.latents.resize(rows.rows, width());
      Memory::download(latents.middle_rows(rows.first_row, rows.rows), result.latents);
      const auto first = rows.first_row, last = rows.first_row + rows.rows;
      result.steps.assign(steps.begin() + first, steps.begin() + last);
      result.probes.assign(probes.begin() + first, probes.begin() + last);
      items[i].session->cache.commit(rows.rows);
    }
    return results;
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

  TokenCost token_cost(int steps) const {
    const double head_bytes = double(embedding_.weight_bytes()) / (embedding_.tied() ? 1 : 2);
    const double head_parameters = double(vocab_rows() * width());
    const double once_bytes = double(prelude_.weight_bytes() + coda_.weight_bytes() +
                                     core_.weight_bytes() - core_.iteration_weight_bytes()) +
                              head_bytes;
    const double once_parameters =
        double(prelude_.parameter_count() + coda_.parameter_count() + core_.parameter_count() -
               core_.iteration_parameter_count()) +
        head_parameters;
    const double iteration_bytes = double(core_.iteration_weight_bytes());
    return {once_bytes + steps * iteration_bytes,
            2.0 * (once_parameters + steps * double(core_.iteration_parameter_count())), once_bytes,
            iteration_bytes};
  }

  // KV cache bytes one token occupies after r core iterations when stored by `rule` (one entry
  // per distinct storage slot its block invocations write; latest-m4 stores as much as full), in
  // its format or else the model's default.
  std::size_t kv_bytes_per_token(int steps, CacheRule rule = {}) const {
    const std::size_t core_slots =
        saturating_product(std::size_t(core_.layers()), std::size_t(std::max(steps, 0)));
    std::size_t count = saturating_sum(std::size_t(prelude_.size() + coda_.size()), core_slots);
    if (rule.compress > 0) {  // core slots repeat with period K: the first K cover them all
      std::set<int> slots;
      for (int i = 0; i < prelude_.size(); ++i) slots.insert(rule.storage_slot(i));
      for (std::size_t i = 0; i < std::min(core_slots, std::size_t(rule.compress)); ++i)
        slots.insert(rule.storage_slot(prelude_.size() + int(i)));
      for (int i = 1; i <= coda_.size(); ++i) slots.insert(rule.storage_slot(-i));
      count = slots.size();
    }
    const KvFormat format = rule.format.value_or(default_kv_format);
    return saturating_product(count, 2 * kv_words_per_row(width(), format) * sizeof(float));
  }

 private:
  // The rule with its KV format named (default_kv_format when it names none).
  static CacheRule with_default_format(CacheRule rule) {
    rule.format = rule.format.value_or(default_kv_format);
    return rule;
  }

  void check_item(const BatchItemType& item, std::span<const BatchItemType> items) const {
    require(item.session != nullptr, "forward: a batch item has no session");
    for (const BatchItemType& other : items)
      require(&other == &item || other.session != item.session,
              "forward: a session appears twice in one batch");
    const std::span<const std::int32_t> ids = item.ids;
    const ForwardOptions& options = item.options;
    const std::size_t first = item.session->cache.length();
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
    require(options.steps_per_token.empty() || options.steps_per_token.size() == ids.size(),
            "forward: steps_per_token has ", options.steps_per_token.size(), " entries, expected ",
            ids.size(), " (one per token)");
    for (int r : options.steps_per_token)
      require(r >= 0, "forward: steps_per_token holds ", r, ", expected >= 0");
    if (options.init == StateInit::given)
      require(options.initial_state.rows == ids.size() && options.initial_state.cols == width(),
              "forward: initial state is [", options.initial_state.rows, ", ",
              options.initial_state.cols, "], expected [", ids.size(), ", ", width(), "]");
    check_cache_room(item.session->cache, ids.size(), options);
  }

  // The most the cache can grow in this call: each new token writes one entry per storage slot
  // its budget reaches. Refused before anything is written when that could pass the session's
  // KvCacheLimit or the memory available.
  void check_cache_room(const BasicKvCache<Memory>& cache, std::size_t tokens,
                        const ForwardOptions& options) const {
    const KvCacheLimit& limit = cache.limit();
    if (limit.tokens > 0 && cache.length() + tokens > limit.tokens) {
      fail("forward: ", tokens, " tokens after ", cache.length(),
           " cached ones exceed the session's KV cache limit of ", limit.tokens, " tokens");
    }
    int deepest = options.steps.value_or(config_.mean_recurrence);
    if (!options.steps_per_token.empty())
      deepest = *std::max_element(options.steps_per_token.begin(), options.steps_per_token.end());
    const std::size_t growth =
        saturating_product(tokens, kv_bytes_per_token(deepest, cache.rule()));
    const std::size_t most = saturating_sum(cache.bytes(), growth);
    if (limit.bytes > 0 && most > limit.bytes) {
      fail("forward: ", tokens, " tokens at r = ", deepest, " could take the KV cache (",
           cache.rule().name(), ") from ", format_bytes(cache.bytes()), " to ", format_bytes(most),
           ", over the session's limit of ", format_bytes(limit.bytes), " (", limit.bytes,
           " bytes)");
    }
    require_memory(growth, 0, "forward: the KV cache's growth");
  }

  // The core loop. state: initial states [N, n_embd]; injected: the adapter's e part. Rows stop
  // at their budget or when their item's exit decider says so; each stopped row's raw state is
  // written to final_state (original row order), its iteration count to steps and the number of
  // logit probes its exit checks needed to probes.
  void iterate_core(SessionType& owner, std::span<const BatchItemType> items,
                    std::span<const SequenceRowsOf<Backend>> sequences, std::span<const int> budget,
                    MatrixView<float> state, MatrixView<float> injected,
                    MatrixView<float> final_state, std::vector<int>& steps,
                    std::vector<int>& probes) const {
    std::vector<ExitDecider*> decider_of_row;
    bool wants_previous = false, wants_logits = false;
    for (std::size_t i = 0; i < items.size(); ++i) {
      ExitDecider* exit = items[i].options.exit;
      if (exit) {
        exit->begin(sequences[i].rows);
        wants_previous = wants_previous || exit->needs_previous_state();
        wants_logits = wants_logits || exit->needs_logits();
      }
      decider_of_row.insert(decider_of_row.end(), sequences[i].rows, exit);
    }
    std::vector<std::size_t> first_row_of_row;  // row index inside its item
    for (const SequenceRowsOf<Backend>& s : sequences)
      for (std::size_t r = 0; r < s.rows; ++r) first_row_of_row.push_back(s.first_row);

    ActiveRows<Memory> active;
    active.reset(sequences);
    MatrixView<float> next = scratch(owner.next, state.rows, width());
    MatrixView<float> previous =
        wants_previous ? scratch(owner.previous, state.rows, width()) : MatrixView<float>();
    std::vector<char> done;
    const auto retire = [&](int iterations) {  // moves finished rows out of the packed set
      bool any = false;
      for (std::size_t p = 0; p < active.size(); ++p)
        if (done[p]) {
          const std::size_t row = active.rows()[p];
          Memory::copy(state.middle_rows(p, 1), final_state.middle_rows(row, 1));
          steps[row] = iterations;
          any = true;
        }
      if (!any) return;
      const std::size_t left = active.remove(done, state, injected, previous);
      state.rows = next.rows = injected.rows = left;
      if (previous.data) previous.rows = left;
    };

    done.assign(active.size(), 0);
    for (std::size_t p = 0; p < active.size(); ++p) done[p] = budget[p] == 0;
    retire(0);
    for (int i = 0; !active.empty(); ++i) {
      const BlockContextOf<Backend> context{active.segments(), 0, rope_.view(), owner.workspace};
      if (previous.data) Backend::copy(state, previous);
      core_.iterate(state, injected, next, i, context);
      std::swap(state.data, next.data);
      std::swap(state.stride, next.stride);

      const int iterations = i + 1;
      // What the exit checks read, as the host sees it.
      ConstMatrixView<float> checked_state, checked_previous, logits;
      if (any_checks(decider_of_row, active, iterations)) {
        checked_state = on_host(state, owner.host_rows);
        if (previous.data) checked_previous = on_host(previous, owner.host_previous);
        if (wants_logits) {
          logits = on_host(probe_logits(owner, state, context), owner.host_logits);
          for (std::size_t row : active.rows()) ++probes[row];
        }
      }
      done.assign(active.size(), 0);
      for (std::size_t p = 0; p < active.size(); ++p) {
        const std::size_t row = active.rows()[p];
        ExitDecider* exit = decider_of_row[row];
        done[p] = iterations >= budget[row];
        if (!done[p] && exit && exit->checks_after(iterations))
          done[p] = exit->stop(
              row - first_row_of_row[row], iterations,
              checked_previous.data ? checked_previous.row_span(p) : std::span<const float>(),
              checked_state.row_span(p),
              logits.data ? logits.row_span(p) : std::span<const float>());
      }
      retire(iterations);
    }
  }

  static bool any_checks(const std::vector<ExitDecider*>& decider_of_row,
                         const ActiveRows<Memory>& active, int iterations) {
    for (std::size_t row : active.rows())
      if (decider_of_row[row] && decider_of_row[row]->checks_after(iterations)) return true;
    return false;
  }

  // Logits of the current states of the active rows: ln_f -> coda -> ln_f -> head. The coda's
  // KV entries for these positions are rewritten by the final pass.
  ConstMatrixView<float> probe_logits(SessionType& owner, ConstMatrixView<float> state,
                                      const BlockContextOf<Backend>& context) const {
    const MatrixView<float> x = scratch(owner.probe, state.rows, width());
    final_norm_(state, x);
    coda_.forward(x, context);
    final_norm_(x, x);
    const MatrixView<float> logits = scratch(owner.probe_logits, state.rows, vocab_rows());
    embedding_.head(x, logits);
    return logits;
  }

  void initialise_state(SessionType& session, const ForwardOptions& options,
                        MatrixView<float> state) const {
    switch (options.init) {
      case StateInit::zero:
        Memory::fill_zero(state);
        break;
      case StateInit::random:
        if constexpr (Memory::host_visible) {
          Arch::Core::StateInitPolicy::fill(state, session.rng);
        } else {  // drawn on the host, in the same order
          session.host_rows.resize(state.rows, state.cols);
          Arch::Core::StateInitPolicy::fill(session.host_rows, session.rng);
          Memory::upload(session.host_rows, state);
        }
        break;
      case StateInit::given:
        Memory::upload(options.initial_state, state);
        break;
    }
  }

  // rows as the host can read them: the view itself in host memory, else a copy in `host`.
  static ConstMatrixView<float> on_host(ConstMatrixView<float> rows, Matrix<float>& host) {
    if constexpr (Memory::host_visible) {
      return rows;
    } else {
      host.resize(rows.rows, rows.cols);
      Memory::download(rows, host);
      return host;
    }
  }

  static typename Memory::Matrix in_memory(Matrix<float> host) {
    if constexpr (std::is_same_v<typename Memory::Matrix, Matrix<float>>) {
      return host;
    } else {
      typename Memory::Matrix copy;
      copy.resize(host.rows(), host.cols());
      Memory::upload(host, copy.view());
      return copy;
    }
  }

  ModelConfig config_;
  typename Memory::Matrix rope_;  // rope_table in Memory
  typename Arch::Embedding::template Layer<Backend, Precision> embedding_;
  typename Arch::Prelude::template Layer<Backend, Precision> prelude_;
  typename Arch::Core::template Layer<Backend, Precision> core_;
  typename Arch::Coda::template Layer<Backend, Precision> coda_;
  typename Arch::FinalNorm::template Layer<Backend, Precision> final_norm_;
};

}  // namespace recurrent_depth
