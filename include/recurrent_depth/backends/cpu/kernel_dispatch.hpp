// Runtime dispatch of the CPU kernels, chosen once per process. The kernels of the program's own
// compile flags (`compiled`) are always there; kernel variants built with other flags are linked
// in by CMake's recurrent_depth_add_kernel_variants() (cmake/recurrent_depthKernelVariants.cmake),
// which defines RECURRENT_DEPTH_WITH_KERNELS_<VARIANT> for the program:
//   x86_64_v3       -march=x86-64-v3 (AVX2, FMA)
//   x86_64_v4_vnni  -march=x86-64-v4 -mavx512vnni (AVX-512 F/BW/CD/DQ/VL and VNNI)
//   x86_64_v4_amx   the same and -mavx512bf16 -mamx-tile -mamx-int8 -mamx-bf16 (AMX tiles, where
//                   the OS grants them)
//   x86_64_v4_bf16  x86_64_v4_vnni and -mavx512bf16: bf16 prompts on vdpbf16ps with the
//                   activations rounded to bf16 (by name only: less exact)
// selected_kernels() is the table with the most CPU features the running CPU has (the compiled
// one on a tie) among those not by_name_only, or the one named by the environment variable
// RECURRENT_DEPTH_KERNELS.
#pragma once

#include <algorithm>
#include <bit>
#include <cstdlib>
#include <string>
#include <vector>

#include "../../core/error.hpp"
#include "kernel_table.hpp"

namespace recurrent_depth::cpu {

#if defined(RECURRENT_DEPTH_WITH_KERNELS_X86_64_V3)
namespace x86_64_v3 {
extern const CpuKernels kernel_table;
}
#endif
#if defined(RECURRENT_DEPTH_WITH_KERNELS_X86_64_V4_VNNI)
namespace x86_64_v4_vnni {
extern const CpuKernels kernel_table;
}
#endif
#if defined(RECURRENT_DEPTH_WITH_KERNELS_X86_64_V4_AMX)
namespace x86_64_v4_amx {
extern const CpuKernels kernel_table;
}
#endif
#if defined(RECURRENT_DEPTH_WITH_KERNELS_X86_64_V4_BF16)
namespace x86_64_v4_bf16 {
extern const CpuKernels kernel_table;
}
#endif

// Every kernel table linked into the program, the compiled one first.
inline std::vector<const CpuKernels*> linked_kernels() {
  static constexpr CpuKernels compiled = compiled_kernel_table();
  std::vector<const CpuKernels*> tables{&compiled};
#if defined(RECURRENT_DEPTH_WITH_KERNELS_X86_64_V3)
  tables.push_back(&x86_64_v3::kernel_table);
#endif
#if defined(RECURRENT_DEPTH_WITH_KERNELS_X86_64_V4_VNNI)
  tables.push_back(&x86_64_v4_vnni::kernel_table);
#endif
#if defined(RECURRENT_DEPTH_WITH_KERNELS_X86_64_V4_AMX)
  tables.push_back(&x86_64_v4_amx::kernel_table);
#endif
#if defined(RECURRENT_DEPTH_WITH_KERNELS_X86_64_V4_BF16)
  tables.push_back(&x86_64_v4_bf16::kernel_table);
#endif
  return tables;
}

// The linked tables this CPU can run, best (most CPU features) first.
inline std::vector<const CpuKernels*> runnable_kernels() {
  std::vector<const CpuKernels*> tables;
  for (const CpuKernels* table : linked_kernels())
    if (missing_cpu_features(table->cpu_features).empty()) tables.push_back(table);
  std::stable_sort(tables.begin(), tables.end(), [](const CpuKernels* a, const CpuKernels* b) {
    return std::popcount(a->cpu_features) > std::popcount(b->cpu_features);
  });
  return tables;
}

// The table named `name` among the linked ones; throws when it is not linked or the CPU lacks
// what it needs.
inline const CpuKernels& kernels_named(const std::string& name) {
  std::string known;
  for (const CpuKernels* table : linked_kernels()) {
    if (table->name == name) {
      const std::string missing = missing_cpu_features(table->cpu_features);
      require(missing.empty(), "CPU kernels '", name, "' need CPU extensions this machine lacks (",
              missing, ")");
      return *table;
    }
    known += known.empty() ? table->name : std::string(", ") + table->name;
  }
  throw Error("CPU kernels '" + name + "' are not linked into this program (linked: " + known +
              ")");
}

// The kernels every CPU backend call runs, chosen on the first call.
inline const CpuKernels& selected_kernels() {
  static const CpuKernels& selected = []() -> const CpuKernels& {
    if (const char* name = std::getenv("RECURRENT_DEPTH_KERNELS"); name && *name)
      return kernels_named(name);
    for (const CpuKernels* table : runnable_kernels())
      if (!table->by_name_only) return *table;
    throw Error("this machine lacks CPU extensions the program's kernels use (" +
                missing_cpu_features(linked_kernels().front()->cpu_features) +
                "): rebuild it on this machine or for an older target (-march)");
  }();
  return selected;
}

}  // namespace recurrent_depth::cpu
