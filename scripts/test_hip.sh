#!/usr/bin/env bash
# The HIP stage (scripts/test.sh runs it unless HIP=0): Debian 12's hipcc and libamdhip64-dev
# (installed by scripts/setup_debian.sh) compile the HIP backend's kernels and their tests for
# RECURRENT_DEPTH_HIP_ARCHITECTURES in build-hip, and the tests run. On a machine without an AMD
# GPU (CI) every test says that it skips and passes: the stage checks that the HIP code compiles.
# Prints its time.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

start=$SECONDS
cmake -S . -B build-hip -G Ninja -DCMAKE_BUILD_TYPE=Release -DRECURRENT_DEPTH_HIP=ON \
  -DRECURRENT_DEPTH_BUILD_TOOLS=OFF -DRECURRENT_DEPTH_BUILD_BENCHMARKS=OFF \
  -DRECURRENT_DEPTH_BUILD_EXAMPLES=OFF -DRECURRENT_DEPTH_INSTALL=OFF >/dev/null
cmake --build build-hip -j "${JOBS:-2}" --target recurrent_depth_hip_tests
ctest --test-dir build-hip --output-on-failure -L hip
build-hip/tests/hip/recurrent_depth_hip_tests --success 2>&1 | grep -m1 SKIPPED || true
echo "test_hip: took $((SECONDS - start)) s"
