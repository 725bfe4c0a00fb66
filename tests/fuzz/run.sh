#!/usr/bin/env bash
# Runs every libFuzzer target of tests/fuzz for SECONDS each (default 30), one process each, from
# seed corpora built from the repository's own files (tests/data, models/, tests/tokenizer, the
# README's command lines). Builds the targets first (clang++-14, RECURRENT_DEPTH_FUZZ=ON) into
# BUILD_DIR (default build-fuzz). Prints executions and coverage per target; exits non-zero when
# a target finds a crash, leak, sanitizer report, uncaught exception, hang (-timeout) or an
# allocation past -malloc_limit_mb (the input is kept in BUILD_DIR/fuzz-work/findings/).
#
#   tests/fuzz/run.sh 30              # what CI runs
#   tests/fuzz/run.sh 3600            # a long run (grows BUILD_DIR/fuzz-work/corpus-*)
#   FUZZ_TARGETS="fuzz_config" tests/fuzz/run.sh 60
#   FUZZ_RUNS=1000000 tests/fuzz/run.sh 3600   # a million inputs each (at most an hour each)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
root=$PWD
seconds=${1:-30}
build=${2:-build-fuzz}
compiler=${CXX_FUZZ:-clang++-14}

if [ ! -f "$build/build.ninja" ]; then
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_COMPILER="$compiler" \
    -DRECURRENT_DEPTH_FUZZ=ON -DRECURRENT_DEPTH_BUILD_TESTS=OFF -DRECURRENT_DEPTH_BUILD_TOOLS=OFF \
    -DRECURRENT_DEPTH_BUILD_BENCHMARKS=OFF -DRECURRENT_DEPTH_BUILD_EXAMPLES=OFF \
    -DRECURRENT_DEPTH_INSTALL=OFF >/dev/null
fi
cmake --build "$build" -j "${FUZZ_BUILD_JOBS:-2}"

work=$build/fuzz-work
seeds=$work/seeds
rm -rf "$seeds"
mkdir -p "$seeds" "$work/findings"

# ---- Seed corpora -----------------------------------------------------------------------------
seed_dir() { mkdir -p "$seeds/$1" && echo "$seeds/$1"; }

# safetensors: each repository file cut to its header and the first 512 bytes of its data (the
# whole files are megabytes), and small complete files of several dtypes.
s=$(seed_dir fuzz_safetensors)
n=0
while IFS= read -r file; do
  header=$(od -An -t u8 -N 8 "$file" | tr -d ' ')
  head -c $((8 + header + 512)) "$file" >"$s/repo_$n"
  n=$((n + 1))
done < <(find tests/data models -name '*.safetensors' | sort)
small_file() {  # header text, data bytes (printf escapes)
  local header=$1 data=$2
  printf "$(printf '\\x%02x' $((${#header} & 255)) $((${#header} >> 8)) 0 0 0 0 0 0)" >"$3"
  printf '%s' "$header" >>"$3"
  printf "$data" >>"$3"
}
small_file '{"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"BF16","shape":[1,2],"data_offsets":[8,12]}}' \
  '\0\0\200\77\0\0\0\300\200\77\0\300' "$s/small_float"
small_file '{"ids":{"dtype":"I64","shape":[2],"data_offsets":[0,16]},"h":{"dtype":"F16","shape":[],"data_offsets":[16,18]},"e":{"dtype":"U8","shape":[0,3],"data_offsets":[18,18]}}' \
  '\3\0\0\0\0\0\0\0\21\0\0\0\0\0\0\0\0\74' "$s/small_ints"

# sharded index: the layout tests/test_files.hpp writes, over the target's shards a and b.
s=$(seed_dir fuzz_sharded_index)
printf '%s' '{"metadata":{"total_size":32},"weight_map":{"x":"a.safetensors","y":"a.safetensors","z":"b.safetensors"}}' >"$s/valid"
printf '%s' '{"weight_map":{"transformer.ln_f.weight":"model-00001-of-00002.safetensors"}}' >"$s/missing"

# config.json and generation_config.json: every one in the repository.
s=$(seed_dir fuzz_config)
n=0
for file in $(find tests/data models -name 'config.json' -o -name 'generation_config.json' | sort); do
  cp "$file" "$s/repo_$n"
  n=$((n + 1))
done

# tokenizer: the shipped model's tokenizer.json with task prompts, and texts alone (for the Huginn
# test tokenizer): task lines, README paragraphs.
s=$(seed_dir fuzz_tokenizer)
n=0
while IFS= read -r line && [ $n -lt 8 ]; do
  { cat models/arithmetic/tokenizer.json; printf '\n#TEXT#\n%s' "$line"; } >"$s/shipped_$n"
  n=$((n + 1))
done <models/arithmetic/tasks/heldout.jsonl
n=0
while IFS= read -r line && [ $n -lt 40 ]; do
  [ -n "$line" ] && printf '%s' "$line" >"$s/text_$n" && n=$((n + 1))
done < <(grep -v '^ *$' README.md | head -n 120 | awk 'NR % 3 == 0')

# stream decoder: id pairs from the bytes of repository files.
s=$(seed_dir fuzz_stream_decoder)
n=0
for file in README.md tests/data/tiny_huginn/golden.json models/arithmetic/tokenizer.json; do
  for offset in 0 256 1024; do
    head -c $((offset + 96)) "$file" | tail -c 96 >"$s/bytes_$n"  # no SIGPIPE under pipefail
    n=$((n + 1))
  done
done

# rdepth arguments: the flags and values written in the README and in rdepth's help texts, four
# "--flag value" pairs per seed, NUL-separated words.
s=$(seed_dir fuzz_arguments)
n=0
while IFS= read -r pair; do
  # shellcheck disable=SC2086  # the words of the pair, each ended by a NUL
  printf '%s\0' $pair >>"$s/flags_$((n / 4))"
  n=$((n + 1))
done < <(grep -ho -- '--[a-z][a-z0-9-]*\( [A-Za-z0-9,._/=-][A-Za-z0-9,._/=-]*\)\?' README.md \
  tools/rdepth/*.cpp | sort -u)

# Inputs that once failed (tests/fuzz/regressions/TARGET/), kept as seeds.
for dir in tests/fuzz/regressions/*/; do
  [ -d "$dir" ] && cp "$dir"* "$(seed_dir "$(basename "$dir")")/"
done

# ---- Runs ---------------------------------------------------------------------------------------
declare -A max_len=([fuzz_safetensors]=8192 [fuzz_sharded_index]=4096 [fuzz_config]=4096
  [fuzz_tokenizer]=8192 [fuzz_stream_decoder]=1024 [fuzz_arguments]=1024)
targets=${FUZZ_TARGETS:-fuzz_safetensors fuzz_sharded_index fuzz_config fuzz_tokenizer fuzz_stream_decoder fuzz_arguments}
failed=()
for target in $targets; do
  corpus=$work/corpus-$target
  mkdir -p "$corpus"
  log=$work/$target.log
  echo "== $target: ${seconds}s"
  if ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=0 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    "$build/tests/fuzz/$target" "$corpus" "$seeds/$target" -max_total_time="$seconds" ${FUZZ_RUNS:+-runs="$FUZZ_RUNS"} \
    -max_len="${max_len[$target]}" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=1024 \
    -print_final_stats=1 -artifact_prefix="$work/findings/$target-" >"$log" 2>&1; then
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || true)
    coverage=$(grep -o 'cov: [0-9]* ft: [0-9]*' "$log" | tail -n 1 || true)
    echo "   ok: ${runs:-?} executions, $coverage, corpus $(ls "$corpus" | wc -l) inputs"
  else
    echo "   FAILED (log: $log)"
    grep -E 'ERROR|SUMMARY|Test unit written|uncaught|deadly' "$log" | head -n 8 | sed 's/^/   /' || true
    failed+=("$target")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: findings in ${failed[*]}" >&2
  exit 1
fi
echo "fuzz: no findings in $(echo $targets | wc -w) targets"
