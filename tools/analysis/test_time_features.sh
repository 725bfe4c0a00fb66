#!/usr/bin/env bash
# The paper's test-time features on the shipped model, measured with rdepth: per-token early exit
# (each criterion at a few thresholds, at most 2x the training mean: accuracy and mean iterations
# per answer token), the compressed KV cache (compress-s4) against the full one, and
# self-speculative decoding (acceptance and speed against plain greedy decoding).
#
#   bash tools/analysis/test_time_features.sh [MODEL_DIR] [PROBLEMS]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
model=${1:-models/arithmetic}
limit=${2:-500}
rdepth=./build/tools/rdepth
tasks="$model/tasks/heldout.jsonl"
cmake --build build --target rdepth >/dev/null
mean=$(sed -n 's/.*"mean_recurrence": *\([0-9]*\).*/\1/p' "$model/config.json")
most=$((2 * mean))

echo "== full depth: r = $mean and r = $most, $limit held-out problems"
$rdepth eval --model "$model" --tasks "$tasks" --limit "$limit" --steps "$mean,$most" | sed -n '2,4p'

echo "== early exit (at most r = $most): accuracy / mean iterations per answer token"
for spec in "kl 1e-2 1e-3 1e-4" "minp-kl 1e-2 1e-3 1e-4" "entropy-diff 1e-2 1e-3 1e-4" \
            "latent-diff 0.1 0.03 0.01" "cosine 1e-2 1e-3 1e-4" "argmax-stability 2 3 5"; do
  set -- $spec
  criterion=$1
  shift
  for threshold in "$@"; do
    printf '%-17s %-7s' "$criterion" "$threshold"
    $rdepth eval --model "$model" --tasks "$tasks" --limit "$limit" --steps "$most" \
      --exit "$criterion" --exit-threshold "$threshold" | sed -n '3p'
  done
done

echo "== KV cache: full against compress-s4 and latest-m4-compress-s4 at r = $mean"
for cache in full compress-s4 latest-m4-compress-s4; do
  printf '%-22s' "$cache"
  $rdepth eval --model "$model" --tasks "$tasks" --limit "$limit" --steps "$mean" \
    --cache "$cache" | sed -n '3p'
done

echo "== self-speculative decoding at r = $mean: 64 tokens after a held-out prompt"
prompt=$(head -n 1 "$tasks" | sed 's/^{"prompt": "\([^"]*\)".*/\1/')
for flags in "" "--draft-steps 2 --lookahead 4" "--draft-steps 4 --lookahead 8"; do
  echo "-- ${flags:-plain greedy}"
  # shellcheck disable=SC2086
  $rdepth generate --model "$model" --prompt "$prompt" --max-new-tokens 64 --steps "$mean" \
    --threads 1 $flags 2>&1 >/dev/null | sed 's/^rdepth generate: //'
done
