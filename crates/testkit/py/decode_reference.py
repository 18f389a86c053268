#!/usr/bin/env python3
"""Decodes DICOM files with pydicom (plus pylibjpeg, pyjpegls) as the reference that
spinewatch's decoder is compared against (issue 3, transfer syntaxes).

Prints one JSON object per input file and per line, in input order:

    {"index": 0, "path": "...", "transfer_syntax_uid": "...", "transfer_syntax_name": "...",
     "rows": 512, "cols": 512, "samples_per_pixel": 1, "frames": 1,
     "photometric_interpretation": "MONOCHROME2", "bits_allocated": 16, "bits_stored": 12,
     "pixel_representation": 0, "lossy": false, "min": -2000, "max": 2500,
     "decoder": "pydicom", "sha256": "...", "values_file": "DIR/0.i32"}

`decoder` says which decoded it: "pydicom", or "libjpeg (codestream)" for the retired
JPEG DCT syntaxes pydicom refuses (1.2.840.10008.1.2.4.53 and .55), whose frames are
then decoded with libjpeg directly.

Where the file cannot be decoded at all it prints {"index": 0, "path": "...", "error": "..."}
(with the transfer syntax when the header could be read).

`sha256` is the digest of the values as little-endian int32, `[frame, row, column,
sample]` C order. With `--values-dir DIR` those int32 values are also written raw to
`DIR/<index>.i32` so that a test can compute per-pixel differences for lossy syntaxes.

Values are pydicom's `pixel_array`: stored values (before the Modality LUT),
sign-extended from Bits Stored; native YBR_FULL_422 has its chroma subsampling removed
but stays YBR (`raw=True`), while compressed YBR data are converted to RGB as a JPEG
decoder does (pydicom's default).

Usage: decode_reference.py [--values-dir DIR] FILE...
"""
import argparse
import hashlib
import json
import os
import sys

import numpy as np
import pydicom
from pydicom.pixels import pixel_array

# Transfer syntaxes whose decoded pixels may differ from what was encoded (PS3.5 A.4).
LOSSY = {
    "1.2.840.10008.1.2.4.50",  # JPEG Baseline (Process 1)
    "1.2.840.10008.1.2.4.51",  # JPEG Extended (Process 2 & 4)
    "1.2.840.10008.1.2.4.53",  # JPEG Spectral Selection (Process 6 & 8), retired
    "1.2.840.10008.1.2.4.55",  # JPEG Full Progression (Process 10 & 12), retired
    "1.2.840.10008.1.2.4.81",  # JPEG-LS Lossy (Near-Lossless)
    "1.2.840.10008.1.2.4.91",  # JPEG 2000 Image Compression
    "1.2.840.10008.1.2.4.93",  # JPEG 2000 Part 2 Multi-component
    "1.2.840.10008.1.2.4.203",  # High-Throughput JPEG 2000
}

# Uncompressed transfer syntaxes (PS3.5 A.1-A.5).
NATIVE = {
    "1.2.840.10008.1.2",  # Implicit VR Little Endian
    "1.2.840.10008.1.2.1",  # Explicit VR Little Endian
    "1.2.840.10008.1.2.1.99",  # Deflated Explicit VR Little Endian
    "1.2.840.10008.1.2.2",  # Explicit VR Big Endian
}

# JPEG DCT syntaxes that pydicom refuses; their codestreams are decoded with libjpeg.
RETIRED_JPEG_DCT = {"1.2.840.10008.1.2.4.53", "1.2.840.10008.1.2.4.55"}


def describe(index, path, values_dir):
    out = {"index": index, "path": path}
    try:
        ds = pydicom.dcmread(path)
    except Exception as e:  # noqa: BLE001 - reported, not raised
        out["error"] = f"read: {type(e).__name__}: {e}"
        return out
    ts = ds.file_meta.get("TransferSyntaxUID")
    if ts is not None:
        out["transfer_syntax_uid"] = str(ts)
        out["transfer_syntax_name"] = ts.name
        out["lossy"] = str(ts) in LOSSY
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    try:
        # Native data are compared as stored (YBR stays YBR); compressed colour data
        # as the codec outputs it (a JPEG decoder converts YCbCr to RGB).
        arr = pixel_array(ds, raw=str(ts) in NATIVE)
        out["decoder"] = "pydicom"
    except NotImplementedError as e:
        # pydicom has no decoder for the retired JPEG DCT syntaxes, but libjpeg (the
        # codec behind pylibjpeg-libjpeg) decodes their codestreams.
        if str(ts) not in RETIRED_JPEG_DCT:
            out["error"] = f"decode: {type(e).__name__}: {e}"
            return out
        import libjpeg
        from pydicom.encaps import generate_frames

        arr = np.stack(
            [libjpeg.decode(f) for f in generate_frames(ds.PixelData, number_of_frames=frames)]
        )
        out["decoder"] = "libjpeg (codestream)"
    except Exception as e:  # noqa: BLE001 - reported, not raised
        out["error"] = f"decode: {type(e).__name__}: {e}"
        return out
    spp = int(ds.get("SamplesPerPixel", 1))
    rows, cols = int(ds.Rows), int(ds.Columns)
    values = np.ascontiguousarray(arr.reshape(frames, rows, cols, spp).astype("<i4"))
    out.update(
        rows=rows,
        cols=cols,
        samples_per_pixel=spp,
        frames=frames,
        photometric_interpretation=str(ds.get("PhotometricInterpretation", "")),
        bits_allocated=int(ds.BitsAllocated),
        bits_stored=int(ds.BitsStored),
        pixel_representation=int(ds.PixelRepresentation),
        min=int(values.min()),
        max=int(values.max()),
        sha256=hashlib.sha256(values.tobytes()).hexdigest(),
    )
    if values_dir:
        f = os.path.join(values_dir, f"{index}.i32")
        values.tofile(f)
        out["values_file"] = f
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--values-dir", help="write each file's int32 values to DIR/<index>.i32")
    ap.add_argument("files", nargs="+")
    args = ap.parse_args()
    for i, path in enumerate(args.files):
        print(json.dumps(describe(i, path, args.values_dir)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
