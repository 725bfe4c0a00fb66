// Causal multi-head attention of the CPU backend over a KV cache slot: q [T, heads*head_dim] for
// positions first..first+T-1, keys and values [N, heads*head_dim]; key j sits at position
// key_positions[j] (or j when none are given) and is visible to queries at that position or later.
// Softmax in float32 with the maximum subtracted. Several queries: threads split (query, head)
// pairs. One query (decode): key-major, so that keys and values stream contiguously from memory;
// threads split the keys, each keeps a partial softmax per head (its maximum, sum and weighted
// values), and the partials are merged at the end (as flash-decoding does).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <vector>

#include "../../core/tensor.hpp"
#include "../../core/threads.hpp"
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

// The partial softmax of one thread over its keys for one query: per head the maximum score,
// the sum of exp(score - maximum) and the values weighted by those exponentials.
struct PartialSoftmax {
  std::vector<float> maximum, total, weighted;  // [heads], [heads], [heads * d]
};

// Partial softmax of query q over keys [first, last) (those at positions <= position).
inline void attend_keys(const float* q, ConstMatrixView<float> keys, ConstMatrixView<float> values,
                        std::size_t heads, std::size_t d, float scale, std::int64_t position,
                        std::span<const std::int32_t> key_positions, std::size_t first,
                        std::size_t last, PartialSoftmax& part) {
  const std::size_t n = last - first;
  part.maximum.assign(heads, -std::numeric_limits<float>::infinity());
  part.total.assign(heads, 0.0f);
  part.weighted.assign(heads * d, 0.0f);
  std::vector<float> scores(heads * n);  // head-major: scores[h * n + i] for key first + i
  std::vector<std::uint32_t> visible;
  for (std::size_t j = first; j < last; ++j) {
    const std::int64_t key_position =
        key_positions.empty() ? static_cast<std::int64_t>(j) : key_positions[j];
    if (key_position > position) continue;
    const std::size_t i = visible.size();
    visible.push_back(static_cast<std::uint32_t>(j));
    for (std::size_t h = 0; h < heads; ++h) {
      const float score = dot(q + h * d, keys.row(j) + h * d, d) * scale;
      scores[h * n + i] = score;
      part.maximum[h] = std::max(part.maximum[h], score);
    }
  }
  if (visible.empty()) return;
  for (std::size_t h = 0; h < heads; ++h)
    part.total[h] = exp_shifted(scores.data() + h * n, visible.size(), part.maximum[h]);
  for (std::size_t i = 0; i < visible.size(); ++i)
    for (std::size_t h = 0; h < heads; ++h)
      axpy(scores[h * n + i], values.row(visible[i]) + h * d, part.weighted.data() + h * d, d);
}

// out = the softmax-weighted values of one query, from the threads' partials.
inline void merge_partials(std::span<const PartialSoftmax> parts, std::size_t heads, std::size_t d,
                           float* out) {
  for (std::size_t h = 0; h < heads; ++h) {
    float maximum = -std::numeric_limits<float>::infinity();
    for (const PartialSoftmax& part : parts)  // (a part is empty when the team was smaller)
      if (!part.maximum.empty()) maximum = std::max(maximum, part.maximum[h]);
    float* y = out + h * d;
    std::fill(y, y + d, 0.0f);
    if (maximum == -std::numeric_limits<float>::infinity()) continue;  // no visible key
    float total = 0.0f;
    for (const PartialSoftmax& part : parts) {
      if (part.total.empty() || part.total[h] == 0.0f) continue;
      const float factor = std::exp(part.maximum[h] - maximum);
      total += factor * part.total[h];
      axpy(factor, part.weighted.data() + h * d, y, d);
    }
    const float inverse_total = 1.0f / total;
    for (std::size_t i = 0; i < d; ++i) y[i] *= inverse_total;
  }
}

inline void attend_one_query(const float* q, ConstMatrixView<float> keys,
                             ConstMatrixView<float> values, std::size_t heads, std::size_t d,
                             float scale, std::int64_t position,
                             std::span<const std::int32_t> key_positions, float* out) {
  const bool threaded = keys.rows * heads * d > 16384;
  std::vector<PartialSoftmax> parts(threaded ? static_cast<std::size_t>(max_threads()) : 1);
#pragma omp parallel if (threaded)
  {
    const auto [first, last] = thread_share(keys.rows);
    attend_keys(q, keys, values, heads, d, scale, position, key_positions, first, last,
                parts[static_cast<std::size_t>(thread_index())]);
  }
  merge_partials(parts, heads, d, out);
}

}  // namespace detail

inline void causal_attention(ConstMatrixView<float> q, ConstMatrixView<float> keys,
                             ConstMatrixView<float> values, std::size_t heads, std::size_t head_dim,
                             std::size_t first_position, MatrixView<float> out,
                             std::span<const std::int32_t> key_positions = {}) {
  const std::size_t d = head_dim;
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  if (q.rows == 1) {
    detail::attend_one_query(q.row(0), keys, values, heads, d, scale,
                             static_cast<std::int64_t>(first_position), key_positions, out.row(0));
    return;
  }
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
