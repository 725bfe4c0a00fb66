#!/usr/bin/env bash
# Builds the rdepth tool and generates a few tokens with the tiny test model.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/setup_debian.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build build -j2 --target rdepth
./build/tools/rdepth generate --model tests/data/tiny_huginn --prompt-ids 3,17,5,42,7 \
  --max-new-tokens 8 --steps 8
