// x86 instruction-set extensions as bits: those a set of kernels was compiled for (read off the
// compiler's target macros: -march=native, -march=x86-64-v3, ...) and the check of such a set
// against the running CPU. A program built for one machine and run on an older one gets a clear
// error naming what is missing instead of an illegal-instruction crash in the first kernel, and
// the kernel dispatch (kernel_dispatch.hpp) skips variants the CPU cannot run. Other
// architectures need nothing (no bits).
#pragma once

#include <string>

#include "../../core/error.hpp"
#include "simd.hpp"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif
#if defined(__linux__) && defined(__x86_64__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace recurrent_depth::cpu {

enum CpuFeature : unsigned {
  kAvx = 1u << 0,
  kAvx2 = 1u << 1,
  kFma = 1u << 2,
  kBmi = 1u << 3,
  kBmi2 = 1u << 4,
  kF16c = 1u << 5,
  kLzcnt = 1u << 6,
  kAvx512f = 1u << 7,
  kAvx512bw = 1u << 8,
  kAvx512cd = 1u << 9,
  kAvx512dq = 1u << 10,
  kAvx512vl = 1u << 11,
  kAvx512vnni = 1u << 12,
  kAmxTile = 1u << 13,
  kAmxInt8 = 1u << 14,
  kAmxBf16 = 1u << 15,
  kAvx512bf16 = 1u << 16,
};

// Whether the operating system lets this process use the AMX tile registers. Linux grants them
// on request (arch_prctl ARCH_REQ_XCOMP_PERM for XFEATURE_XTILEDATA), once for the whole process;
// the first call asks.
inline bool amx_tiles_permitted() {
#if defined(__linux__) && defined(__x86_64__)
  constexpr long kRequestPermission = 0x1023, kTileData = 18;
  static const bool permitted = syscall(SYS_arch_prctl, kRequestPermission, kTileData) == 0;
  return permitted;
#else
  return false;
#endif
}

// Whether CPUID leaf 7 sets EDX bit `bit` (GCC 12's __builtin_cpu_supports does not know the
// AMX bits: 22 bf16 tile products, 24 tile registers, 25 int8 tile products).
inline bool cpuid_7_edx_bit(unsigned bit) {
#if defined(__x86_64__) || defined(__i386__)
  unsigned a = 0, b = 0, c = 0, d = 0;
  return __get_cpuid_count(7, 0, &a, &b, &c, &d) && (d >> bit & 1u);
#else
  (void)bit;
  return false;
#endif
}

// The extensions among `features` that this CPU lacks, space-separated ("" when none). Compiled
// with the caller's flags, which must be the program's baseline: it runs before any variant.
inline std::string missing_cpu_features(unsigned features) {
  std::string missing;
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  const auto need = [&](CpuFeature feature, bool present, const char* name) {
    if ((features & feature) && !present)
      missing += missing.empty() ? name : std::string(" ") + name;
  };
  need(kAvx, __builtin_cpu_supports("avx"), "avx");
  need(kAvx2, __builtin_cpu_supports("avx2"), "avx2");
  need(kFma, __builtin_cpu_supports("fma"), "fma");
  need(kBmi, __builtin_cpu_supports("bmi"), "bmi");
  need(kBmi2, __builtin_cpu_supports("bmi2"), "bmi2");
  need(kF16c, __builtin_cpu_supports("f16c"), "f16c");
  need(kLzcnt, __builtin_cpu_supports("lzcnt"), "lzcnt");
  need(kAvx512f, __builtin_cpu_supports("avx512f"), "avx512f");
  need(kAvx512bw, __builtin_cpu_supports("avx512bw"), "avx512bw");
  need(kAvx512cd, __builtin_cpu_supports("avx512cd"), "avx512cd");
  need(kAvx512dq, __builtin_cpu_supports("avx512dq"), "avx512dq");
  need(kAvx512vl, __builtin_cpu_supports("avx512vl"), "avx512vl");
  need(kAvx512vnni, __builtin_cpu_supports("avx512vnni"), "avx512vnni");
  need(kAvx512bf16, __builtin_cpu_supports("avx512bf16"), "avx512bf16");
  if (features & kAmxTile)  // asks the operating system only for kernels that use the tiles
    need(kAmxTile, cpuid_7_edx_bit(24) && amx_tiles_permitted(), "amx-tile");
  need(kAmxInt8, cpuid_7_edx_bit(25), "amx-int8");
  need(kAmxBf16, cpuid_7_edx_bit(22), "amx-bf16");
#else
  (void)features;
#endif
  return missing;
}

}  // namespace recurrent_depth::cpu

namespace recurrent_depth::cpu {
inline namespace RECURRENT_DEPTH_KERNEL_NAMESPACE {

// The extensions this translation unit's compile flags let the compiler use.
inline constexpr unsigned compiled_cpu_features() {
  unsigned features = 0;
#if defined(__AVX__)
  features |= kAvx;
#endif
#if defined(__AVX2__)
  features |= kAvx2;
#endif
#if defined(__FMA__)
  features |= kFma;
#endif
#if defined(__BMI__)
  features |= kBmi;
#endif
#if defined(__BMI2__)
  features |= kBmi2;
#endif
#if defined(__F16C__)
  features |= kF16c;
#endif
#if defined(__LZCNT__)
  features |= kLzcnt;
#endif
#if defined(__AVX512F__)
  features |= kAvx512f;
#endif
#if defined(__AVX512BW__)
  features |= kAvx512bw;
#endif
#if defined(__AVX512CD__)
  features |= kAvx512cd;
#endif
#if defined(__AVX512DQ__)
  features |= kAvx512dq;
#endif
#if defined(__AVX512VL__)
  features |= kAvx512vl;
#endif
#if defined(__AVX512VNNI__)
  features |= kAvx512vnni;
#endif
#if defined(__AVX512BF16__)
  features |= kAvx512bf16;
#endif
#if defined(__AMX_TILE__)
  features |= kAmxTile;
#endif
#if defined(__AMX_INT8__)
  features |= kAmxInt8;
#endif
#if defined(__AMX_BF16__)
  features |= kAmxBf16;
#endif
  return features;
}

// Throws when the CPU lacks an extension this translation unit's flags use (the program around
// the kernels is compiled with them too).
inline void require_cpu_features() {
  const std::string missing = missing_cpu_features(compiled_cpu_features());
  require(missing.empty(), "this build of recurrent_depth uses CPU extensions this machine lacks (",
          missing, "): rebuild it on this machine or for an older target (-march)");
}

}  // namespace RECURRENT_DEPTH_KERNEL_NAMESPACE
}  // namespace recurrent_depth::cpu
