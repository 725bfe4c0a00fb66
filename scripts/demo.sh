#!/usr/bin/env bash
# The demo: builds the rdepth tool and shows the shipped model (models/arithmetic, trained by
# tools/train/train.py) answering held-out problems of its task at r = 1 and at its training mean
# r = 8 core iterations, then its accuracy against r on held-out and harder problems.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

HIP=0 scripts/setup_debian.sh  # the demo needs no HIP compiler
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build build -j2 --target rdepth

model=models/arithmetic
rdepth=./build/tools/rdepth
cat <<TEXT

== recurrent_depth demo: $model ==
Each prompt is a digit followed by operations, applied left to right modulo 10 ("7+3*9+4=" is
((7+3)*9+4) mod 10 = 4). Every operation needs the result of the one before it, so a fixed stack
of layers can apply only a few; a recurrent-depth model iterates the same core r times in latent
space and can apply more: the model card ($model/README.md) gives its accuracy against r.

TEXT
$rdepth eval --model "$model" --tasks "$model/tasks/heldout.jsonl" --steps 1,8 --limit 6 --show 6 \
  | sed -n '2,8p'

echo
echo "Answers generated from text at r = 1, 4 and 8 (rdepth generate --prompt ... --steps r):"
for problem in "7+3*9+4=:4" "2*7+5*3+8=:5" "2*7+5*3+8+6*9=:9" "1+2*3+4*7+5*9+6=:0"; do
  prompt=${problem%:*}
  printf '  %-18s (expected %s)' "$prompt" "${problem##*:}"
  for steps in 1 4 8; do
    printf '  r=%s: %s' "$steps" \
      "$($rdepth generate --model "$model" --prompt "$prompt" --max-new-tokens 1 --steps "$steps" 2>/dev/null)"
  done
  echo
done

echo
echo "Accuracy against r on 200 held-out problems and 200 harder ones (more operations than any"
echo "problem in training):"
$rdepth eval --model "$model" --tasks "$model/tasks/heldout.jsonl,$model/tasks/harder.jsonl" \
  --steps 1,2,4,8,16,32 --limit 200
