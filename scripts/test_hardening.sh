#!/usr/bin/env bash
# Hardening runs (CI runs them after the release suite; each prints its time):
#   build-asan  the whole test suite with -fsanitize=address,undefined (GCC, -O1), except the
#               tokenizer oracle (its JavaScript answers are generated into the release build
#               only; the same tokenizer code runs under ASan in test_tokenizer.cpp and the fuzz
#               target) and the machine-peak and bench timing tests (instrumented loops measure
#               the sanitizer, not the machine); `rdepth serve` runs instrumented under the
#               openai client's test;
#   build-tsan  the threading tests (test_concurrency.cpp) with -fsanitize=thread, one OpenMP
#               thread per team (tests/CMakeLists.txt says why);
#   build-fuzz  every libFuzzer target of tests/fuzz for FUZZ_SECONDS (default 30) each.
# Measured on a 2-core machine: see the timings this prints.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

jobs=${JOBS:-2}
# -O1: a quarter of -O3's compile time, and the reports keep their frames.
sanitizer_build() {  # directory, sanitizers, ON|OFF (rdepth), targets...
  local dir=$1 sanitize=$2 tools=$3
  shift 3
  cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG="-O1 -g1" \
    -DRECURRENT_DEPTH_SANITIZE="$sanitize" -DRECURRENT_DEPTH_BUILD_TOOLS="$tools" \
    -DRECURRENT_DEPTH_BUILD_BENCHMARKS=OFF \
    -DRECURRENT_DEPTH_BUILD_EXAMPLES=OFF -DRECURRENT_DEPTH_INSTALL=OFF >/dev/null
  cmake --build "$dir" -j "$jobs" --target "$@"
}
stage() {
  local start=$SECONDS
  "$@"
  echo "test_hardening: $1 took $((SECONDS - start)) s"
}

asan() {
  sanitizer_build build-asan address,undefined ON recurrent_depth_tests rdepth
  ASAN_OPTIONS=detect_leaks=1:strict_string_checks=1:detect_stack_use_after_return=1 \
    UBSAN_OPTIONS=print_stacktrace=1 \
    ctest --test-dir build-asan --output-on-failure -j "$jobs" \
    -E '^(tokenizer oracle|machine peaks|the peak cross-check|rdepth bench reports)'
}

tsan() {
  sanitizer_build build-tsan thread OFF recurrent_depth_tests
  ctest --test-dir build-tsan --output-on-failure -j 1
}

fuzz() {
  tests/fuzz/run.sh "${FUZZ_SECONDS:-30}" build-fuzz
}

stage asan
stage tsan
stage fuzz
