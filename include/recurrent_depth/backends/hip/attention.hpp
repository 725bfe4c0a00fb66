// Causal multi-head attention of the HIP backend over a KV cache slot in device memory:
// q [T, heads*head_dim] for positions first..first+T-1, keys and values [N, heads*head_dim] of
// float or bf16 (the cache's KvFormat, widened to float as they are read); key j
// sits at position key_positions[j] (or j when none are given; device memory) and is visible to
// queries at that position or later. A query that sees no key gets zeros. Both kernels use an
// online softmax (float32, running maximum and sum, accumulators rescaled when the maximum grows),
// as the CPU kernels' definition (cpu::scalar::causal_attention) within float rounding.
//   attention_decode:  one block per (query, head), for decode (T = 1) and few queries: wavefronts
//                      score keys (lanes split head_dim, coalesced key rows), kKeyTile at a time,
//                      then thread groups of head_dim threads sum the weighted value rows.
//   attention_prefill: one block per (kPrefillQueries queries, head): query, key and value tiles
//                      in shared memory, the score tile computed once for all queries of the tile;
//                      head_dim up to kPrefillMaxHeadDim (the shared memory budget).
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>

#include "../../core/error.hpp"
#include "../../core/tensor.hpp"
#include "device_math.hpp"
#include "kernel_launch.hpp"

namespace recurrent_depth::hip {

inline constexpr unsigned kAttentionThreads = 256;
inline constexpr std::size_t kMaxHeadDim = 256;     // decode kernel (its shared query)
inline constexpr std::size_t kKeyTile = 64;         // keys scored per step of the decode kernel
inline constexpr std::size_t kPrefillQueries = 16;  // queries per block of the prefill kernel
inline constexpr std::size_t kPrefillKeys = 32;     // keys per step of the prefill kernel
inline constexpr std::size_t kPrefillMaxHeadDim = 128;
inline constexpr std::size_t kPrefillMinQueries = 8;  // from here on the prefill kernel is used

namespace kernels {

// Where key j sits.
__device__ inline long key_position(const std::int32_t* positions, std::size_t j) {
  return positions ? long(positions[j]) : long(j);
}

// exp(s - top), 0 for a masked score (-inf).
__device__ inline float shifted_exp(float s, float top) {
  return __builtin_isinf(s) ? 0.0f : expf(s - top);
}

// Grid: (queries, heads). Key: float or bf16.
template <class Key>
__global__ void attention_decode(const float* q, std::size_t q_stride, const Key* keys,
                                 std::size_t k_stride, const Key* values, std::size_t v_stride,
                                 std::size_t key_count, const std::int32_t* positions,
                                 std::size_t head_dim, std::size_t first_position, float* out,
                                 std::size_t out_stride) {
  __shared__ float query[kMaxHeadDim];
  __shared__ float p[kKeyTile];
  __shared__ float partial[kAttentionThreads];
  const std::size_t t = blockIdx.x, h = blockIdx.y, column = h * head_dim;
  const int lane = int(threadIdx.x) % warpSize, warp = int(threadIdx.x) / warpSize;
  const int warps = int(blockDim.x) / warpSize;
  const int groups = int(blockDim.x / head_dim);  // value groups of head_dim threads
  const int group = int(threadIdx.x / head_dim), i = int(threadIdx.x % head_dim);
  const float scale = 1.0f / sqrtf(float(head_dim));
  const long limit = long(first_position + t);
  for (std::size_t e = threadIdx.x; e < head_dim; e += blockDim.x)
    query[e] = q[t * q_stride + column + e];
  float top = -__builtin_inff(), total = 0.0f, acc = 0.0f;
  for (std::size_t j0 = 0; j0 < key_count; j0 += kKeyTile) {
    const int n = int(key_count - j0 < kKeyTile ? key_count - j0 : kKeyTile);
    __syncthreads();  // the query is stored; the previous tile's p is read
    // Every wavefront takes part in as many rounds as the others (keys past n score nothing):
    // block-uniform control flow around the shuffles.
    for (int first = 0; first < n; first += warps) {
      const int jj = first + warp;
      float s = 0.0f;
      if (jj < n) {
        const Key* key = keys + (j0 + std::size_t(jj)) * k_stride + column;
        for (std::size_t e = std::size_t(lane); e < head_dim; e += std::size_t(warpSize))
          s += query[e] * device::widen(key[e]);
      }
      s = device::warp_reduce(s, device::Sum{});
      if (lane == 0 && jj < n)
        p[jj] =
            key_position(positions, j0 + std::size_t(jj)) <= limit ? s * scale : -__builtin_inff();
    }
    __syncthreads();
    float tile_top = -__builtin_inff();
    for (int jj = 0; jj < n; ++jj) tile_top = fmaxf(tile_top, p[jj]);
    if (__builtin_isinf(tile_top)) continue;  // all masked (the same for every thread)
    const float new_top = fmaxf(top, tile_top);
    const float rescale = __builtin_isinf(top) ? 0.0f : expf(top - new_top);
    __syncthreads();  // every thread has read the scores
    if (int(threadIdx.x) < n) p[threadIdx.x] = shifted_exp(p[threadIdx.x], new_top);
    __syncthreads();
    float tile_total = 0.0f;
    for (int jj = 0; jj < n; ++jj) tile_total += p[jj];
    total = total * rescale + tile_total;
    top = new_top;
    acc *= rescale;
    if (group < groups)
      for (int jj = group; jj < n; jj += groups)
        acc += p[jj] *
               device::widen(values[(j0 + std::size_t(jj)) * v_stride + column + std::size_t(i)]);
  }
  __syncthreads();
  if (group < groups) partial[threadIdx.x] = acc;
  __syncthreads();
  for (std::size_t e = threadIdx.x; e < head_dim; e += blockDim.x) {
    float sum = 0.0f;
    for (int g = 0; g < groups; ++g) sum += partial[std::size_t(g) * head_dim + e];
    out[t * out_stride + column + e] = total > 0.0f ? sum / total : 0.0f;
  }
}

// Grid: (query tiles, heads). Key: float or bf16.
template <class Key>
__global__ void attention_prefill(const float* q, std::size_t q_stride, std::size_t query_count,
                                  const Key* keys, std::size_t k_stride, const Key* values,
                                  std::size_t v_stride, std::size_t key_count,
                                  const std::int32_t* positions, std::size_t head_dim,
                                  std::size_t first_position, float* out, std::size_t out_stride) {
  constexpr int kQueries = int(kPrefillQueries), kKeys = int(kPrefillKeys);
  constexpr int kPerThread = int(kPrefillQueries * kPrefillMaxHeadDim / kAttentionThreads);
  __shared__ float query_tile[kQueries][kPrefillMaxHeadDim];
  __shared__ float key_tile[kKeys][kPrefillMaxHeadDim + 1];  // +1: keys in different banks
  __shared__ float value_tile[kKeys][kPrefillMaxHeadDim];
  __shared__ float p[kQueries][kKeys + 1];
  __shared__ float top[kQueries], total[kQueries], rescale[kQueries];
  const std::size_t t0 = blockIdx.x * kPrefillQueries, column = blockIdx.y * head_dim;
  const int d = int(head_dim), tile_elements = kQueries * d;
  const float scale = 1.0f / sqrtf(float(head_dim));
  for (int e = int(threadIdx.x); e < tile_elements; e += int(blockDim.x)) {
    const std::size_t t = t0 + std::size_t(e / d);
    query_tile[e / d][e % d] =
        t < query_count ? q[t * q_stride + column + std::size_t(e % d)] : 0.0f;
  }
  if (threadIdx.x < kPrefillQueries) {
    top[threadIdx.x] = -__builtin_inff();
    total[threadIdx.x] = 0.0f;
  }
  float acc[kPerThread] = {};  // output element threadIdx.x + u * blockDim.x of the tile
  for (std::size_t j0 = 0; j0 < key_count; j0 += kPrefillKeys) {
    const int n = int(key_count - j0 < kPrefillKeys ? key_count - j0 : kPrefillKeys);
    __syncthreads();  // the previous tile is used up
    for (int e = int(threadIdx.x); e < n * d; e += int(blockDim.x)) {
      const std::size_t j = j0 + std::size_t(e / d), c = column + std::size_t(e % d);
      key_tile[e / d][e % d] = device::widen(keys[j * k_stride + c]);
      value_tile[e / d][e % d] = device::widen(values[j * v_stride + c]);
    }
    __syncthreads();
    for (int e = int(threadIdx.x); e < kQueries * kKeys; e += int(blockDim.x)) {
      const int r = e / kKeys, jj = e % kKeys;
      const std::size_t t = t0 + std::size_t(r);
      float s = -__builtin_inff();
      if (jj < n && t < query_count &&
          key_position(positions, j0 + std::size_t(jj)) <= long(first_position + t)) {
        s = 0.0f;
        for (int i = 0; i < d; ++i) s += query_tile[r][i] * key_tile[jj][i];
        s *= scale;
      }
      p[r][jj] = s;
    }
    __syncthreads();
    if (threadIdx.x < kPrefillQueries) {  // the running maximum of each query
      const int r = int(threadIdx.x);
      float tile_top = -__builtin_inff();
      for (int jj = 0; jj < n; ++jj) tile_top = fmaxf(tile_top, p[r][jj]);
      const float new_top = fmaxf(top[r], tile_top);
      rescale[r] = __builtin_isinf(top[r]) ? 0.0f : expf(top[r] - new_top);
      top[r] = new_top;
    }
    __syncthreads();
    for (int e = int(threadIdx.x); e < kQueries * kKeys; e += int(blockDim.x))
      p[e / kKeys][e % kKeys] = shifted_exp(p[e / kKeys][e % kKeys], top[e / kKeys]);
    __syncthreads();
    if (threadIdx.x < kPrefillQueries) {
      float tile_total = 0.0f;
      for (int jj = 0; jj < n; ++jj) tile_total += p[threadIdx.x][jj];
      total[threadIdx.x] = total[threadIdx.x] * rescale[threadIdx.x] + tile_total;
    }
    for (int u = 0; u < kPerThread; ++u) {
      const int e = int(threadIdx.x) + u * int(blockDim.x);
      if (e >= tile_elements) break;
      const int r = e / d, i = e % d;
      float sum = acc[u] * rescale[r];
      for (int jj = 0; jj < n; ++jj) sum += p[r][jj] * value_tile[jj][i];
      acc[u] = sum;
    }
  }
  __syncthreads();
  for (int u = 0; u < kPerThread; ++u) {
    const int e = int(threadIdx.x) + u * int(blockDim.x);
    if (e >= tile_elements) break;
    const std::size_t t = t0 + std::size_t(e / d);
    if (t < query_count)
      out[t * out_stride + column + std::size_t(e % d)] =
          total[e / d] > 0.0f ? acc[u] / total[e / d] : 0.0f;
  }
}

}  // namespace kernels

namespace detail {
template <class Key>
void check_attention_shapes(ConstMatrixView<float> q, ConstMatrixView<Key> keys,
                            ConstMatrixView<Key> values, std::size_t heads, std::size_t head_dim,
                            MatrixView<float> out, std::span<const std::int32_t> key_positions) {
  const std::size_t width = heads * head_dim;
  require(q.cols == width && keys.cols == width && values.cols == width && out.cols == width &&
              values.rows == keys.rows && out.rows == q.rows &&
              (key_positions.empty() || key_positions.size() == keys.rows),
          "hip::causal_attention: shapes q [", q.rows, ", ", q.cols, "], keys [", keys.rows, ", ",
          keys.cols, "], values [", values.rows, ", ", values.cols, "], out [", out.rows, ", ",
          out.cols, "], ", key_positions.size(), " key positions for ", heads, " heads of ",
          head_dim);
  require(head_dim > 0 && head_dim <= kMaxHeadDim, "hip::causal_attention: head_dim ", head_dim,
          " outside 1..", kMaxHeadDim);
}
}  // namespace detail

template <class Key>
void attention_decode(ConstMatrixView<float> q, ConstMatrixView<Key> keys,
                      ConstMatrixView<Key> values, std::size_t heads, std::size_t head_dim,
                      std::size_t first_position, MatrixView<float> out,
                      std::span<const std::int32_t> key_positions = {}) {
  detail::check_attention_shapes(q, keys, values, heads, head_dim, out, key_positions);
  launch("attention_decode", kernels::attention_decode<Key>,
         dim3(unsigned(q.rows), unsigned(heads)), dim3(kAttentionThreads), q.data, q.stride,
         keys.data, keys.stride, values.data, values.stride, keys.rows,
         key_positions.empty() ? nullptr : key_positions.data(), head_dim, first_position, out.data,
         out.stride);
}

template <class Key>
void attention_prefill(ConstMatrixView<float> q, ConstMatrixView<Key> keys,
                       ConstMatrixView<Key> values, std::size_t heads, std::size_t head_dim,
                       std::size_t first_position, MatrixView<float> out,
                       std::span<const std::int32_t> key_positions = {}) {
  detail::check_attention_shapes(q, keys, values, heads, head_dim, out, key_positions);
  require(head_dim <= kPrefillMaxHeadDim, "hip::attention_prefill: head_dim ", head_dim, " above ",
          kPrefillMaxHeadDim);
  launch("attention_prefill", kernels::attention_prefill<Key>,
         dim3(blocks_for(q.rows, kPrefillQueries), unsigned(heads)), dim3(kAttentionThreads),
         q.data, q.stride, q.rows, keys.data, keys.stride, values.data, values.stride, keys.rows,
         key_positions.empty() ? nullptr : key_positions.data(), head_dim, first_position, out.data,
         out.stride);
}

// The prefill kernel from kPrefillMinQueries queries on (head_dim permitting), else decode.
template <class Key>
void causal_attention(ConstMatrixView<float> q, ConstMatrixView<Key> keys,
                      ConstMatrixView<Key> values, std::size_t heads, std::size_t head_dim,
                      std::size_t first_position, MatrixView<float> out,
                      std::span<const std::int32_t> key_positions = {}) {
  if (q.rows >= kPrefillMinQueries && head_dim <= kPrefillMaxHeadDim)
    attention_prefill(q, keys, values, heads, head_dim, first_position, out, key_positions);
  else
    attention_decode(q, keys, values, heads, head_dim, first_position, out, key_positions);
}

}  // namespace recurrent_depth::hip
