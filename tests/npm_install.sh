#!/usr/bin/env bash
# Installs the npm packages pinned by PACKAGE_DIR's package.json and package-lock.json into
# OUTPUT_DIR (OUTPUT_DIR/node_modules) with `npm ci`, when they are missing or the lock file
# changed:
#   tests/npm_install.sh PACKAGE_DIR OUTPUT_DIR
# Needs node >= 18 and npm (scripts/setup_debian.sh installs them).
set -euo pipefail
packages="$(cd "${1:?usage: npm_install.sh PACKAGE_DIR OUTPUT_DIR}" && pwd)"
out="${2:?usage: npm_install.sh PACKAGE_DIR OUTPUT_DIR}"
mkdir -p "$out"

for tool in node npm; do
  command -v "$tool" >/dev/null 2>&1 || {
    echo "npm_install.sh: '$tool' not found; install nodejs and npm (scripts/setup_debian.sh)" >&2
    exit 1
  }
done

if ! cmp -s "$packages/package-lock.json" "$out/package-lock.json" || [ ! -d "$out/node_modules" ]; then
  cp "$packages/package.json" "$packages/package-lock.json" "$out/"
  (cd "$out" && npm ci --no-audit --no-fund --loglevel=error)
fi
