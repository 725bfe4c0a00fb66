// The dense-layer kernels of one optimisation level, for compare_levels.cpp: this file is compiled
// twice, at -O2 and at -O3, each time in its own kernel namespace (RECURRENT_DEPTH_KERNEL_NAMESPACE
// o2 or o3), and defines one entry point per weight format and level: linear_q4_o2, linear_q4_o3,
// linear_int8_..., linear_bf16_... (y [M, N] = x [M, K] W^T).
#include "recurrent_depth/backends/cpu/linear.hpp"
#include "recurrent_depth/backends/cpu/linear_int8.hpp"
#include "recurrent_depth/backends/cpu/linear_q4.hpp"

#define RD_LEVEL_NAME2(format, level) linear_##format##_##level
#define RD_LEVEL_NAME(format, level) RD_LEVEL_NAME2(format, level)

namespace rd = recurrent_depth;

void RD_LEVEL_NAME(q4, RECURRENT_DEPTH_KERNEL_NAMESPACE)(rd::ConstMatrixView<float> x,
                                                         const rd::cpu::PackedQ4Weights& w,
                                                         rd::MatrixView<float> y) {
  rd::cpu::linear_q4(x, w, y);
}
void RD_LEVEL_NAME(int8,
                   RECURRENT_DEPTH_KERNEL_NAMESPACE)(rd::ConstMatrixView<float> x,
                                                     const rd::cpu::PackedWeights<std::int8_t>& w,
                                                     rd::MatrixView<float> y) {
  rd::cpu::linear_int8(x, w, y, false);
}
void RD_LEVEL_NAME(bf16,
                   RECURRENT_DEPTH_KERNEL_NAMESPACE)(rd::ConstMatrixView<float> x,
                                                     const rd::cpu::PackedWeights<rd::bf16>& w,
                                                     rd::MatrixView<float> y) {
  rd::cpu::linear(x, w, y, false);
}
