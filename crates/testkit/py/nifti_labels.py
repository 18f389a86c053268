#!/usr/bin/env python3
"""Reference lookup in a NIfTI label map (TotalSegmentator's vertebra labels) for the
spine tests: reads the map with nibabel, which applies the file's affine, and answers in
the DICOM patient frame (LPS, mm).

Prints one JSON object on stdout:
  "labels":  the label value at each point given (nearest voxel; null outside the map),
  "centre":  for --label N, the centroid of that label's voxels, LPS mm, and
  "z_range": the lowest and highest voxel centre z of that label, LPS mm.

Usage:
  nifti_labels.py LABELS.nii.gz [--label N] [--point X Y Z]...
"""

import argparse
import json

import nibabel
import numpy as np

# NIfTI world coordinates are RAS; DICOM's patient frame is LPS.
RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("path")
    ap.add_argument("--label", type=int)
    ap.add_argument("--point", type=float, nargs=3, action="append", default=[])
    args = ap.parse_args()
    img = nibabel.load(args.path)
    data = np.asarray(img.dataobj)
    affine = img.affine
    inverse = np.linalg.inv(affine)
    out = {"labels": []}
    for p in args.point:
        ras = RAS_TO_LPS @ np.asarray(p)
        ijk = np.rint((inverse @ np.append(ras, 1.0))[:3]).astype(int)
        inside = all(0 <= ijk[d] < data.shape[d] for d in range(3))
        out["labels"].append(int(data[tuple(ijk)]) if inside else None)
    if args.label is not None:
        idx = np.argwhere(data == args.label)
        if len(idx):
            world = (affine[:3, :3] @ idx.T).T + affine[:3, 3]
            lps = world @ RAS_TO_LPS.T
            out["centre"] = lps.mean(axis=0).tolist()
            out["z_range"] = [float(lps[:, 2].min()), float(lps[:, 2].max())]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
