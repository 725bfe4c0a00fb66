// The machine peaks the bench quotes (machine_probes.hpp, through every runnable kernel table)
// against second loops written here another way: GCC vector extensions or the plain intrinsics
// compiled for the table's extensions, another number of chains, another clock (omp_get_wtime).
// Each pair is measured alternately, 3 rounds, the best of each kept, and must agree within 15%:
// a probe that reads low (too few chains, a narrower batch, spilled registers, one thread) or
// high (work the compiler dropped) fails. The AMX tile probes (4 accumulator tiles, intrinsics)
// meet one asm block of 6 tile products into 6 accumulators, with the tile layout built here.
#include <omp.h>
#include <catch2/catch.hpp>

#include <algorithm>
#include <string>

#include "kernel_test_support.hpp"
#include "recurrent_depth/backends/cpu/kernel_dispatch.hpp"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#endif

using namespace recurrent_depth;
using namespace recurrent_depth::kernel_test;

namespace {

constexpr int kPasses = 24;
constexpr long kSteps = 1 << 14;

// Rate in 1e9 per second of the team: per thread ops_per_pass / its fastest of kPasses passes.
double second_loop_rate(double ops_per_pass, void (*pass)(int thread)) {
  double rate = 0.0;
#pragma omp parallel reduction(+ : rate)
  {
    double fastest = 1e30;
    for (int i = 0; i < kPasses; ++i) {
#pragma omp barrier
      const double start = omp_get_wtime();
      pass(omp_get_thread_num());
      fastest = std::min(fastest, omp_get_wtime() - start);
    }
    rate += ops_per_pass / fastest / 1e9;
  }
  return rate;
}

#if defined(__x86_64__) && defined(__GNUC__)
typedef float Floats16 __attribute__((vector_size(64)));
typedef float Floats8 __attribute__((vector_size(32)));
typedef float Floats4 __attribute__((vector_size(16)));

volatile float float_sink;
volatile int int_sink;

// Chains of x = x * a + b in vectors of floats (contracted to FMAs where the caller's target has
// them: GNU C++ contracts by default); 2 operations per lane per step. Always inlined, so that it
// is compiled for its caller's target.
template <class Vector, int Chains>
__attribute__((always_inline)) inline float multiply_add_chains(int thread) {
  Vector acc[Chains];
  for (int k = 0; k < Chains; ++k) acc[k] = Vector{} + (0.5f + 1e-3f * float(k + thread));
  const Vector a = Vector{} + 0.9999f, b = Vector{} + 1e-6f;
  for (long s = 0; s < kSteps; ++s)
    for (int k = 0; k < Chains; ++k) acc[k] = acc[k] * a + b;
  float total = 0.0f;
  for (int k = 0; k < Chains; ++k) total += acc[k][0];
  return total;
}

void multiply_add_pass_sse(int thread) {
  float_sink = multiply_add_chains<Floats4, 12>(thread);
}

// The loops with extensions beyond plain x86-64 sit in namespaces named after the kernel variant
// whose extensions they use, as the baseline-instruction check expects (they run only where the
// table under test runs, or, for vdpbf16ps, where the CPU says it has it).
namespace x86_64_v3 {
__attribute__((target("avx2,fma"))) void fma_pass(int thread) {
  float_sink = multiply_add_chains<Floats8, 10>(thread);
}
}  // namespace x86_64_v3

namespace x86_64_v4_vnni {
__attribute__((target("avx512f,fma"))) void fma_pass(int thread) {
  float_sink = multiply_add_chains<Floats16, 12>(thread);
}

// One asm block of 12 vpdpbusd per step, each accumulator tied to its result (GCC 12's intrinsic
// copies every accumulator to another register and back, which reads about 30% low).
__attribute__((target("avx512f,avx512vnni"))) void int8_dot_pass(int thread) {
  __m512i a0 = _mm512_set1_epi32(thread), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0,
          a7 = a0, a8 = a0, a9 = a0, a10 = a0, a11 = a0;
  const __m512i u = _mm512_set1_epi8(5), s = _mm512_set1_epi8(-3);
  for (long step = 0; step < kSteps; ++step)
    asm("vpdpbusd %12, %13, %0\n\tvpdpbusd %12, %13, %1\n\tvpdpbusd %12, %13, %2\n\t"
        "vpdpbusd %12, %13, %3\n\tvpdpbusd %12, %13, %4\n\tvpdpbusd %12, %13, %5\n\t"
        "vpdpbusd %12, %13, %6\n\tvpdpbusd %12, %13, %7\n\tvpdpbusd %12, %13, %8\n\t"
        "vpdpbusd %12, %13, %9\n\tvpdpbusd %12, %13, %10\n\tvpdpbusd %12, %13, %11"
        : "+v"(a0), "+v"(a1), "+v"(a2), "+v"(a3), "+v"(a4), "+v"(a5), "+v"(a6), "+v"(a7), "+v"(a8),
          "+v"(a9), "+v"(a10), "+v"(a11)
        : "v"(s), "v"(u));
  const __m512i sums[] = {a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11};
  int total = 0;
  for (const __m512i& sum : sums) total += _mm512_cvtsi512_si32(sum);
  int_sink = total;
}

__attribute__((target("avx512f,avx512bf16"))) void bf16_vector_dot_pass(int thread) {
  __m512 acc[12];
  for (int k = 0; k < 12; ++k) acc[k] = _mm512_set1_ps(1e-3f * float(k + thread));
  const __m512bh a = _mm512_cvtne2ps_pbh(_mm512_set1_ps(0.5f), _mm512_set1_ps(0.25f));
  const __m512bh b = _mm512_cvtne2ps_pbh(_mm512_set1_ps(1e-3f), _mm512_set1_ps(-2e-3f));
  for (long step = 0; step < kSteps; ++step)
    for (int k = 0; k < 12; ++k) acc[k] = _mm512_dpbf16_ps(acc[k], a, b);
  float total = 0.0f;
  for (int k = 0; k < 12; ++k) total += _mm512_cvtss_f32(acc[k]);
  float_sink = total;
}
}  // namespace x86_64_v4_vnni

namespace x86_64_v4_amx {
// Tile products into 6 accumulators (tmm0-5) of two source tiles (tmm6, tmm7), all 16 rows of
// 64 bytes (palette 1), kSteps / 4 steps of one asm block each; AT&T order: tdp src2, src1, dst.
template <bool Int8>
__attribute__((target("amx-tile,amx-int8,amx-bf16"))) void tile_product_pass(int thread) {
  alignas(64) unsigned char config[64] = {};
  config[0] = 1;  // palette
  for (int t = 0; t < 8; ++t) {
    config[16 + 2 * t] = 64;  // bytes per row (16-bit)
    config[48 + t] = 16;      // rows
  }
  alignas(64) unsigned char a[1024], b[1024];
  alignas(64) int c[256];
  std::fill_n(a, 1024, static_cast<unsigned char>(0x3F));  // small bf16 or int8 values
  std::fill_n(b, 1024, static_cast<unsigned char>(5 + thread));
  const long stride = 64;
  asm volatile("ldtilecfg %0" : : "m"(config));
  asm volatile(
      "tilezero %%tmm0\n\ttilezero %%tmm1\n\ttilezero %%tmm2\n\ttilezero %%tmm3\n\t"
      "tilezero %%tmm4\n\ttilezero %%tmm5\n\ttileloadd (%0,%2,1), %%tmm6\n\t"
      "tileloadd (%1,%2,1), %%tmm7"
      :
      : "r"(a), "r"(b), "r"(stride)
      : "memory");
  for (long step = 0; step < kSteps / 4; ++step) {
    if constexpr (Int8)
      asm volatile(
          "tdpbsud %tmm7, %tmm6, %tmm0\n\ttdpbsud %tmm7, %tmm6, %tmm1\n\t"
          "tdpbsud %tmm7, %tmm6, %tmm2\n\ttdpbsud %tmm7, %tmm6, %tmm3\n\t"
          "tdpbsud %tmm7, %tmm6, %tmm4\n\ttdpbsud %tmm7, %tmm6, %tmm5");
    else
      asm volatile(
          "tdpbf16ps %tmm7, %tmm6, %tmm0\n\ttdpbf16ps %tmm7, %tmm6, %tmm1\n\t"
          "tdpbf16ps %tmm7, %tmm6, %tmm2\n\ttdpbf16ps %tmm7, %tmm6, %tmm3\n\t"
          "tdpbf16ps %tmm7, %tmm6, %tmm4\n\ttdpbf16ps %tmm7, %tmm6, %tmm5");
  }
  asm volatile("tilestored %%tmm5, (%0,%1,1)\n\ttilerelease" : : "r"(c), "r"(stride) : "memory");
  int_sink = c[0] + c[255];
}
}  // namespace x86_64_v4_amx

double second_fma_loop_avx512() {
  return second_loop_rate(2.0 * 16 * 12 * kSteps, x86_64_v4_vnni::fma_pass);
}
double second_fma_loop_avx2() {
  return second_loop_rate(2.0 * 8 * 10 * kSteps, x86_64_v3::fma_pass);
}
double second_fma_loop_sse() {
  return second_loop_rate(2.0 * 4 * 12 * kSteps, multiply_add_pass_sse);
}
double second_int8_dot_loop() {
  return second_loop_rate(2.0 * 64 * 12 * kSteps, x86_64_v4_vnni::int8_dot_pass);
}
double second_bf16_vector_dot_loop() {
  return second_loop_rate(2.0 * 32 * 12 * kSteps, x86_64_v4_vnni::bf16_vector_dot_pass);
}
// 2 operations per product of a pair of values: 16 x 16 outputs of 64 int8 or 32 bf16 pairs.
double second_amx_int8_loop() {
  return second_loop_rate(2.0 * 16 * 16 * 64 * 6 * (kSteps / 4),
                          x86_64_v4_amx::tile_product_pass<true>);
}
double second_amx_bf16_loop() {
  return second_loop_rate(2.0 * 16 * 16 * 32 * 6 * (kSteps / 4),
                          x86_64_v4_amx::tile_product_pass<false>);
}
#endif

// Measures probe(passes) and second() alternately, 3 rounds; the best of each must agree within
// 15%.
template <class Second>
void check_peak(const char* what, double (*probe)(int), Second&& second) {
  double library = 0.0, independent = 0.0;
  for (int round = 0; round < 3; ++round) {
    library = std::max(library, probe(kPasses));
    independent = std::max(independent, second());
  }
  INFO(what << ": library probe " << library << ", second loop " << independent << " (1e9/s)");
  CHECK(library > 0.0);
  CHECK(library / independent == Approx(1.0).epsilon(0.15));
}

}  // namespace

TEST_CASE("machine peaks agree with differently written loops", "[machine][peaks]") {
#if defined(__x86_64__) && defined(__GNUC__)
  for_each_kernel_table([](const cpu::CpuKernels& kernels) {
    INFO("kernels " << kernels.name << " (" << kernels.simd << ")");
    const bool fma = (kernels.cpu_features & cpu::kFma) != 0;
    if (kernels.float_lanes == 16)
      check_peak("FMA", kernels.fma_peak, second_fma_loop_avx512);
    else if (kernels.float_lanes == 8 && fma)
      check_peak("FMA", kernels.fma_peak, second_fma_loop_avx2);
    else if (kernels.float_lanes == 4 && !fma)
      check_peak("multiply-add", kernels.fma_peak, second_fma_loop_sse);
    if (kernels.int8_dot_peak && !(kernels.cpu_features & cpu::kAmxInt8))
      check_peak("vpdpbusd", kernels.int8_dot_peak, second_int8_dot_loop);
    if (kernels.bf16_vector_dot_peak && cpu::missing_cpu_features(cpu::kAvx512bf16).empty())
      check_peak("vdpbf16ps", kernels.bf16_vector_dot_peak, second_bf16_vector_dot_loop);
    // Tables with the AMX tiles run only where the CPU has them and Linux granted them.
    if (kernels.int8_dot_peak && (kernels.cpu_features & cpu::kAmxInt8))
      check_peak("tdpbsud", kernels.int8_dot_peak, second_amx_int8_loop);
    if (kernels.bf16_tile_peak)
      check_peak("tdpbf16ps", kernels.bf16_tile_peak, second_amx_bf16_loop);
  });
#else
  SUCCEED("the second loops are written for x86-64 with GCC's extensions");
#endif
}

TEST_CASE("the peak cross-check fails a probe that reads low", "[machine][sanity]") {
#if defined(__x86_64__) && defined(__GNUC__)
  // Half the FMA rate (one thread's probe quoted for a team of two, or a narrower batch) must
  // not pass for the peak: the comparison has the power to fail.
  const cpu::CpuKernels& kernels = cpu::selected_kernels();
  if (kernels.float_lanes != 16) return;
  double library = 0.0, independent = 0.0;
  for (int round = 0; round < 3; ++round) {
    library = std::max(library, kernels.fma_peak(kPasses));
    independent = std::max(independent, second_fma_loop_avx512());
  }
  CHECK_FALSE(0.5 * library / independent == Approx(1.0).epsilon(0.15));
#endif
}
