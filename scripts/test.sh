#!/usr/bin/env bash
# The README's test command: set up Debian packages, configure, build, run every test; then the
# hardening runs (scripts/test_hardening.sh: the ASan+UBSan suite, the TSan threading tests and
# 30 s of each fuzz target). HARDENING=0 skips those.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/setup_debian.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build build -j2
ctest --test-dir build --output-on-failure -j2

if [ "${HARDENING:-1}" != 0 ]; then
  scripts/test_hardening.sh
fi
