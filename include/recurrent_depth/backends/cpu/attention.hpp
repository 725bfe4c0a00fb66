// Causal multi-head attention of the CPU backend over a KV cache slot: q [T, heads*head_dim] for
// positions first..first+T-1, keys and values [N, heads*head_dim]; key j sits at position
// key_positions[j] (or j when none are given) and is visible to queries at that position or later.
// Softmax in float32 with the running maximum subtracted; threads split (query, head) pairs.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <vector>

#include "../../core/tensor.hpp"
#include "simd.hpp"

namespace recurrent_depth::cpu {

namespace detail {

inline float dot(const float* a, const float* b, std::size_t n) {
  FloatBatch acc(0.0f);
  std::size_t i = 0;
  for (; i + kFloatLanes <= n; i += kFloatLanes)
    acc = xsimd::fma(load_floats(a + i), load_floats(b + i), acc);
  float sum = xsimd::hadd(acc);
  for (; i < n; ++i) sum += a[i] * b[i];
  return sum;
}

// s[i] = exp(s[i] - shift) for i < n, vectorised; returns their sum.
inline float exp_shifted(float* s, std::size_t n, float shift) {
  const FloatBatch subtract(shift);
  FloatBatch sums(0.0f);
  std::size_t i = 0;
  for (; i + kFloatLanes <= n; i += kFloatLanes) {
    const FloatBatch e = xsimd::exp(load_floats(s + i) - subtract);
    e.store_unaligned(s + i);
    sums += e;
  }
  float total = xsimd::hadd(sums);
  for (; i < n; ++i) total += s[i] = std::exp(s[i] - shift);
  return total;
}

// y += alpha * x
inline void axpy(float alpha, const float* x, float* y, std::size_t n) {
  const FloatBatch a(alpha);
  std::size_t i = 0;
  for (; i + kFloatLanes <= n; i += kFloatLanes)
    xsimd::fma(a, load_floats(x + i), load_floats(y + i)).store_unaligned(y + i);
  for (; i < n; ++i) y[i] += alpha * x[i];
}

}  // namespace detail

inline void causal_attention(ConstMatrixView<float> q, ConstMatrixView<float> keys,
                             ConstMatrixView<float> values, std::size_t heads, std::size_t head_dim,
                             std::size_t first_position, MatrixView<float> out,
                             std::span<const std::int32_t> key_positions = {}) {
  const std::size_t d = head_dim;
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  const std::ptrdiff_t tasks = static_cast<std::ptrdiff_t>(q.rows * heads);
#pragma omp parallel if (tasks > 1 && keys.rows * d * tasks > 16384)
  {
    std::vector<float> scores(keys.rows);
    std::vector<std::uint32_t> visible(keys.rows);
#pragma omp for schedule(static)
    for (std::ptrdiff_t task = 0; task < tasks; ++task) {
      const std::size_t t = static_cast<std::size_t>(task) / heads;
      const std::size_t h = static_cast<std::size_t>(task) % heads;
      const std::int64_t position = static_cast<std::int64_t>(first_position + t);
      const float* q_head = q.row(t) + h * d;
      std::size_t count = 0;
      float max_score = -std::numeric_limits<float>::infinity();
      for (std::size_t j = 0; j < keys.rows; ++j) {
        const std::int64_t key_position =
            key_positions.empty() ? static_cast<std::int64_t>(j) : key_positions[j];
        if (key_position > position) continue;
        const float s = detail::dot(q_head, keys.row(j) + h * d, d) * scale;
        visible[count] = static_cast<std::uint32_t>(j);
        scores[count++] = s;
        max_score = std::max(max_score, s);
      }
      float* y = out.row(t) + h * d;
      std::fill(y, y + d, 0.0f);
      const float total = detail::exp_shifted(scores.data(), count, max_score);
      const float inverse_total = count ? 1.0f / total : 0.0f;
      for (std::size_t i = 0; i < count; ++i)
        detail::axpy(scores[i] * inverse_total, values.row(visible[i]) + h * d, y, d);
    }
  }
}

}  // namespace recurrent_depth::cpu
