#!/usr/bin/env bash
# Inference side by side (issue 4): the reference model on one synthetic study's vertebra
# patches, through spinewatch's Rust path (Model::predict: ort session, batching, output
# extraction) and through Python onnxruntime (InferenceSession.run per batch), same
# library version, input, batch size and threads; preprocessing excluded. Prints one
# JSON line per run and a table with the Rust overhead against Python.
#
#   benches/e2e/infer_vs_python.sh              # CPU provider, threads 1 and 2
#   PROVIDER=cuda benches/e2e/infer_vs_python.sh  # on a GPU machine with onnxruntime-gpu
#                                                 # (Rust side only: the Python wheel here
#                                                 # is the CPU one)
set -euo pipefail
cd "$(dirname "$0")/../.."

PROVIDER=${PROVIDER:-cpu}
REPEAT=${REPEAT:-200}
PY=.venv/bin/python
MANIFEST=models/vertebra-fracture/manifest.toml
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

cargo build --release --locked -p spinewatch -p spinewatch-infer --example predict_timing >&2
# One held-out study's patches, made by the serving code.
./target/release/spinewatch dataset --split eval --n 1 --seed 20261121 --out "$WORK/study" >&2
INPUT="$WORK/study/patches.npy"

for threads in 1 2; do
    for batch in 1 4 8 32; do
        rust=$(./target/release/examples/predict_timing "$MANIFEST" "$INPUT" --batch "$batch" \
            --threads "$threads" --repeat "$REPEAT" --provider "$PROVIDER")
        echo "$rust"
        if [ "$PROVIDER" = cpu ]; then
            py=$("$PY" crates/testkit/py/ort_timing.py models/vertebra-fracture/model.onnx "$INPUT" \
                patches --batch "$batch" --threads "$threads" --repeat "$REPEAT")
            echo "$py"
        fi
    done
done | tee "$WORK/runs.jsonl"

"$PY" - "$WORK/runs.jsonl" <<'PYEOF'
import json, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
rust = {(r["threads"], r["batch"]): r for r in runs if r["impl"] == "rust"}
py = {(r["threads"], r["batch"]): r for r in runs if r["impl"] == "python"}
print()
print("| threads | batch | patches | Rust ms/study | Python ms/study | Rust overhead | studies/min (Rust) |")
print("|---|---|---|---|---|---|---|")
for k in sorted(rust):
    r = rust[k]
    p = py.get(k)
    over = f"{(r['median_s'] / p['median_s'] - 1) * 100:+.1f} %" if p else "-"
    pms = f"{p['median_s'] * 1e3:.2f}" if p else "-"
    print(f"| {k[0]} | {k[1]} | {r['patches']} | {r['median_s'] * 1e3:.2f} | {pms} | {over} | {60 / r['median_s']:.0f} |")
PYEOF
