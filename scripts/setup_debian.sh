#!/usr/bin/env bash
# Installs what a fresh Debian 12 (bookworm) needs to build and test recurrent_depth.
# Idempotent: when every package is already installed it does nothing (no apt-get update).
# Runs apt-get as root, or through sudo when not root.
set -euo pipefail

packages=(
  g++ cmake ninja-build make pkg-config git ca-certificates
  libeigen3-dev libxsimd-dev nlohmann-json3-dev catch2 libbenchmark-dev libpcre2-dev
  libcpp-httplib-dev  # rdepth serve's HTTP server
  tmux  # tests/test_chat_terminal.cpp drives rdepth chat in a real terminal
  # scripts/test_hardening.sh: libFuzzer and the sanitizer runtimes of clang (the fuzz targets),
  # and clang's OpenMP; GCC's own sanitizer runtimes come with g++.
  clang-14 libclang-rt-14-dev libomp-14-dev
)

# scripts/test_hip.sh: the HIP compiler (clang 15 with ROCm 5.2's device libraries) and runtime,
# about 100 MB to download; not wanted when the HIP stage is skipped (HIP=0).
if [ "${HIP:-1}" != 0 ]; then
  packages+=(hipcc libamdhip64-dev)
fi

# node and npm generate the tokenizer oracle (tests/tokenizer/make_oracle.sh); any installation
# that provides both commands will do, so Debian's packages are added only when one is missing.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  packages+=(nodejs npm)
fi

if ! command -v dpkg-query >/dev/null 2>&1; then
  echo "setup_debian.sh: not a Debian system (no dpkg-query); install these yourself:" >&2
  echo "  ${packages[*]}" >&2
  exit 0
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${db:Status-Status}\n' "$p" 2>/dev/null | grep -qx installed; then
    missing+=("$p")
  fi
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "setup_debian.sh: all ${#packages[@]} packages already installed"
  exit 0
fi

echo "setup_debian.sh: installing ${missing[*]}"
if [ "$(id -u)" -eq 0 ]; then
  as_root=()
elif command -v sudo >/dev/null 2>&1; then
  as_root=(sudo)
else
  echo "setup_debian.sh: need root (or sudo) to install: ${missing[*]}" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
  apt-get install -y --no-install-recommends "${missing[@]}"
