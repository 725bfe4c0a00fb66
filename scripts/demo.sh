#!/usr/bin/env bash
# The demo: builds the rdepth tool and shows the shipped model (models/variable_chains, trained by
# tools/train/train.py) answering held-out problems that need depth, at r = 1 and at its training
# mean r = 8 core iterations, then its accuracy against r on held-out and harder problems.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/setup_debian.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build build -j2 --target rdepth

model=models/variable_chains
rdepth=./build/tools/rdepth
cat <<TEXT

== recurrent_depth demo: $model ==
Each prompt chains variables modulo 10 ("b=a+4" adds 4 to a); the model answers the question
after the '?'. Following a chain takes one step per link, and a recurrent-depth model takes its
steps in latent space: the same weights, iterated r times. At r = 1 it guesses; at r = 8 (its
training mean) it follows the chain.

TEXT
$rdepth eval --model "$model" --tasks "$model/tasks/heldout.jsonl" --steps 1,8 --limit 6 --show 6 \
  | sed -n '2,8p'

echo
echo "One answer generated from text (rdepth generate --prompt ... --steps 8):"
prompt="x=3;k=7;b=x+4;q=k+1;c=b+2;c?"
printf '  %s' "$prompt"
$rdepth generate --model "$model" --prompt "$prompt" --max-new-tokens 1 --steps 8 2>/dev/null

echo
echo "Accuracy against r on 200 held-out problems and 200 harder ones (longer chains than any"
echo "in training: more iterations than in training are needed):"
$rdepth eval --model "$model" --tasks "$model/tasks/heldout.jsonl,$model/tasks/harder.jsonl" \
  --steps 1,2,4,8,16,32 --limit 200
