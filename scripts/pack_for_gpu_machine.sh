#!/usr/bin/env bash
# Packs the programs of a GPU build (build-nvidia: rdepth and the HIP tests) with every shared
# library they load, the C library and its loader included, into a folder that runs on another
# Linux x86-64 machine whatever its distribution: scripts/run_on_nvidia_gpu.sh starts the programs
# through the packed loader. Usage, from the repository root:
#   scripts/pack_for_gpu_machine.sh [BUILD_DIR (build-nvidia)] [OUT_DIR (build-nvidia-run)]
# The NVIDIA driver's libcuda is not packed: the CUDA runtime loads the GPU machine's own.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

build=${1:-build-nvidia}
out=${2:-build-nvidia-run}
programs=(tools/rdepth tests/hip/recurrent_depth_hip_tests)
rm -rf "$out"
mkdir -p "$out/lib"
for program in "${programs[@]}"; do
  mkdir -p "$out/$(dirname "$program")"
  cp "$build/$program" "$out/$program"
  # ldd's lines: "name => /path (address)" or "/lib64/ld-linux-x86-64.so.2 (address)".
  ldd "$build/$program" | awk '/=> \// { print $3 } /^[ \t]*\/.*ld-linux/ { print $1 }' |
    while read -r library; do cp -L "$library" "$out/lib/"; done
done
du -sh "$out"
