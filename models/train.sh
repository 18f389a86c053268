#!/usr/bin/env bash
# Retrains spinewatch's reference fracture model from nothing, in one seeded command:
# builds spinewatch, writes the training set with `spinewatch dataset` (the same Rust
# preprocessing that serves), trains with PyTorch on CPU and exports the ONNX file, its
# manifest and its validation metrics to models/vertebra-fracture/.
#
#   models/train.sh            # the committed model: 300 studies, seeds 1..300
#   N=400 models/train.sh      # more studies
#
# Runs outside CI: PyTorch from PyPI needs about 6 GB (models/.venv-train, git-ignored).
# About 20 minutes for the data and 7 for training on 2 idle cores.
set -euo pipefail
cd "$(dirname "$0")/.."

N=${N:-300}
SEED=${SEED:-1}
TRAIN_SEED=${TRAIN_SEED:-20261121}
EPOCHS=${EPOCHS:-30}
VENV=models/.venv-train

if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
"$VENV/bin/pip" install --quiet -r models/requirements-train.txt

cargo build --release --locked -p spinewatch
rm -rf models/data/train
./target/release/spinewatch dataset --split train --n "$N" --seed "$SEED" --out models/data/train
"$VENV/bin/python" models/train.py --data models/data/train --out models/vertebra-fracture \
    --seed "$TRAIN_SEED" --epochs "$EPOCHS"
echo "retrained: models/vertebra-fracture/ (run 'spinewatch eval --n 200 --seed 20261121' to measure it)"
