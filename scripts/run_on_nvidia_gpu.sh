#!/usr/bin/env bash
# The HIP backend on an NVIDIA GPU, through HIP's NVIDIA platform. Runs, on the machine with the
# GPU, the programs of a build made with
#   cmake -S . -B build-nvidia -G Ninja -DCMAKE_BUILD_TYPE=Release -DRECURRENT_DEPTH_HIP=ON \
#     -DRECURRENT_DEPTH_HIP_PLATFORM=nvidia -DRECURRENT_DEPTH_BUILD_BENCHMARKS=OFF \
#     -DRECURRENT_DEPTH_BUILD_EXAMPLES=OFF -DRECURRENT_DEPTH_INSTALL=OFF
#   cmake --build build-nvidia --target recurrent_depth_hip_tests rdepth
# there or on any machine with nvcc (CUDA's runtime is linked statically: the GPU's machine needs
# only the NVIDIA driver, of CUDA 13 or later for a CUDA 13 build), and, to run them on a machine
# with another distribution, packed with their libraries by scripts/pack_for_gpu_machine.sh
# (build-nvidia-run: the programs start through the packed loader). From the repository root:
#   scripts/run_on_nvidia_gpu.sh [BUILD_DIR (build-nvidia-run)] [OUT_DIR ($OUT, else nvidia-run)]
# It records in OUT_DIR: the GPU and driver (nvidia-smi), the HIP tests (kernels against their
# scalar twins, the model against the reference vectors, batches and long decodes against the CPU
# model, the device probes), rdepth --backend hip against the CPU on the shipped model, and rdepth
# bench --backend hip at huginn-mini and huginn-0125 shapes (bf16 and int8, and q4 at huginn-mini;
# r = 32, a 512-token prompt). Each step has a time limit; the script goes on after a failure and
# exits non-zero if any failed (summary.txt lists them).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

build=${1:-build-nvidia-run}
out=${2:-${OUT:-nvidia-run}}
mkdir -p "$out"
run=()  # how programs start: through the packed loader when there is one
if [[ -x "$build/lib/ld-linux-x86-64.so.2" ]]; then
  run=("$build/lib/ld-linux-x86-64.so.2" --library-path "$build/lib")
fi
rdepth=("${run[@]}" "$build/tools/rdepth")
failed=0

step() {  # step NAME SECONDS COMMAND...: runs COMMAND with a limit, output to OUT/NAME.txt
  local name=$1 limit=$2
  shift 2
  local start=$SECONDS
  timeout "$limit" "$@" >"$out/$name.txt" 2>&1
  local rc=$?
  echo "$name: exit $rc after $((SECONDS - start)) s" | tee -a "$out/summary.txt"
  [[ $rc == 0 ]] || failed=1
}

step gpu 30 nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.memory \
  --format=csv
export RECURRENT_DEPTH_TEST_DATA="$PWD/tests/data" RECURRENT_DEPTH_REQUIRE_GPU=1
step hip_tests 240 "${run[@]}" "$build/tests/hip/recurrent_depth_hip_tests" --durations yes
answer=("${rdepth[@]}" generate --model models/arithmetic --prompt "2*7+5*3+8=" --max-new-tokens 3
  --steps 8 --weights f32 --backend)
step generate_hip 60 "${answer[@]}" hip
step generate_cpu 60 "${answer[@]}" cpu
cmp -s "$out/generate_hip.txt" "$out/generate_cpu.txt" ||
  { echo "generate: --backend hip and cpu differ" | tee -a "$out/summary.txt"; failed=1; }
for run in huginn-mini/bf16 huginn-mini/int8 huginn-mini/q4 huginn-0125/bf16 huginn-0125/int8; do
  shape=${run%/*} weights=${run#*/}
  step "bench_${shape}_${weights}" 150 "${rdepth[@]}" bench --shape "$shape" --weights "$weights" \
    --backend hip --steps 32 --prompt 512 --gen 16 --json
done
exit $failed
