#!/usr/bin/env bash
# The README's test command: set up Debian packages, configure, build, run every test; then the
# HIP stage (scripts/test_hip.sh: the HIP kernels and their tests compiled with hipcc, run where a
# GPU is present; HIP=0 skips it) and the hardening runs (scripts/test_hardening.sh: the
# ASan+UBSan suite, the TSan threading tests and 30 s of each fuzz target; HARDENING=0 skips them).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/setup_debian.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build build -j2
ctest --test-dir build --output-on-failure -j2

if [ "${HIP:-1}" != 0 ]; then
  scripts/test_hip.sh
fi
if [ "${HARDENING:-1}" != 0 ]; then
  scripts/test_hardening.sh
fi
