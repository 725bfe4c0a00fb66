#!/usr/bin/env bash
# Generates the tokenizer oracle files (see make_oracle.mjs) into OUTPUT_DIR:
#   tests/tokenizer/make_oracle.sh OUTPUT_DIR
# Installs the pinned npm packages (package-lock.json) there first (tests/npm_install.sh).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${1:?usage: make_oracle.sh OUTPUT_DIR}"
"$here/../npm_install.sh" "$here" "$out"
out="$(cd "$out" && pwd)"
node "$here/make_oracle.mjs" "$out"
