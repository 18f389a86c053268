#!/usr/bin/env python3
"""The reference resampler of issue 3: reads a DICOM series with SimpleITK
(ImageSeriesReader, which orders the slices and applies RescaleSlope/Intercept itself)
and resamples it with ResampleImageFilter, linear interpolation, onto a given grid or onto
an isotropic grid it derives the way spinewatch does (see "Grid" below).

Prints one JSON object on stdout: the input geometry ITK read, the output grid, timings
(read_s, resample_s) and the output pixel type. With --out, writes the output voxels as
raw little-endian values in [z, y, x] order (numpy's C order of GetArrayFromImage).

Usage:
  sitk_resample.py SERIES_DIR --spacing MM [--origin X Y Z --direction D00 .. D22
                   --size NX NY NZ] [--slice-step X Y Z] [--read-type int16|int32]
                   [--out-type float32|int16] [--out FILE] [--threads N]

Grid: --origin/--direction/--size give the output grid exactly (direction as 9 numbers,
row-major, columns = the x, y, z axis directions, LPS, as SetOutputDirection takes it).
Without them the output axes are the input's direction columns (made orthonormal), the
origin is the minimum corner of the input's voxel centres in that frame and the size is
floor(extent / spacing + 1e-6) + 1, the grid spinewatch_volume::resample makes.

--slice-step: ITK's series reader ignores gantry tilt (it sets the third direction to the
slice normal and the spacing to the distance between positions); this replaces the
third direction and spacing with the true step between consecutive slices (LPS mm), so
ITK samples the sheared grid where the scanner put it. ITK accepts non-orthogonal
direction matrices.

Fill value outside the input: -1024 (air). The default output type is float32 so the
reference is the exact linear blend: ITK casts to an integer output by truncation.
"""
import argparse
import json
import sys
import time

import numpy as np
import SimpleITK as sitk

FILL_HU = -1024.0
# Slack before flooring extent / spacing (f64 round-off on a whole number of voxels).
GRID_EXTENT_TOL = 1e-6

PIXEL_TYPES = {"int16": sitk.sitkInt16, "int32": sitk.sitkInt32, "float32": sitk.sitkFloat32}


def read_series(series_dir, read_type):
    reader = sitk.ImageSeriesReader()
    ids = reader.GetGDCMSeriesIDs(series_dir)
    if len(ids) != 1:
        sys.exit(f"expected one series in {series_dir}, found {len(ids)}")
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(series_dir, ids[0]))
    if read_type:
        reader.SetOutputPixelType(PIXEL_TYPES[read_type])
    return reader.Execute()


def geometry(img):
    return {
        "size": list(img.GetSize()),
        "spacing": list(img.GetSpacing()),
        "origin": list(img.GetOrigin()),
        "direction": list(img.GetDirection()),
    }


def auto_grid(img, spacing):
    d = np.array(img.GetDirection()).reshape(3, 3)
    e1 = d[:, 0] / np.linalg.norm(d[:, 0])
    e2 = d[:, 1] - e1 * np.dot(d[:, 1], e1)
    e2 /= np.linalg.norm(e2)
    frame = np.stack([e1, e2, np.cross(e1, e2)], axis=1)
    size = np.array(img.GetSize())
    corners = np.array(
        [[i, j, k] for i in (0, size[0] - 1) for j in (0, size[1] - 1) for k in (0, size[2] - 1)],
        dtype=float,
    )
    pts = np.array([img.TransformContinuousIndexToPhysicalPoint(c.tolist()) for c in corners])
    uvw = (pts - np.array(img.GetOrigin())) @ frame
    lo, hi = uvw.min(axis=0), uvw.max(axis=0)
    out_size = [int(np.floor((h - l) / spacing + GRID_EXTENT_TOL)) + 1 for l, h in zip(lo, hi)]
    origin = np.array(img.GetOrigin()) + frame @ lo
    return origin.tolist(), frame.flatten().tolist(), out_size


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("series_dir")
    ap.add_argument("--spacing", type=float, required=True)
    ap.add_argument("--origin", type=float, nargs=3)
    ap.add_argument("--direction", type=float, nargs=9)
    ap.add_argument("--size", type=int, nargs=3)
    ap.add_argument("--slice-step", type=float, nargs=3)
    ap.add_argument("--read-type", choices=["int16", "int32"])
    ap.add_argument("--out-type", choices=["float32", "int16"], default="float32")
    ap.add_argument("--out")
    ap.add_argument("--threads", type=int)
    a = ap.parse_args()
    if a.threads:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(a.threads)

    t0 = time.perf_counter()
    img = read_series(a.series_dir, a.read_type)
    t1 = time.perf_counter()
    read_geometry = geometry(img)

    if a.slice_step:
        step = np.array(a.slice_step)
        d = np.array(img.GetDirection()).reshape(3, 3)
        if np.dot(step, d[:, 2]) <= 0:
            sys.exit("ITK ordered the slices against the given slice step")
        d[:, 2] = step / np.linalg.norm(step)
        sp = list(img.GetSpacing())
        sp[2] = float(np.linalg.norm(step))
        img.SetDirection(d.flatten().tolist())
        img.SetSpacing(sp)

    if a.origin and a.direction and a.size:
        origin, direction, size = a.origin, a.direction, a.size
    elif a.origin or a.direction or a.size:
        sys.exit("--origin, --direction and --size go together")
    else:
        origin, direction, size = auto_grid(img, a.spacing)

    t2 = time.perf_counter()
    f = sitk.ResampleImageFilter()
    f.SetOutputOrigin(origin)
    f.SetOutputDirection(direction)
    f.SetOutputSpacing([a.spacing] * 3)
    f.SetSize([int(n) for n in size])
    f.SetInterpolator(sitk.sitkLinear)
    f.SetDefaultPixelValue(FILL_HU)
    f.SetOutputPixelType(PIXEL_TYPES[a.out_type])
    out = f.Execute(img)
    t3 = time.perf_counter()

    if a.out:
        arr = sitk.GetArrayViewFromImage(out)
        arr.astype("<f4" if a.out_type == "float32" else "<i2", copy=False).tofile(a.out)

    json.dump(
        {
            "sitk_version": sitk.Version.VersionString(),
            "threads": sitk.ProcessObject.GetGlobalDefaultNumberOfThreads(),
            "input": read_geometry,
            "input_pixel_type": img.GetPixelIDTypeAsString(),
            "output": {"origin": list(origin), "direction": list(direction), "size": list(size),
                       "spacing": a.spacing, "pixel_type": a.out_type},
            "read_s": t1 - t0,
            "resample_s": t3 - t2,
        },
        sys.stdout,
    )
    print()


if __name__ == "__main__":
    main()
