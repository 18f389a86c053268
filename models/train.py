#!/usr/bin/env python3
"""Trains spinewatch's reference vertebral fracture model and exports it to ONNX.

Input: a folder written by `spinewatch dataset` (patches.npy: float32 [n, 1, rows, cols],
the model input exactly as spinewatch computes it; labels.jsonl: the matched ground truth
of each patch, same order). The preprocessing is spinewatch's own Rust code: nothing here
re-implements it.

Output (in --out): model.onnx (opset 17, dynamic batch), manifest.toml (names, shapes,
preprocessing, thresholds, sha256 of the ONNX file) and metrics.json (validation).

The network: four conv blocks (3x3 conv, batch norm, ReLU, 2x2 max pool) to 64 channels,
global average pooling, then two heads: the fracture logit (sigmoid: probability that the
vertebra has a Genant grade 1-3 fracture) and four grade logits (softmax: grade 0-3).

Reproducible: every random choice comes from --seed (torch, numpy), on CPU, with
deterministic algorithms; the same dataset and seed give the same weights.

Usage: train.py --data DIR --out DIR [--seed S] [--epochs N]
"""

import argparse
import hashlib
import json
import pathlib
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

INPUT_NAME = "patches"
OUTPUT_PROBABILITY = "fracture_probability"
OUTPUT_GRADES = "grade_probabilities"
OPSET = 17
MODEL_NAME = "spinewatch-vertebral-fracture"
MODEL_VERSION = "1.0.0"
# Share of studies (by seed) held out for validation and the operating threshold.
VALIDATION_SHARE = 0.15
# Study-level specificity the operating threshold is chosen for on validation studies.
TARGET_SPECIFICITY = 0.90
# ... and the study-level sensitivity it should keep.
TARGET_SENSITIVITY = 0.95


def logit(p):
    p = min(max(float(p), 1e-6), 1 - 1e-6)
    return float(np.log(p / (1 - p)))


def operating_threshold(neg_scores, pos_scores):
    """The study-level threshold from sorted validation scores (a study's largest vertebra
    probability). The lowest threshold with TARGET_SPECIFICITY on the negatives is the
    floor; where the positives' TARGET_SENSITIVITY quantile lies above it (the synthetic
    validation set is often separable), the threshold sits halfway between the two in
    logit space, so that a shift in the scores of unseen data (other scanners, the
    evaluation's parameter ranges) moves neither class across it as easily."""
    if not len(neg_scores):
        return 0.5
    k = int(np.ceil(TARGET_SPECIFICITY * len(neg_scores))) - 1
    floor = float(neg_scores[min(k, len(neg_scores) - 1)]) + 1e-4
    if len(pos_scores):
        j = int(np.floor((1 - TARGET_SENSITIVITY) * len(pos_scores)))
        keep = float(pos_scores[min(j, len(pos_scores) - 1)])
        if keep > floor:
            mid = (logit(floor) + logit(keep)) / 2
            floor = 1 / (1 + np.exp(-mid))
    return float(min(0.99, max(0.05, floor)))


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        chans = [1, 16, 32, 48, 64]
        self.blocks = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(a, b, 3, padding=1, bias=False),
                nn.BatchNorm2d(b),
                nn.ReLU(inplace=True),
                nn.Conv2d(b, b, 3, padding=1, bias=False),
                nn.BatchNorm2d(b),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            )
            for a, b in zip(chans[:-1], chans[1:])
        )
        self.head = nn.Sequential(nn.Dropout(0.2), nn.Linear(64, 32), nn.ReLU(inplace=True))
        self.fracture = nn.Linear(32, 1)
        self.grade = nn.Linear(32, 4)

    def logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        for b in self.blocks:
            x = b(x)
        x = x.mean(dim=(2, 3))
        x = self.head(x)
        return self.fracture(x), self.grade(x)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f, g = self.logits(x)
        return torch.sigmoid(f), torch.softmax(g, dim=1)


def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Shifts of up to 3 px (localisation error), cranio-caudal flips, window
    scale/offset (HU calibration, kernels) and noise."""
    n = x.shape[0]
    out = torch.empty_like(x)
    pad = F.pad(x, (3, 3, 3, 3), mode="replicate")
    dy = torch.randint(0, 7, (n,), generator=gen)
    dx = torch.randint(0, 7, (n,), generator=gen)
    h, w = x.shape[2], x.shape[3]
    for i in range(n):
        out[i] = pad[i, :, dy[i] : dy[i] + h, dx[i] : dx[i] + w]
    flip = torch.rand(n, generator=gen) < 0.5
    out[flip] = out[flip].flip(2)
    scale = 1.0 + (torch.rand(n, 1, 1, 1, generator=gen) - 0.5) * 0.2
    offset = (torch.rand(n, 1, 1, 1, generator=gen) - 0.5) * 0.06
    noise = torch.randn(out.shape, generator=gen) * 0.01
    return (out * scale + offset + noise).clamp(0.0, 1.0)


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    pos, neg = scores[labels], scores[~labels]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    order = np.argsort(np.concatenate([pos, neg]), kind="mergesort")
    ranks = np.empty(len(order))
    ranks[order] = np.arange(1, len(order) + 1)
    # Midranks for ties.
    allv = np.concatenate([pos, neg])
    for v in np.unique(allv):
        idx = allv == v
        if idx.sum() > 1:
            ranks[idx] = ranks[idx].mean()
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True, type=pathlib.Path)
    ap.add_argument("--out", required=True, type=pathlib.Path)
    ap.add_argument("--seed", type=int, default=20261121)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--batch", type=int, default=64)
    args = ap.parse_args()

    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(2)
    gen = torch.Generator().manual_seed(args.seed)

    x = np.load(args.data / "patches.npy")
    labels = [json.loads(l) for l in open(args.data / "labels.jsonl")]
    assert len(labels) == len(x), (len(labels), len(x))
    fractured = np.array([l["fractured"] for l in labels])
    grade = np.array([l["grade"] for l in labels])
    seeds = np.array([l["seed"] for l in labels])
    uniq = np.unique(seeds)
    rng = np.random.default_rng(args.seed)
    val_seeds = set(rng.choice(uniq, size=max(1, int(len(uniq) * VALIDATION_SHARE)), replace=False).tolist())
    val = np.array([s in val_seeds for s in seeds])
    tr = ~val
    print(f"{len(x)} patches, {fractured.sum()} fractured; {tr.sum()} train / {val.sum()} validation patches")

    xt = torch.from_numpy(x[tr])
    ft = torch.from_numpy(fractured[tr].astype(np.float32))
    gt = torch.from_numpy(grade[tr].astype(np.int64))
    pos_weight = torch.tensor((1 - fractured[tr].mean()) / max(fractured[tr].mean(), 1e-6))

    model = Net()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=3e-3, total_steps=args.epochs * ((len(xt) + args.batch - 1) // args.batch)
    )
    started = time.time()
    for epoch in range(args.epochs):
        model.train()
        perm = torch.randperm(len(xt), generator=gen)
        total = 0.0
        for i in range(0, len(xt), args.batch):
            idx = perm[i : i + args.batch]
            xb = augment(xt[idx], gen)
            f, g = model.logits(xb)
            loss = F.binary_cross_entropy_with_logits(
                f.squeeze(1), ft[idx], pos_weight=pos_weight
            ) + 0.5 * F.cross_entropy(g, gt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        vp = predict(model, x[val])[0]
        print(
            f"epoch {epoch + 1}: loss {total / len(xt):.4f}, validation vertebra AUC "
            f"{auc(vp, fractured[val]):.4f} ({time.time() - started:.0f} s)"
        )

    # Operating point on validation studies: a study is flagged when its most likely
    # vertebra reaches the threshold.
    model.eval()
    vp, vg = predict(model, x[val])
    study_max, study_pos, study_severe = {}, {}, {}
    for p, l, s in zip(vp, np.array(labels, dtype=object)[val], seeds[val]):
        study_max[s] = max(study_max.get(s, 0.0), float(p))
        study_pos[s] = study_pos.get(s, False) or l["fractured"]
        study_severe[s] = study_severe.get(s, False) or l["grade"] >= 2
    keys = sorted(study_max)
    smax = np.array([study_max[k] for k in keys])
    spos = np.array([study_pos[k] for k in keys])
    threshold = operating_threshold(np.sort(smax[~spos]), np.sort(smax[spos]))
    flagged = smax >= threshold
    metrics = {
        "validation_studies": len(keys),
        "validation_vertebrae": int(val.sum()),
        "vertebra_auc": auc(vp, fractured[val]),
        "study_auc": auc(smax, spos),
        "threshold": threshold,
        "study_sensitivity": float(flagged[spos].mean()) if spos.any() else None,
        "study_specificity": float((~flagged[~spos]).mean()) if (~spos).any() else None,
        "train_seconds": time.time() - started,
        "seed": args.seed,
        "epochs": args.epochs,
    }
    print(json.dumps(metrics, indent=2))

    args.out.mkdir(parents=True, exist_ok=True)
    onnx_path = args.out / "model.onnx"
    dummy = torch.from_numpy(x[:2])
    torch.onnx.export(
        model,
        (dummy,),
        str(onnx_path),
        input_names=[INPUT_NAME],
        output_names=[OUTPUT_PROBABILITY, OUTPUT_GRADES],
        dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_PROBABILITY: {0: "batch"}, OUTPUT_GRADES: {0: "batch"}},
        opset_version=OPSET,
        dynamo=False,
    )
    sha = hashlib.sha256(onnx_path.read_bytes()).hexdigest()
    rows, cols = x.shape[2], x.shape[3]
    manifest = f"""# spinewatch model manifest: what the ONNX file expects and means.
# Written by models/train.py; spinewatch checks the ONNX file against it before use.

[model]
name = "{MODEL_NAME}"
version = "{MODEL_VERSION}"
file = "model.onnx"
sha256 = "{sha}"
opset = {OPSET}
intended_use = "triage of CT studies for review by a Fracture Liaison Service nurse; not a diagnosis"

[input]
name = "{INPUT_NAME}"
# [batch, channel, rows (cranial first), columns (anterior first)]; -1: any batch size.
shape = [-1, 1, {rows}, {cols}]
dtype = "float32"
# value = clamp((HU - window_hu[0]) / (window_hu[1] - window_hu[0]), 0, 1)
normalisation = "window"

# The sagittal reformat the patches are cut from (spinewatch_volume::reformat).
[input.reformat]
spacing_mm = 1.0
width_mm = 120.0
slab_mm = 5.0
patch_size = [{rows}, {cols}]
window_hu = [-200.0, 1300.0]

[[outputs]]
name = "{OUTPUT_PROBABILITY}"
shape = [-1, 1]
dtype = "float32"
meaning = "probability that the vertebra has a Genant grade 1-3 fracture"

[[outputs]]
name = "{OUTPUT_GRADES}"
shape = [-1, 4]
dtype = "float32"
meaning = "probabilities of Genant grades 0, 1, 2, 3"

[thresholds]
# A vertebra (and its study) is flagged at this probability or more: chosen on
# validation studies for a study-level specificity of at least {TARGET_SPECIFICITY}, halfway
# (in logit space) to where a sensitivity of {TARGET_SENSITIVITY} would need it.
vertebra = {threshold:.4f}

[training]
seed = {args.seed}
epochs = {args.epochs}
data = "synthetic only: spinewatch dataset --split train, study seeds {int(uniq.min())}-{int(uniq.max())}"
studies = {len(uniq)}
patches = {len(x)}
fractured_patches = {int(fractured.sum())}
command = "models/train.sh"
"""
    (args.out / "manifest.toml").write_text(manifest)
    (args.out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    print(f"wrote {onnx_path} (sha256 {sha})")


def predict(model: nn.Module, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    model.eval()
    out_p, out_g = [], []
    with torch.no_grad():
        for i in range(0, len(x), 256):
            p, g = model(torch.from_numpy(x[i : i + 256]))
            out_p.append(p.squeeze(1).numpy())
            out_g.append(g.numpy())
    model.train()
    if not out_p:
        return np.zeros(0), np.zeros((0, 4))
    return np.concatenate(out_p), np.concatenate(out_g)


if __name__ == "__main__":
    main()
