// What a block invocation needs besides its input rows: which sequence (KV cache, positions) each
// run of rows belongs to, the KV slot to use, the RoPE angle table and scratch buffers (Workspace)
// reused across blocks and calls so the forward pass does not allocate per block; all of it in the
// backend's Memory (core/host_memory.hpp). Rows of several
// sequences can share one call: matmuls then read each weight once for all of them.
#pragma once

#include <cmath>
#include <cstddef>
#include <span>

#include "../cache/kv_cache.hpp"
#include "../core/tensor.hpp"

namespace recurrent_depth {

// Scratch activations of one forward pass, all [positions, width] in the backend's Memory;
// resized on demand.
template <class Memory = HostMemory>
struct BasicWorkspace {
  using Matrix = typename Memory::Matrix;
  Matrix normed;     // norm output fed to attention / MLP
  Matrix delta;      // attention / MLP output added back to the residual stream
  Matrix qkv;        // fused q, k, v projections
  Matrix attention;  // attention output before its projection
  Matrix fc;         // fused [gate ; up] MLP projection
  Matrix gated;      // silu(gate) * up
};

// Resizes a scratch matrix (a Memory::Matrix) to [rows, cols] and returns a view of it.
template <class OwnedMatrix>
MatrixView<float> scratch(OwnedMatrix& m, std::size_t rows, std::size_t cols) {
  if (m.rows() != rows || m.cols() != cols) m.resize(rows, cols);
  return m.view();
}

// Rows [first_row, first_row + rows) of the activations are tokens at positions
// [first_position, first_position + rows) of the sequence whose KV cache is `cache`.
template <class Memory = HostMemory>
struct BasicSequenceRows {
  BasicKvCache<Memory>* cache;
  std::size_t first_position;
  std::size_t first_row;
  std::size_t rows;
};

template <class Memory = HostMemory>
struct BasicBlockContext {
  std::span<const BasicSequenceRows<Memory>> sequences;  // in row order, covering all rows
  int slot;
  ConstMatrixView<float> rope;  // [max positions, head_dim] as (cos, sin) per rotated pair
  BasicWorkspace<Memory>& workspace;

  BasicBlockContext at_slot(int id) const { return {sequences, id, rope, workspace}; }
};

using Workspace = BasicWorkspace<>;
using SequenceRows = BasicSequenceRows<>;
using BlockContext = BasicBlockContext<>;

// The context, sequences and workspace of a backend's blocks (in its Memory).
template <class Backend>
using BlockContextOf = BasicBlockContext<typename Backend::Memory>;
template <class Backend>
using SequenceRowsOf = BasicSequenceRows<typename Backend::Memory>;
template <class Backend>
using WorkspaceOf = BasicWorkspace<typename Backend::Memory>;

// Angles of RoPE for positions [0, positions): entry (p, 2i) = cos(p * base^(-2i/dim)), (p, 2i+1)
// the sine. Computed in float32 the way the reference does (float32 inverse frequencies and
// products), so angles match it to the last bit before the cosine.
inline Matrix<float> rope_table(std::size_t positions, std::size_t head_dim, double base) {
  Matrix<float> table(positions, head_dim);
  for (std::size_t i = 0; i < head_dim / 2; ++i) {
    const float exponent = static_cast<float>(2 * i) / static_cast<float>(head_dim);
    const float inverse_frequency = 1.0f / std::pow(static_cast<float>(base), exponent);
    for (std::size_t p = 0; p < positions; ++p) {
      const float angle = static_cast<float>(p) * inverse_frequency;
      table(p, 2 * i) = static_cast<float>(std::cos(static_cast<double>(angle)));
      table(p, 2 * i + 1) = static_cast<float>(std::sin(static_cast<double>(angle)));
    }
  }
  return table;
}

}  // namespace recurrent_depth
