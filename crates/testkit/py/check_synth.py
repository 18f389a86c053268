#!/usr/bin/env python3
"""Reads a synthetic study with pydicom (an independent DICOM reader) and reports what it
sees as JSON on stdout: per series its files, transfer syntax, geometry (sorted by the
projection of ImagePositionPatient on the slice normal) and a hash of the decoded pixels;
for the main axial series the HU pydicom finds at each ground-truth vertebra centre,
located with pydicom's own geometry.

Usage: check_synth.py STUDY_DIR
"""
import glob
import hashlib
import json
import os
import sys

import numpy as np
import pydicom


def series_report(files):
    dss = [pydicom.dcmread(f) for f in files]
    first = dss[0]
    out = {
        "files": len(dss),
        "sop_class_uid": str(first.SOPClassUID),
        "transfer_syntax_uid": str(first.file_meta.TransferSyntaxUID),
        "series_instance_uid": str(first.SeriesInstanceUID),
        "study_instance_uid": str(first.StudyInstanceUID),
        "rows": int(first.Rows),
        "columns": int(first.Columns),
        "image_type": list(first.ImageType),
    }
    if "ImageOrientationPatient" not in first or len(dss) < 2:
        arr = first.pixel_array
        out["pixel_sha256"] = hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest()
        return out, None
    iop = np.array([float(v) for v in first.ImageOrientationPatient])
    row, col = iop[:3], iop[3:]
    normal = np.cross(row, col)
    dss.sort(key=lambda d: float(np.dot(normal, [float(v) for v in d.ImagePositionPatient])))
    pos = np.array([[float(v) for v in d.ImagePositionPatient] for d in dss])
    along = pos @ normal
    steps = np.diff(along)
    ps = [float(v) for v in first.PixelSpacing]
    stack = np.stack([d.pixel_array for d in dss])
    hu = stack.astype(np.float64) * float(first.RescaleSlope) + float(first.RescaleIntercept)
    out.update({
        "pixel_spacing": ps,
        "orientation": iop.tolist(),
        "first_position": pos[0].tolist(),
        "last_position": pos[-1].tolist(),
        "step_along_normal_min": float(steps.min()),
        "step_along_normal_max": float(steps.max()),
        "slice_thickness": float(first.SliceThickness),
        "pixel_sha256": hashlib.sha256(np.ascontiguousarray(stack).tobytes()).hexdigest(),
        "pixel_padding_value": int(first.PixelPaddingValue) if "PixelPaddingValue" in first else None,
        "patient_age": str(first.get("PatientAge", "")),
        "patient_birth_date": str(first.get("PatientBirthDate", "")),
        "study_date": str(first.StudyDate),
    })
    # Voxel index (i, j, k) -> patient: p = pos0 + i*row*ps[1] + j*col*ps[0] + k*step
    step = (pos[-1] - pos[0]) / (len(dss) - 1)
    m = np.column_stack([row * ps[1], col * ps[0], step])
    return out, (pos[0], np.linalg.inv(m), hu)


def main():
    study = sys.argv[1]
    truth = json.load(open(os.path.join(study, "ground_truth.json")))
    report = {"series": {}}
    for s in truth["series"]:
        files = sorted(glob.glob(os.path.join(study, s["directory"], "*.dcm")))
        rep, geo = series_report(files)
        if s["role"] == "axial" and geo is not None:
            origin, inv, hu = geo
            samples = {}
            for v in truth["vertebrae"]:
                if not v["in_field_of_view"]:
                    continue
                i, j, k = inv @ (np.array(v["centre_mm"]) - origin)
                i, j, k = int(round(i)), int(round(j)), int(round(k))
                inside = 0 <= k < hu.shape[0] and 0 <= j < hu.shape[1] and 0 <= i < hu.shape[2]
                samples[v["label"]] = float(hu[k, j, i]) if inside else None
            rep["hu_at_vertebra_centres"] = samples
            rep["hu_corner"] = float(hu[hu.shape[0] // 2, 0, 0])
        report["series"][s["role"]] = rep
    json.dump(report, sys.stdout)


if __name__ == "__main__":
    main()
