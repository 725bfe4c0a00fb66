#!/usr/bin/env bash
# Retrains the shipped model (models/arithmetic) from its seed with the recipe and settings
# of its model card, then writes its reference vectors and model card. Installs Debian's
# python3-torch (with OpenBLAS: the reference BLAS it otherwise uses is 10x slower) if missing.
# One thread: as fast as two for a model this small, and bit-for-bit repeatable.
#
#   bash tools/train/train_shipped_model.sh [OUT_DIR]     (default: models/arithmetic)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
out=${1:-models/arithmetic}

missing=()
for p in python3-torch python3-numpy python3-matplotlib libopenblas0-pthread; do
  dpkg-query -W -f='${db:Status-Status}\n' "$p" 2>/dev/null | grep -qx installed || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"
fi

export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 OMP_WAIT_POLICY=passive
/usr/bin/python3 tools/train/train.py --out "$out" --task arithmetic --steps 1900 --seed 1 \
  --threads 1 --lr 2e-3 --curriculum 0.5 --intermediate-targets --eval-every 100
/usr/bin/python3 tools/train/dump_reference.py "$out"
/usr/bin/python3 tools/train/model_card.py "$out"
