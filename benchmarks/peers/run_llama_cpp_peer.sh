#!/usr/bin/env bash
# One command for the llama.cpp peer benchmark: fetches a pinned llama.cpp source (inside the npm
# package node-llama-cpp), builds llama-bench and llama-quantize (CPU, Release, native), writes a
# random dense llama GGUF with huginn-mini's compute per token (BF16, then Q8_0 and Q4_0), runs
# llama-bench and `rdepth bench` on it and prints one side-by-side table. See README.md here.
set -euo pipefail

NLC_VERSION=3.22.1   # npm package node-llama-cpp; its llama/gitRelease.bundle is llama.cpp's source
NLC_INTEGRITY=sha512-bltIipuWmc123H7tMIgDGKSsSrhmhlQYeVUC48XTjVW7XGJJiJJyCdlTMzQ/LiWoPkGDpcL4FviDpgw7qfTiDw==
LLAMA_COMMIT=de3ff815ea7d559ee917f063901b8986f038abc6   # the bundle's HEAD (llama.cpp.info.json tag v0.5.0)
PY=/usr/bin/python3  # Debian's python3 with numpy (not a pyenv one)
THREADS=2 JOBS=2 STEPS=32 GEN=32 REPS=3

usage() {
  cat <<EOF
usage: benchmarks/peers/run_llama_cpp_peer.sh [--skip-build] [--rebuild] [--prepare-only] [--no-amx] [--reps N]

  --skip-build    reuse the llama.cpp build and GGUF files under build/peers/ (error if missing)
  --rebuild       fetch, build and write the models again even if they exist
  --prepare-only  stop after the build and the GGUF files, run no benchmark
  --no-amx        build llama.cpp for AVX-512 (F, VBMI, VNNI, BF16) without its AMX buffer type, in
                  build/peers/llama.cpp-build-no-amx: the pinned llama.cpp's AMX matmul crashes
                  on some AMX machines (llama.cpp issue 20824); the rdepth rows keep their tables
  --reps N        llama-bench repetitions per test (default $REPS)
Without options, steps whose outputs already exist under build/peers/ are reused.
RDEPTH=PATH benchmarks another rdepth binary (default build/tools/rdepth).
EOF
}

die() { echo "run_llama_cpp_peer.sh: error: $*" >&2; exit 1; }
log() { echo "== $(date +%H:%M:%S) $*" >&2; }

SKIP_BUILD=0 REBUILD=0 PREPARE_ONLY=0 NO_AMX=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --skip-build) SKIP_BUILD=1 ;;
    --rebuild) REBUILD=1 ;;
    --prepare-only) PREPARE_ONLY=1 ;;
    --no-amx) NO_AMX=1 ;;
    --reps) [[ ${2:-} =~ ^[1-9][0-9]*$ ]] || die "--reps needs a positive number"; REPS=$2; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown option: $1" ;;
  esac
  shift
done

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE=$ROOT/benchmarks/peers
PEERS=$ROOT/build/peers
SRC=$PEERS/llama.cpp
BLD=$PEERS/llama.cpp-build
ISA_FLAGS=(-DGGML_NATIVE=ON)
if [[ $NO_AMX == 1 ]]; then
  BLD=$PEERS/llama.cpp-build-no-amx
  ISA_FLAGS=(-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_BMI2=ON -DGGML_FMA=ON -DGGML_F16C=ON
    -DGGML_AVX512=ON -DGGML_AVX512_VBMI=ON -DGGML_AVX512_VNNI=ON -DGGML_AVX512_BF16=ON)
fi
MODELS=$PEERS/models
RES=$PEERS/results
RDEPTH=${RDEPTH:-$ROOT/build/tools/rdepth}   # env RDEPTH=... benchmarks another rdepth build
BENCH=$BLD/bin/llama-bench
QUANT=$BLD/bin/llama-quantize
BASE=$MODELS/dense-huginn-mini

[[ -x $PY ]] || die "$PY not found (apt-get install python3 python3-numpy)"
"$PY" -c 'import numpy' 2>/dev/null || die "$PY has no numpy (apt-get install python3-numpy)"
[[ -x $RDEPTH ]] || die "$RDEPTH not built (cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release && ninja -C build rdepth)"
mkdir -p "$PEERS" "$MODELS" "$RES"
T0=$SECONDS

# 1. Source: the npm tarball (no install scripts, no dependencies), checked against the pinned
#    integrity, and the git bundle inside it cloned at the pinned commit.
if [[ $SKIP_BUILD == 0 && ( $REBUILD == 1 || ! -f $SRC/CMakeLists.txt ) ]]; then
  command -v npm >/dev/null || die "npm not found (apt-get install npm)"
  log "fetching node-llama-cpp@$NLC_VERSION with npm"
  rm -rf "$PEERS/npm" "$SRC" && mkdir -p "$PEERS/npm"
  (cd "$PEERS/npm" && npm pack --silent "node-llama-cpp@$NLC_VERSION" >/dev/null) || die "npm pack node-llama-cpp@$NLC_VERSION failed"
  TGZ=$PEERS/npm/node-llama-cpp-$NLC_VERSION.tgz
  GOT="sha512-$(openssl dgst -sha512 -binary "$TGZ" | base64 -w0)"
  [[ $GOT == "$NLC_INTEGRITY" ]] || die "$TGZ integrity $GOT, expected $NLC_INTEGRITY"
  tar -xzf "$TGZ" -C "$PEERS/npm" package/package.json package/llama/llama.cpp.info.json package/llama/gitRelease.bundle \
    || die "node-llama-cpp@$NLC_VERSION carries no llama/gitRelease.bundle"
  git clone --quiet "$PEERS/npm/package/llama/gitRelease.bundle" "$SRC" 2>/dev/null || die "cannot clone the llama.cpp bundle"
  git -C "$SRC" -c advice.detachedHead=false checkout --quiet "$LLAMA_COMMIT" || die "bundle lacks commit $LLAMA_COMMIT"
fi
[[ -f $SRC/CMakeLists.txt ]] || die "no llama.cpp source in $SRC (run without --skip-build)"
LLAMA_TAG=$(sed -n 's/.*"tag": *"\([^"]*\)".*/\1/p' "$PEERS/npm/package/llama/llama.cpp.info.json")

# 2. Build only llama-bench and llama-quantize: Release, CPU only, -march=native (or AVX-512
#    without AMX: --no-amx), static, 2 jobs.
if [[ $SKIP_BUILD == 0 && ( $REBUILD == 1 || ! -x $BENCH || ! -x $QUANT ) ]]; then
  log "building llama.cpp $LLAMA_TAG (${LLAMA_COMMIT:0:7}): llama-bench, llama-quantize with $JOBS jobs"
  cmake -S "$SRC" -B "$BLD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF \
    "${ISA_FLAGS[@]}" -DGGML_CUDA=OFF -DGGML_VULKAN=OFF -DGGML_METAL=OFF -DLLAMA_OPENSSL=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF \
    >"$PEERS/cmake.log" 2>&1 || die "llama.cpp cmake failed, see $PEERS/cmake.log"
  ninja -C "$BLD" -j "$JOBS" llama-bench llama-quantize >"$PEERS/ninja.log" 2>&1 \
    || die "llama.cpp build failed, see $PEERS/ninja.log"
fi
[[ -x $BENCH && -x $QUANT ]] || die "no llama-bench/llama-quantize in $BLD/bin (run without --skip-build)"
BUILD_S=$((SECONDS - T0))

# 3. Models: BF16 written with llama.cpp's gguf-py from the source tree, then Q8_0 and Q4_0
#    (--pure: every matrix, the tied embedding/head too, in the one type).
if [[ $SKIP_BUILD == 0 && ( $REBUILD == 1 || ! -f $BASE-bf16.gguf ) ]]; then
  log "writing $BASE-bf16.gguf (about 4.3 GB)"
  rm -f "$BASE"-*.gguf
  PYTHONPATH=$SRC/gguf-py "$PY" "$HERE/make_dense_llama_gguf.py" "$BASE-bf16.gguf.tmp" && mv "$BASE-bf16.gguf.tmp" "$BASE-bf16.gguf"
fi
for q in q8_0 q4_0; do
  if [[ $SKIP_BUILD == 0 && ! -f $BASE-$q.gguf ]]; then
    log "quantizing to ${q^^}"
    "$QUANT" --pure "$BASE-bf16.gguf" "$BASE-$q.gguf.tmp" "${q^^}" "$THREADS" >"$PEERS/quantize-$q.log" 2>&1 \
      || die "llama-quantize ${q^^} failed, see $PEERS/quantize-$q.log"
    mv "$BASE-$q.gguf.tmp" "$BASE-$q.gguf"
  fi
  [[ -f $BASE-$q.gguf ]] || die "missing $BASE-$q.gguf (run without --skip-build)"
done
MODELS_S=$((SECONDS - T0 - BUILD_S))
[[ $PREPARE_ONLY == 1 ]] && { log "prepared in $((SECONDS - T0)) s"; exit 0; }

# 4. Benchmarks, one at a time: llama-bench for BF16 / Q8_0 / Q4_0, rdepth for bf16 / int8 / q4.
#    Other processes on the CPUs lower every number: measure the share of CPU time that is not
#    this script's (its children's) before and during the runs, and say so.
ticks() {  # busy and total jiffies of all CPUs, and this script's children's CPU jiffies
  local st; read -ra st < "/proc/$$/stat"
  awk -v own=$((st[15] + st[16])) '/^cpu /{ b = $2 + $3 + $4 + $7 + $8 + $9; print b, b + $5 + $6, own }' /proc/stat
}
other_percent() {  # args: ticks at the start, ticks now
  awk -v a="$1" -v b="$2" 'BEGIN { split(a, x, " "); split(b, y, " "); t = y[2] - x[2];
    printf "%d", (t > 0 ? 100 * ((y[1] - x[1]) - (y[3] - x[3])) / t : 0) }'
}
S=$(ticks); sleep 2; BUSY=$(other_percent "$S" "$(ticks)")
[[ $BUSY -lt 10 ]] || log "warning: other work keeps the CPUs ${BUSY}% busy; the numbers will be low"
rm -f "$RES"/*.json
T1=$SECONDS S=$(ticks)
for q in bf16 q8_0 q4_0; do
  log "llama-bench ${q^^}: -t $THREADS -p 64,128 -n $GEN -r $REPS"
  "$BENCH" -m "$BASE-$q.gguf" -t "$THREADS" -p 64,128 -n "$GEN" -r "$REPS" -o json \
    >"$RES/llama-$q.json" 2>"$RES/llama-$q.log" || die "llama-bench ${q^^} failed, see $RES/llama-$q.log"
done
for w in bf16 int8 q4; do
  for p in 64 128; do
    log "rdepth bench --weights $w --prompt $p --gen $GEN"
    if ! "$RDEPTH" bench --shape huginn-mini --weights "$w" --steps "$STEPS" --threads "$THREADS" \
        --prompt "$p" --gen "$GEN" --json >"$RES/rdepth-$w-$p.json" 2>"$RES/rdepth-$w-$p.log"; then
      [[ $w == q4 ]] || die "rdepth bench --weights $w failed, see $RES/rdepth-$w-$p.log"
      log "rdepth rejects --weights q4 ($(head -c 200 "$RES/rdepth-$w-$p.log")): n/a"
      rm -f "$RES/rdepth-$w-$p.json"
    fi
  done
done
BENCH_S=$((SECONDS - T1)) OTHER=$(other_percent "$S" "$(ticks)")
[[ $OTHER -lt 10 ]] || log "warning: other work took ${OTHER}% of the CPUs during the benchmarks; rerun on an idle machine"

cat >"$RES/meta.json" <<EOF
{"node_llama_cpp": "$NLC_VERSION", "llama_cpp_tag": "$LLAMA_TAG", "llama_cpp_commit": "$LLAMA_COMMIT",
 "rdepth_commit": "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)",
 "cpu": "$(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -1)",
 "llama_cpp_amx": $([[ $NO_AMX == 1 ]] && echo false || echo '"as -march=native"'),
 "native_avx512bf16": $(cc -march=native -dM -E - </dev/null | grep -q __AVX512BF16__ && echo true || echo false),
 "other_cpu_percent_before": $BUSY, "other_cpu_percent_during": $OTHER, "threads": $THREADS, "steps": $STEPS, "gen": $GEN, "reps": $REPS, "quantize": "llama-quantize --pure",
 "seconds": {"build": $BUILD_S, "models": $MODELS_S, "bench": $BENCH_S}}
EOF
"$PY" "$HERE/peer_table.py" "$RES"
log "done in $((SECONDS - T0)) s; results in $RES"
