#!/usr/bin/env bash
# The demo: builds the rdepth tool and shows the shipped model (models/variable_chains, trained by
# tools/train/train.py) answering held-out problems of its task at r = 1 and at its training mean
# r = 8 core iterations, then its accuracy against r on held-out and harder problems.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

HIP=0 scripts/setup_debian.sh  # the demo needs no HIP compiler
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build build -j2 --target rdepth

model=models/variable_chains
rdepth=./build/tools/rdepth
cat <<TEXT

== recurrent_depth demo: $model ==
Each prompt defines chains of variables ("b=a" gives b the value of a) and asks for the end of
one chain after the '?'. Following a chain takes one step per link; a recurrent-depth model can
take its steps in latent space, the same weights iterated r times. The model card
($model/README.md) says how far this model has learned to do so.

TEXT
$rdepth eval --model "$model" --tasks "$model/tasks/heldout.jsonl" --steps 1,8 --limit 6 --show 6 \
  | sed -n '2,8p'

echo
echo "One answer generated from text (rdepth generate --prompt ... --steps 8):"
prompt="x=3;k=7;b=x;q=k;c=b;c?"
printf '  %s  ->  ' "$prompt"
$rdepth generate --model "$model" --prompt "$prompt" --max-new-tokens 1 --steps 8 2>/dev/null

echo
echo "Accuracy against r on 200 held-out problems and 200 harder ones (longer chains than any"
echo "in training):"
$rdepth eval --model "$model" --tasks "$model/tasks/heldout.jsonl,$model/tasks/harder.jsonl" \
  --steps 1,2,4,8,16,32 --limit 200
