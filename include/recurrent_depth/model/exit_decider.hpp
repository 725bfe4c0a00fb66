// The hook through which per-token early exit reaches the core loop: after each core iteration
// the model asks the decider, row by row, whether that token stops iterating. Criteria live in
// generate/exit_criteria.hpp; the model only knows this interface.
#pragma once

#include <cstddef>
#include <span>

namespace recurrent_depth {

class ExitDecider {
 public:
  virtual ~ExitDecider() = default;

  // Whether stop() needs the logits of the current state (ln_f -> coda -> ln_f -> head: about
  // the cost of the coda plus the head per check) or the state before the iteration.
  virtual bool needs_logits() const = 0;
  virtual bool needs_previous_state() const = 0;
  // Called at the start of a forward with its number of rows (tokens).
  virtual void begin(std::size_t rows) = 0;
  // Whether rows are tested after `steps` iterations (min_steps, check every n steps).
  virtual bool checks_after(int steps) const = 0;
  // Row `row` (of this forward) has done `steps` iterations: true stops it. previous_state is the
  // raw state before the last iteration, state the raw state after it; logits are empty unless
  // needs_logits().
  virtual bool stop(std::size_t row, int steps, std::span<const float> previous_state,
                    std::span<const float> state, std::span<const float> logits) = 0;
};

}  // namespace recurrent_depth
