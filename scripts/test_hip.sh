#!/usr/bin/env bash
# The HIP stage (scripts/test.sh runs it unless HIP=0): Debian 12's hipcc and libamdhip64-dev
# (installed by scripts/setup_debian.sh) compile the HIP backend (its kernels into the
# recurrent_depth::hip library), its tests and rdepth with --backend hip for
# RECURRENT_DEPTH_HIP_ARCHITECTURES in build-hip, and they run. On a machine without an AMD GPU
# (CI) every HIP test says that it skips and passes, and rdepth --backend hip must refuse with
# HIP's "no GPU": the stage checks that the HIP code compiles and is wired in. With a GPU, rdepth
# --backend hip must print the CPU's greedy answer on the shipped model. Then the installed package:
# an outside project (tests/install_consumer_hip) finds recurrent_depth::hip in a prefix that
# `cmake --install build-hip` filled, builds a model on HipBackend and runs it (or is refused
# without a GPU). Prints its time.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

start=$SECONDS
cmake -S . -B build-hip -G Ninja -DCMAKE_BUILD_TYPE=Release -DRECURRENT_DEPTH_HIP=ON \
  -DRECURRENT_DEPTH_BUILD_TOOLS=ON -DRECURRENT_DEPTH_BUILD_BENCHMARKS=OFF \
  -DRECURRENT_DEPTH_BUILD_EXAMPLES=OFF -DRECURRENT_DEPTH_INSTALL=ON >/dev/null
cmake --build build-hip -j "${JOBS:-2}" --target recurrent_depth_hip_tests rdepth
ctest --test-dir build-hip --output-on-failure -L hip
build-hip/tests/hip/recurrent_depth_hip_tests --success 2>&1 | grep -m1 SKIPPED || true

rdepth=build-hip/tools/rdepth
errors=$(mktemp)
scratch=$(mktemp -d)
trap 'rm -rf "$errors" "$scratch"' EXIT
answer() {
  "$rdepth" generate --model models/arithmetic --prompt "2*7+5*3+8=" --max-new-tokens 3 --steps 8 \
    --weights f32 --backend "$1"
}
if gpu_answer=$(answer hip 2>"$errors"); then
  cpu_answer=$(answer cpu 2>/dev/null)
  [[ "$gpu_answer" == "$cpu_answer" ]] || {
    echo "rdepth --backend hip answered '$gpu_answer', the CPU '$cpu_answer'" >&2
    exit 1
  }
  echo "rdepth --backend hip: '$gpu_answer', as the CPU"
else
  grep -q "HIP finds no GPU" "$errors" || {
    cat "$errors" >&2
    exit 1
  }
  echo "rdepth --backend hip: refused without a GPU ($(cat "$errors"))"
fi
cmake --install build-hip --prefix "$scratch/prefix" >/dev/null
cmake -S tests/install_consumer_hip -B "$scratch/build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$scratch/prefix" -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF >/dev/null
cmake --build "$scratch/build"
"$scratch/build/hip_consumer"
echo "test_hip: took $((SECONDS - start)) s"
