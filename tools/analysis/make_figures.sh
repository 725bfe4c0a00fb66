#!/usr/bin/env bash
# Draws the README's figures from the shipped model: accuracy against r on the held-out and harder
# splits (rdepth eval --plot, SVG) and the latent dynamics of one held-out prompt (rdepth trace
# --json --states, then plot_latents.py, PNG). Needs a build of rdepth (bash scripts/demo.sh makes
# one) and Debian's python3-matplotlib.
#
#   bash tools/analysis/make_figures.sh [MODEL_DIR] [OUT_DIR]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
model=${1:-models/arithmetic}
out=${2:-docs/figures}
python=${PYTHON:-/usr/bin/python3}
rdepth=./build/tools/rdepth
mkdir -p "$out"
cmake --build build --target rdepth >/dev/null

$rdepth eval --model "$model" --tasks "$model/tasks/heldout.jsonl,$model/tasks/harder.jsonl" \
  --steps 1,2,3,4,6,8,12,16,24,32,64 --limit 500 --plot "$out/accuracy.svg"

# The first held-out problem: its tokens' convergence, and the orbits of the question's tokens.
prompt=$(head -n 1 "$model/tasks/heldout.jsonl" | sed 's/^{"prompt": "\([^"]*\)".*/\1/')
trace=$(mktemp)
trap 'rm -f "$trace"' EXIT
$rdepth trace --model "$model" --prompt "$prompt" --steps 32 --json --states >"$trace"
length=$(( ${#prompt} + 1 ))  # BOS, then one token per character
"$python" tools/analysis/plot_latents.py "$trace" --out "$out/latents.png" \
  --tokens "$((length - 3)),$((length - 2)),$((length - 1))" \
  --title "$model, r = 32: $prompt"
echo "wrote $out/accuracy.svg and $out/latents.png"
