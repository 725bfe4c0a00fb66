// The same dense-layer kernels compiled at -O2 and at -O3 (kernels_at_level.cpp), timed in one
// process with the calls alternating, so that a shared, noisy machine moves both alike: huginn-
// mini's four layer shapes (Wqkv 3168 x 1056, attention projection 1056 x 1056, fc 7168 x 1056,
// mlp_proj 1056 x 3584) for `blocks` blocks, at M positions (1: decode, 64: a prompt), q4, int8
// and bf16 weights. Prints the median over `rounds` of each level's time for all the blocks.
// Usage: compare_levels M [blocks] [rounds]  (run.sh builds and runs it).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <random>
#include <utility>
#include <vector>

#include "recurrent_depth/backends/cpu/packed_q4.hpp"
#include "recurrent_depth/backends/cpu/packed_weights.hpp"

namespace rd = recurrent_depth;
using rd::ConstMatrixView, rd::MatrixView, rd::cpu::PackedQ4Weights, rd::cpu::PackedWeights;

#define RD_DECLARE(format, Weights)                                                     \
  void linear_##format##_o2(ConstMatrixView<float>, const Weights&, MatrixView<float>); \
  void linear_##format##_o3(ConstMatrixView<float>, const Weights&, MatrixView<float>);
RD_DECLARE(q4, PackedQ4Weights)
RD_DECLARE(int8, PackedWeights<std::int8_t>)
RD_DECLARE(bf16, PackedWeights<rd::bf16>)

int main(int argc, char** argv) {
  const std::size_t positions = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 1;
  const int blocks = argc > 2 ? std::atoi(argv[2]) : (positions > 1 ? 4 : 24);
  const int rounds = argc > 3 ? std::atoi(argv[3]) : 30;
  const std::size_t shapes[4][2] = {{3168, 1056}, {1056, 1056}, {7168, 1056}, {1056, 3584}};
  std::mt19937 rng(1);
  std::normal_distribution<float> normal;
  std::vector<PackedQ4Weights> q4;
  std::vector<PackedWeights<std::int8_t>> int8;
  std::vector<PackedWeights<rd::bf16>> bf16;
  for (int b = 0; b < blocks; ++b)
    for (const auto& shape : shapes) {
      rd::Matrix<float> w(shape[0], shape[1]);
      for (std::size_t r = 0; r < shape[0]; ++r)
        for (std::size_t c = 0; c < shape[1]; ++c) w.row(r)[c] = normal(rng);
      const ConstMatrixView<float> view(w.view());
      q4.push_back(PackedQ4Weights::from_view(view));
      int8.push_back(PackedWeights<std::int8_t>::from_view(view));
      bf16.push_back(PackedWeights<rd::bf16>::from_view(view));
    }
  rd::Matrix<float> x(positions, 3584), y(positions, 7168);
  for (std::size_t m = 0; m < positions; ++m)
    for (std::size_t k = 0; k < 3584; ++k) x.row(m)[k] = normal(rng);
  // Each run: every block's four layers with one format's kernels at one level.
  const auto all_layers = [&](const auto& weights, auto linear) {
    for (int b = 0; b < blocks; ++b)
      for (int i = 0; i < 4; ++i)
        linear(ConstMatrixView<float>(x.view()).middle_cols(0, shapes[i][1]), weights[b * 4 + i],
               y.view().middle_cols(0, shapes[i][0]));
  };
  const std::pair<const char*, std::function<void()>> runs[] = {
      {"q4 -O2", [&] { all_layers(q4, linear_q4_o2); }},
      {"q4 -O3", [&] { all_layers(q4, linear_q4_o3); }},
      {"int8 -O2", [&] { all_layers(int8, linear_int8_o2); }},
      {"int8 -O3", [&] { all_layers(int8, linear_int8_o3); }},
      {"bf16 -O2", [&] { all_layers(bf16, linear_bf16_o2); }},
      {"bf16 -O3", [&] { all_layers(bf16, linear_bf16_o3); }},
  };
  constexpr std::size_t kRuns = std::size(runs);
  std::vector<double> ms[kRuns];
  for (int round = 0; round < rounds; ++round)
    for (std::size_t i = 0; i < kRuns; ++i) {
      const auto start = std::chrono::steady_clock::now();
      runs[i].second();
      ms[i].push_back(
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
              .count());
    }
  std::printf("%zu positions, %d blocks of huginn-mini's 4 layers, median of %d rounds:\n",
              positions, blocks, rounds);
  for (std::size_t i = 0; i < kRuns; ++i) {
    std::sort(ms[i].begin(), ms[i].end());
    std::printf("  %-9s %8.2f ms\n", runs[i].first, ms[i][ms[i].size() / 2]);
  }
}
