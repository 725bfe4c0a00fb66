// Causal multi-head attention of the CPU backend over a KV cache slot: q [T, heads*head_dim] for
// positions first..first+T-1, keys and values [N, heads*head_dim] of float or bf16 (the cache's
// KvFormat, widened to float as they are loaded); key j sits at position
// key_positions[j] (or j when none are given) and is visible to queries at that position or later.
// Softmax in float32 with the maximum subtracted. Several queries (prefill): threads split
// (head, block of 32 queries) tasks, head by head; a thread puts the keys its tasks of a head see
// in key-lane order once (16 x 16 transposes on AVX-512), and then scores 4 queries at a time
// against kFloatLanes keys per instruction (broadcast query elements, no horizontal sums; every key
// and value batch loaded once for the 4). One query (decode): key-major, so that keys and values
// stream contiguously from memory, two streams per thread with software prefetch; threads split
// the keys, each keeps a partial softmax per head (its maximum, sum and weighted values), and the
// partials are merged at the end (as flash-decoding does).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <vector>

#include "../../core/dtype.hpp"
#include "../../core/tensor.hpp"
#include "../../core/threads.hpp"
#include "simd.hpp"
#include "tile_schedule.hpp"

namespace recurrent_depth::cpu {
inline namespace RECURRENT_DEPTH_KERNEL_NAMESPACE {

namespace detail {

template <class Key>
float dot(const float* a, const Key* b, std::size_t n) {
  FloatBatch acc(0.0f);
  std::size_t i = 0;
  for (; i + kFloatLanes <= n; i += kFloatLanes)
    acc = xsimd::fma(load_floats(a + i), load_floats(b + i), acc);
  float sum = xsimd::hadd(acc);
  for (; i < n; ++i) sum += a[i] * to_float(b[i]);
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

// The largest of s[0..n), vectorised (-infinity when n is 0). A chain of scalar maxima would
// wait 4 cycles per score.
inline float max_of(const float* s, std::size_t n) {
  FloatBatch largest(-std::numeric_limits<float>::infinity());
  std::size_t i = 0;
  for (; i + kFloatLanes <= n; i += kFloatLanes) largest = xsimd::max(largest, load_floats(s + i));
  float result = max_lane(largest);
  for (; i < n; ++i) result = std::max(result, s[i]);
  return result;
}

// y += alpha * x
template <class Value>
void axpy(float alpha, const Value* x, float* y, std::size_t n) {
  const FloatBatch a(alpha);
  std::size_t i = 0;
  for (; i + kFloatLanes <= n; i += kFloatLanes)
    xsimd::fma(a, load_floats(x + i), load_floats(y + i)).store_unaligned(y + i);
  for (; i < n; ++i) y[i] += alpha * to_float(x[i]);
}

// Whether key j (at position key_positions[j], or j when none are given) is visible from a query
// at `position`.
inline bool key_visible(std::span<const std::int32_t> key_positions, std::size_t j,
                        std::int64_t position) {
  return (key_positions.empty() ? static_cast<std::int64_t>(j) : key_positions[j]) <= position;
}

// 1 + the last key that a query at `position` sees (0 when none).
inline std::size_t keys_seen(std::span<const std::int32_t> key_positions, std::size_t keys,
                             std::int64_t position) {
  if (key_positions.empty())
    return std::min(keys, static_cast<std::size_t>(std::max<std::int64_t>(position + 1, 0)));
  std::size_t seen = keys;
  while (seen > 0 && !key_visible(key_positions, seen - 1, position)) --seen;
  return seen;
}

// The partial softmax of one thread over its keys for one query: per head the maximum score,
// the sum of exp(score - maximum) and the values weighted by those exponentials.
struct PartialSoftmax {
  std::vector<float> maximum, total, weighted;  // [heads], [heads], [heads * d]
};

// Prefetches the lines of n numbers from p (into all cache levels).
template <class T>
void prefetch_numbers(const T* p, std::size_t n) {
  for (std::size_t byte = 0; byte < n * sizeof(T); byte += 64)
    __builtin_prefetch(reinterpret_cast<const char*>(p) + byte);
}

// Partial softmax of query q over keys [first, last) (those at positions <= position). The
// visible keys run as two streams side by side, their first and their second half, and each
// head of a key and value is prefetched kPrefetchBytes or more ahead in its stream: one
// stream from memory keeps a core at about half of its read bandwidth (tile_schedule.hpp).
// Decode over 256 keys of huginn-mini's width: 20-25% less time for the attention layer, Wqkv and
// its projection included (the attention itself about 2x faster).
template <class Key>
void attend_keys(const float* q, ConstMatrixView<Key> keys, ConstMatrixView<Key> values,
                 std::size_t heads, std::size_t d, float scale, std::int64_t position,
                 std::span<const std::int32_t> key_positions, std::size_t first, std::size_t last,
                 PartialSoftmax& part) {
  part.maximum.assign(heads, -std::numeric_limits<float>::infinity());
  part.total.assign(heads, 0.0f);
  part.weighted.assign(heads * d, 0.0f);
  thread_local std::vector<std::uint32_t> visible;
  thread_local std::vector<float> scores;  // head-major: scores[h * n + i] for key visible[i]
  visible.clear();
  for (std::size_t j = first; j < last; ++j)
    if (key_visible(key_positions, j, position)) visible.push_back(static_cast<std::uint32_t>(j));
  const std::size_t n = visible.size();
  if (n == 0) return;
  scores.resize(heads * n);
  const std::size_t row_bytes = heads * d * sizeof(Key);
  const std::size_t ahead = (kPrefetchBytes + row_bytes - 1) / row_bytes;  // keys
  const std::size_t half = (n + 1) / 2;
  // visit(i, next): the visible keys i of both streams, next being the key to prefetch.
  const auto both_streams = [&](auto&& visit) {
    for (std::size_t i = 0; i < half; ++i) {
      visit(i, visible[std::min(i + ahead, n - 1)]);
      if (i + half < n) visit(i + half, visible[std::min(i + half + ahead, n - 1)]);
    }
  };
  both_streams([&](std::size_t i, std::size_t next) {
    const Key* key = keys.row(visible[i]);
    for (std::size_t h = 0; h < heads; ++h) {
      prefetch_numbers(keys.row(next) + h * d, d);
      const float score = dot(q + h * d, key + h * d, d) * scale;
      scores[h * n + i] = score;
      part.maximum[h] = std::max(part.maximum[h], score);
    }
  });
  for (std::size_t h = 0; h < heads; ++h)
    part.total[h] = exp_shifted(scores.data() + h * n, n, part.maximum[h]);
  both_streams([&](std::size_t i, std::size_t next) {
    const Key* value = values.row(visible[i]);
    for (std::size_t h = 0; h < heads; ++h) {
      prefetch_numbers(values.row(next) + h * d, d);
      axpy(scores[h * n + i], value + h * d, part.weighted.data() + h * d, d);
    }
  });
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

template <class Key>
void attend_one_query(const float* q, ConstMatrixView<Key> keys, ConstMatrixView<Key> values,
                      std::size_t heads, std::size_t d, float scale, std::int64_t position,
                      std::span<const std::int32_t> key_positions, float* out) {
  const bool threaded = keys.rows * heads * d > 16384;
  thread_local std::vector<PartialSoftmax> partials;
  std::vector<PartialSoftmax>& parts = partials;  // the caller's buffers, shared by the team
  parts.resize(threaded ? static_cast<std::size_t>(max_threads()) : 1);
  for (PartialSoftmax& part : parts) {  // empty until a thread fills it
    part.maximum.clear();
    part.total.clear();
  }
  // The threads split the keys up to the last one visible (a slot may hold later entries).
  const std::size_t seen = keys_seen(key_positions, keys.rows, position);
#pragma omp parallel if (threaded)
  {
    const auto [first, last] = thread_share(seen);
    attend_keys(q, keys, values, heads, d, scale, position, key_positions, first, last,
                parts[static_cast<std::size_t>(thread_index())]);
  }
  merge_partials(parts, heads, d, out);
}

// Head h of keys [N, heads * d] in key-lane order, for its first n keys: for each group of
// kFloatLanes keys, element i of the head for each key of the group (out[(g * d + i) * kFloatLanes
// + lane] = keys[g * kFloatLanes + lane][h * d + i]), keys past n zero. The groups before
// `from_group` are already in out (the same head's keys, transposed for fewer queries).
template <class Key>
void transpose_head_keys(ConstMatrixView<Key> keys, std::size_t h, std::size_t d, std::size_t n,
                         std::size_t from_group, std::vector<float>& out) {
  const std::size_t groups = (n + kFloatLanes - 1) / kFloatLanes;
  out.resize(groups * d * kFloatLanes);
  for (std::size_t g = from_group; g < groups; ++g) {
    float* group = out.data() + g * d * kFloatLanes;
    const std::size_t first = g * kFloatLanes, count = std::min(kFloatLanes, n - first);
    std::size_t i = 0;
#if defined(__AVX512F__)
    if constexpr (kFloatLanes == 16) {
      // 16 elements of the 16 keys at a time: one 16 x 16 transpose.
      for (; i + 16 <= d; i += 16) {
        __m512i rows[16];
        RECURRENT_DEPTH_UNROLL
        for (std::size_t j = 0; j < 16; ++j)
          rows[j] = j < count ? _mm512_castps_si512(load_floats(keys.row(first + j) + h * d + i))
                              : _mm512_setzero_si512();
        store_transposed(rows, reinterpret_cast<std::uint8_t*>(group + i * 16));
      }
    }
#endif
    std::fill(group + i * kFloatLanes, group + d * kFloatLanes, 0.0f);
    for (std::size_t j = 0; j < count; ++j) {
      const Key* key = keys.row(first + j) + h * d;
      for (std::size_t e = i; e < d; ++e) group[e * kFloatLanes + j] = to_float(key[e]);
    }
  }
}

// Q queries' heads (q_heads[m], d values each, at positions[m]) over the keys in key-lane
// order: scores kFloatLanes keys at a time by broadcasting the queries' elements (no horizontal
// sums; each key batch loaded once for all Q queries), the keys after each query's position
// masked, softmax, and the weighted values written to outs[m] (zero weights, so zeros, when no
// key is visible).
// Keys past the last one any of the queries sees are not scored.
template <std::size_t Q, class Value>
void attend_queries_head(const float* const (&q_heads)[Q], const std::int64_t (&positions)[Q],
                         const std::vector<float>& key_lanes, ConstMatrixView<Value> values,
                         std::size_t h, std::size_t d, float scale,
                         std::span<const std::int32_t> key_positions, std::vector<float>& scores,
                         float* const (&outs)[Q]) {
  std::size_t n = 0;
  for (std::size_t m = 0; m < Q; ++m)
    n = std::max(n, keys_seen(key_positions, values.rows, positions[m]));
  const std::size_t groups = (n + kFloatLanes - 1) / kFloatLanes, stride = groups * kFloatLanes;
  scores.resize(Q * stride);
  // G groups of keys at once for all Q queries: Q x G independent FMA chains.
  const auto score_groups = [&]<std::size_t G>(std::size_t g0) {
    FloatBatch acc[Q][G];
    RECURRENT_DEPTH_UNROLL
    for (std::size_t m = 0; m < Q; ++m) {
      RECURRENT_DEPTH_UNROLL
      for (std::size_t k = 0; k < G; ++k) acc[m][k] = FloatBatch(0.0f);
    }
    const float* lanes = key_lanes.data() + g0 * d * kFloatLanes;
    for (std::size_t i = 0; i < d; ++i) {
      FloatBatch keys[G];
      RECURRENT_DEPTH_UNROLL
      for (std::size_t k = 0; k < G; ++k) keys[k] = load_floats(lanes + (k * d + i) * kFloatLanes);
      RECURRENT_DEPTH_UNROLL
      for (std::size_t m = 0; m < Q; ++m) {
        const FloatBatch qi(q_heads[m][i]);
        RECURRENT_DEPTH_UNROLL
        for (std::size_t k = 0; k < G; ++k) acc[m][k] = xsimd::fma(qi, keys[k], acc[m][k]);
      }
    }
    RECURRENT_DEPTH_UNROLL
    for (std::size_t m = 0; m < Q; ++m) {
      RECURRENT_DEPTH_UNROLL
      for (std::size_t k = 0; k < G; ++k)
        (acc[m][k] * FloatBatch(scale))
            .store_unaligned(scores.data() + m * stride + (g0 + k) * kFloatLanes);
    }
  };
  constexpr std::size_t kGroups = 4;
  std::size_t g = 0;
  for (; g + kGroups <= groups; g += kGroups) score_groups.template operator()<kGroups>(g);
  for (; g < groups; ++g) score_groups.template operator()<1>(g);
  // Softmax per query; the masked keys weigh 0, and every key when none is visible.
  for (std::size_t m = 0; m < Q; ++m) {
    float* row = scores.data() + m * stride;
    constexpr float kHidden = -std::numeric_limits<float>::infinity();  // its exponential is 0
    bool any = false;
    if (key_positions.empty()) {
      const std::size_t seen = keys_seen(key_positions, n, positions[m]);
      std::fill(row + seen, row + n, kHidden);
      any = seen > 0;
    } else {
      for (std::size_t j = 0; j < n; ++j) {
        const bool visible = key_visible(key_positions, j, positions[m]);
        if (!visible) row[j] = kHidden;
        any = any || visible;
      }
    }
    if (!any) {
      std::fill(row, row + n, 0.0f);
      continue;
    }
    const float inverse_total = 1.0f / exp_shifted(row, n, max_of(row, n));
    for (std::size_t j = 0; j < n; ++j) row[j] *= inverse_total;
  }
  // outs = weights x values, B batches of the head at a time for all Q queries held in registers
  // across all keys (the rest of the head, under a batch, element by element).
  const auto add_values = [&]<std::size_t B>(std::size_t c0) {
    FloatBatch acc[Q][B];
    RECURRENT_DEPTH_UNROLL
    for (std::size_t m = 0; m < Q; ++m) {
      RECURRENT_DEPTH_UNROLL
      for (std::size_t k = 0; k < B; ++k) acc[m][k] = FloatBatch(0.0f);
    }
    for (std::size_t j = 0; j < n; ++j) {
      const Value* v = values.row(j) + h * d + c0;
      FloatBatch value[B];
      RECURRENT_DEPTH_UNROLL
      for (std::size_t k = 0; k < B; ++k) value[k] = load_floats(v + k * kFloatLanes);
      RECURRENT_DEPTH_UNROLL
      for (std::size_t m = 0; m < Q; ++m) {
        const FloatBatch weight(scores[m * stride + j]);
        RECURRENT_DEPTH_UNROLL
        for (std::size_t k = 0; k < B; ++k) acc[m][k] = xsimd::fma(weight, value[k], acc[m][k]);
      }
    }
    RECURRENT_DEPTH_UNROLL
    for (std::size_t m = 0; m < Q; ++m) {
      RECURRENT_DEPTH_UNROLL
      for (std::size_t k = 0; k < B; ++k) acc[m][k].store_unaligned(outs[m] + c0 + k * kFloatLanes);
    }
  };
  constexpr std::size_t kBatches = 4;
  const std::size_t whole = d / kFloatLanes * kFloatLanes;
  std::size_t c0 = 0;
  for (; c0 + kBatches * kFloatLanes <= whole; c0 += kBatches * kFloatLanes)
    add_values.template operator()<kBatches>(c0);
  switch ((whole - c0) / kFloatLanes) {  // fewer than kBatches left
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
  for (std::size_t m = 0; m < Q; ++m) {
    std::fill(outs[m] + whole, outs[m] + d, 0.0f);
    for (std::size_t j = 0; j < n && whole < d; ++j) {
      const Value* v = values.row(j) + h * d;
      for (std::size_t i = whole; i < d; ++i) outs[m][i] += scores[m * stride + j] * to_float(v[i]);
    }
  }
}

}  // namespace detail

// Key: float or bf16.
template <class Key>
void causal_attention(ConstMatrixView<float> q, ConstMatrixView<Key> keys,
                      ConstMatrixView<Key> values, std::size_t heads, std::size_t head_dim,
                      std::size_t first_position, MatrixView<float> out,
                      std::span<const std::int32_t> key_positions = {}) {
  const std::size_t d = head_dim;
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  if (q.rows == 1) {
    detail::attend_one_query(q.row(0), keys, values, heads, d, scale,
                             static_cast<std::int64_t>(first_position), key_positions, out.row(0));
    return;
  }
  // Tasks: one head for a block of queries, head by head, so that a thread's tasks of one head
  // follow each other: each transposes the keys its queries see, past those that the thread's
  // previous task of the head transposed.
  constexpr std::size_t kQueryBlock = 32;
  const std::size_t query_blocks = (q.rows + kQueryBlock - 1) / kQueryBlock;
  const auto tasks = static_cast<std::ptrdiff_t>(heads * query_blocks);
#pragma omp parallel if (keys.rows * d * q.rows * heads > 16384)
  {
    std::vector<float> key_lanes, scores;
    std::size_t lanes_head = heads, lanes_keys = 0;  // what key_lanes holds
#pragma omp for schedule(static)
    for (std::ptrdiff_t task = 0; task < tasks; ++task) {
      const std::size_t h = static_cast<std::size_t>(task) / query_blocks;
      const std::size_t t0 = static_cast<std::size_t>(task) % query_blocks * kQueryBlock;
      const std::size_t t1 = std::min(q.rows, t0 + kQueryBlock);
      // A later position sees every key an earlier one sees: the block's last query sees most.
      const std::size_t seen = detail::keys_seen(
          key_positions, keys.rows, static_cast<std::int64_t>(first_position + t1 - 1));
      if (h != lanes_head || seen > lanes_keys) {
        const std::size_t done = h == lanes_head ? lanes_keys / kFloatLanes : 0;
        detail::transpose_head_keys(keys, h, d, seen, done, key_lanes);
        lanes_head = h;
        lanes_keys = seen;
      }
      const auto attend = [&]<std::size_t Q>(std::size_t t) {
        const float* q_heads[Q];
        std::int64_t positions[Q];
        float* outs[Q];
        for (std::size_t m = 0; m < Q; ++m) {
          q_heads[m] = q.row(t + m) + h * d;
          positions[m] = static_cast<std::int64_t>(first_position + t + m);
          outs[m] = out.row(t + m) + h * d;
        }
        detail::attend_queries_head<Q>(q_heads, positions, key_lanes, values, h, d, scale,
                                       key_positions, scores, outs);
      };
      std::size_t t = t0;
      for (; t + 4 <= t1; t += 4) attend.template operator()<4>(t);
      for (; t < t1; ++t) attend.template operator()<1>(t);
    }
  }
}

}  // namespace RECURRENT_DEPTH_KERNEL_NAMESPACE
}  // namespace recurrent_depth::cpu
