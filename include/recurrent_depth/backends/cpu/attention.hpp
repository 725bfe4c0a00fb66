// Causal multi-head attention of the CPU backend over a KV cache slot: q [T, heads*head_dim] for
// positions first..first+T-1, keys and values [N, heads*head_dim]; key j sits at position
// key_positions[j] (or j when none are given) and is visible to queries at that position or later.
// Softmax in float32 with the maximum subtracted. Several queries (prefill): threads split
// (head, block of 16 queries) tasks; each puts its head's keys in key-lane order once, and then
// scores a query against kFloatLanes keys per instruction (broadcast query elements, no
// horizontal sums). One query (decode): key-major, so that keys and values stream contiguously from
// memory; threads split the keys, each keeps a partial softmax per head (its maximum, sum and
// weighted values), and the partials are merged at the end (as flash-decoding does).
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
inline namespace RECURRENT_DEPTH_KERNEL_NAMESPACE {

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

// Whether key j (at position key_positions[j], or j when none are given) is visible from a query
// at `position`.
inline bool key_visible(std::span<const std::int32_t> key_positions, std::size_t j,
                        std::int64_t position) {
  return (key_positions.empty() ? static_cast<std::int64_t>(j) : key_positions[j]) <= position;
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
    if (!key_visible(key_positions, j, position)) continue;
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

// Head h of keys [N, heads * d] in key-lane order: for each group of kFloatLanes keys, element i
// of the head for each key of the group (out[(g * d + i) * kFloatLanes + lane] = keys[g *
// kFloatLanes + lane][h * d + i]), keys past N zero.
inline void transpose_head_keys(ConstMatrixView<float> keys, std::size_t h, std::size_t d,
                                std::vector<float>& out) {
  const std::size_t groups = (keys.rows + kFloatLanes - 1) / kFloatLanes;
  out.assign(groups * d * kFloatLanes, 0.0f);
  for (std::size_t j = 0; j < keys.rows; ++j) {
    const float* key = keys.row(j) + h * d;
    float* lanes = out.data() + j / kFloatLanes * d * kFloatLanes + j % kFloatLanes;
    for (std::size_t i = 0; i < d; ++i) lanes[i * kFloatLanes] = key[i];
  }
}

// One query's head (q_head, d values) over all keys in key-lane order: scores kFloatLanes keys
// at a time by broadcasting the query's elements (no horizontal sums), the keys after `position`
// masked, softmax, and the weighted values written to out (zeros when no key is visible).
inline void attend_query_head(const float* q_head, const std::vector<float>& key_lanes,
                              ConstMatrixView<float> values, std::size_t h, std::size_t d,
                              float scale, std::int64_t position,
                              std::span<const std::int32_t> key_positions,
                              std::vector<float>& scores, float* out) {
  // Keys past the last visible one are not scored (in cache order: those after `position`).
  std::size_t n = values.rows;
  if (key_positions.empty())
    n = std::min(n, static_cast<std::size_t>(std::max<std::int64_t>(position + 1, 0)));
  else
    while (n > 0 && !key_visible(key_positions, n - 1, position)) --n;
  const std::size_t groups = (n + kFloatLanes - 1) / kFloatLanes;
  scores.resize(groups * kFloatLanes);
  // kGroups groups of keys at once: independent FMA chains, one broadcast for all of them.
  constexpr std::size_t kGroups = 4;
  const auto score_groups = [&]<std::size_t G>(std::size_t g0) {
    FloatBatch acc[G];
    for (std::size_t k = 0; k < G; ++k) acc[k] = FloatBatch(0.0f);
    const float* lanes = key_lanes.data() + g0 * d * kFloatLanes;
    for (std::size_t i = 0; i < d; ++i) {
      const FloatBatch qi(q_head[i]);
      for (std::size_t k = 0; k < G; ++k)
        acc[k] = xsimd::fma(qi, load_floats(lanes + (k * d + i) * kFloatLanes), acc[k]);
    }
    for (std::size_t k = 0; k < G; ++k)
      (acc[k] * FloatBatch(scale)).store_unaligned(scores.data() + (g0 + k) * kFloatLanes);
  };
  std::size_t g = 0;
  for (; g + kGroups <= groups; g += kGroups) score_groups.template operator()<kGroups>(g);
  for (; g < groups; ++g) score_groups.template operator()<1>(g);
  float maximum = -std::numeric_limits<float>::infinity();
  bool any = false;
  for (std::size_t j = 0; j < n; ++j) {
    if (!key_visible(key_positions, j, position)) {
      scores[j] = -std::numeric_limits<float>::infinity();  // its exponential is 0
      continue;
    }
    any = true;
    maximum = std::max(maximum, scores[j]);
  }
  std::fill(out, out + d, 0.0f);
  if (!any) return;
  const float inverse_total = 1.0f / exp_shifted(scores.data(), n, maximum);
  for (std::size_t j = 0; j < n; ++j) scores[j] *= inverse_total;  // masked keys weigh 0
  // out = sum over the keys of weight x value, B batches of the head at a time held in registers
  // across all keys (the rest of the head, under a batch, element by element).
  const auto add_values = [&]<std::size_t B>(std::size_t c0) {
    FloatBatch acc[B];
    for (std::size_t k = 0; k < B; ++k) acc[k] = FloatBatch(0.0f);
    for (std::size_t j = 0; j < n; ++j) {
      const FloatBatch weight(scores[j]);
      const float* v = values.row(j) + h * d + c0;
      for (std::size_t k = 0; k < B; ++k)
        acc[k] = xsimd::fma(weight, load_floats(v + k * kFloatLanes), acc[k]);
    }
    for (std::size_t k = 0; k < B; ++k) acc[k].store_unaligned(out + c0 + k * kFloatLanes);
  };
  constexpr std::size_t kBatches = 4;
  const std::size_t whole = d / kFloatLanes * kFloatLanes;
  std::size_t c0 = 0;
  for (; c0 + kBatches * kFloatLanes <= whole; c0 += kBatches * kFloatLanes)
    add_values.template operator()<kBatches>(c0);
  switch ((whole - c0) / kFloatLanes) {
    case 3:
      add_values.template operator()<3>(c0);
      break;
    case 2:
      add_values.template operator()<2>(c0);
      break;
    case 1:
      add_values.template operator()<1>(c0);
      break;
    default:
      break;
  }
  for (std::size_t j = 0; j < n && whole < d; ++j) {
    const float* v = values.row(j) + h * d;
    for (std::size_t i = whole; i < d; ++i) out[i] += scores[j] * v[i];
  }
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
  // Tasks: one head for a block of queries; each transposes its head's keys once.
  constexpr std::size_t kQueryBlock = 32;
  const std::size_t query_blocks = (q.rows + kQueryBlock - 1) / kQueryBlock;
  const auto tasks = static_cast<std::ptrdiff_t>(heads * query_blocks);
#pragma omp parallel if (keys.rows * d * q.rows * heads > 16384)
  {
    std::vector<float> key_lanes, scores;
#pragma omp for schedule(static)
    for (std::ptrdiff_t task = 0; task < tasks; ++task) {
      const std::size_t h = static_cast<std::size_t>(task) / query_blocks;
      const std::size_t t0 = static_cast<std::size_t>(task) % query_blocks * kQueryBlock;
      detail::transpose_head_keys(keys, h, d, key_lanes);
      for (std::size_t t = t0; t < std::min(q.rows, t0 + kQueryBlock); ++t)
        detail::attend_query_head(q.row(t) + h * d, key_lanes, values, h, d, scale,
                                  static_cast<std::int64_t>(first_position + t), key_positions,
                                  scores, out.row(t) + h * d);
    }
  }
}

}  // namespace RECURRENT_DEPTH_KERNEL_NAMESPACE
}  // namespace recurrent_depth::cpu
