// The x86 instruction-set extensions this build's kernels were compiled for (the compiler's
// target macros: -march=native or -march=x86-64-v3, ...), checked against the running CPU:
// a program built on one machine and run on an older one gets a clear error naming what is
// missing instead of an illegal-instruction crash in the first kernel. Other architectures
// (and x86 builds without these extensions) need nothing.
#pragma once

#include <string>

#include "../../core/error.hpp"

namespace recurrent_depth::cpu {

// The extensions the build uses that this CPU lacks, space-separated ("" when none).
inline std::string missing_cpu_features() {
  std::string missing;
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  const auto need = [&](bool present, const char* name) {
    if (!present) missing += missing.empty() ? name : std::string(" ") + name;
  };
#if defined(__AVX2__)
  need(__builtin_cpu_supports("avx2"), "avx2");
#endif
#if defined(__FMA__)
  need(__builtin_cpu_supports("fma"), "fma");
#endif
#if defined(__AVX512F__)
  need(__builtin_cpu_supports("avx512f"), "avx512f");
#endif
#if defined(__AVX512BW__)
  need(__builtin_cpu_supports("avx512bw"), "avx512bw");
#endif
#if defined(__AVX512VL__)
  need(__builtin_cpu_supports("avx512vl"), "avx512vl");
#endif
#if defined(__AVX512VNNI__)
  need(__builtin_cpu_supports("avx512vnni"), "avx512vnni");
#endif
#endif
  return missing;
}

// Throws when the CPU lacks an extension the build uses; the model checks it when it loads.
inline void require_cpu_features() {
  const std::string missing = missing_cpu_features();
  require(missing.empty(), "this build of recurrent_depth uses CPU extensions this machine lacks (",
          missing, "): rebuild it on this machine or for an older target (-march)");
}

}  // namespace recurrent_depth::cpu
