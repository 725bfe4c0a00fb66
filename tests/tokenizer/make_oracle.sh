#!/usr/bin/env bash
# Generates the tokenizer oracle files (see make_oracle.mjs) into OUTPUT_DIR:
#   tests/tokenizer/make_oracle.sh OUTPUT_DIR
# Installs the pinned npm packages (package-lock.json) there with `npm ci` when they are missing
# or the lock file changed. Needs node >= 18 and npm (scripts/setup_debian.sh installs them).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${1:?usage: make_oracle.sh OUTPUT_DIR}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"

for tool in node npm; do
  command -v "$tool" >/dev/null 2>&1 || {
    echo "make_oracle.sh: '$tool' not found; install nodejs and npm (scripts/setup_debian.sh)" >&2
    exit 1
  }
done

if ! cmp -s "$here/package-lock.json" "$out/package-lock.json" || [ ! -d "$out/node_modules" ]; then
  cp "$here/package.json" "$here/package-lock.json" "$out/"
  (cd "$out" && npm ci --no-audit --no-fund --loglevel=error)
fi
node "$here/make_oracle.mjs" "$out"
