#!/usr/bin/env bash
# Builds compare_levels (the dense-layer kernels at -O2 and at -O3 in one program, see
# compare_levels.cpp) for the given target flags and runs it for decode (1 position) and a prompt
# (64 positions). Not part of CI; see benchmarks/README.md.
# Usage: benchmarks/opt_levels/run.sh [compiler flags...]
#   default flags: -march=x86-64-v4 -mavx512vnni -mavx512bf16 -DRECURRENT_DEPTH_BF16_DOT_PROMPTS
#   (the x86_64_v4_bf16 table); e.g. -march=x86-64-v3 for the AVX2 one.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out="$root/build/opt_levels"
mkdir -p "$out"
flags=("$@")
[ ${#flags[@]} -gt 0 ] || flags=(-march=x86-64-v4 -mavx512vnni -mavx512bf16
                                 -DRECURRENT_DEPTH_BF16_DOT_PROMPTS)
common=(-std=c++20 -fopenmp -DNDEBUG -I"$root/include" -I/usr/include/eigen3 "${flags[@]}")
CXX=${CXX:-g++}
"$CXX" "${common[@]}" -O2 -DRECURRENT_DEPTH_KERNEL_NAMESPACE=o2 -c "$here/kernels_at_level.cpp" \
  -o "$out/kernels_o2.o"
"$CXX" "${common[@]}" -O3 -DRECURRENT_DEPTH_KERNEL_NAMESPACE=o3 -c "$here/kernels_at_level.cpp" \
  -o "$out/kernels_o3.o"
"$CXX" "${common[@]}" -O2 -DRECURRENT_DEPTH_KERNEL_NAMESPACE=driver -c "$here/compare_levels.cpp" \
  -o "$out/compare_levels.o"
"$CXX" -fopenmp "$out/compare_levels.o" "$out/kernels_o2.o" "$out/kernels_o3.o" \
  -o "$out/compare_levels"
"$out/compare_levels" 1
"$out/compare_levels" 64
