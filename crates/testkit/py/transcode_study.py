#!/usr/bin/env python3
"""Re-encodes a DICOM study losslessly into another transfer syntax, as a new study, for
interoperability tests: the same pixels reach the SCP in a compressed syntax under new
UIDs, so that it is analysed as a distinct study.

Usage: transcode_study.py --syntax {j2k,rle} OUT_DIR FILE...

  j2k  JPEG 2000 Image Compression (Lossless Only), 1.2.840.10008.1.2.4.90
       (pydicom 3 with pylibjpeg-openjpeg)
  rle  RLE Lossless, 1.2.840.10008.1.2.5 (pydicom 3, native)

Every file gets one new Study Instance UID (shared by all), a new Series Instance UID per
original series and a new SOP Instance UID. Each written file is read back and its pixels
compared with the original's: a lossy or broken encoder fails here, not in the test that
uses the files. Writes OUT_DIR/<n>.dcm and prints one JSON line:
{"study_instance_uid": ..., "transfer_syntax": ..., "files": [...]}.
"""
import argparse
import json
import os
import sys

import numpy as np
from pydicom import dcmread
from pydicom.uid import JPEG2000Lossless, RLELossless, generate_uid

SYNTAXES = {"j2k": JPEG2000Lossless, "rle": RLELossless}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--syntax", choices=sorted(SYNTAXES), required=True)
    p.add_argument("out_dir")
    p.add_argument("files", nargs="+")
    args = p.parse_args()
    syntax = SYNTAXES[args.syntax]
    os.makedirs(args.out_dir, exist_ok=True)

    study_uid = generate_uid()
    series_uids = {}
    written = []
    for i, f in enumerate(sorted(args.files)):
        ds = dcmread(f)
        pixels = ds.pixel_array.copy()
        ds.compress(syntax)
        ds.StudyInstanceUID = study_uid
        old_series = str(ds.SeriesInstanceUID)
        ds.SeriesInstanceUID = series_uids.setdefault(old_series, generate_uid())
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        out = os.path.join(args.out_dir, f"{i + 1:05d}.dcm")
        ds.save_as(out, enforce_file_format=True)

        back = dcmread(out)
        if str(back.file_meta.TransferSyntaxUID) != syntax:
            sys.exit(f"{out}: written in {back.file_meta.TransferSyntaxUID}, not {syntax}")
        if not np.array_equal(back.pixel_array, pixels):
            sys.exit(f"{out}: pixels differ from {f} after encoding to {syntax.name}")
        written.append(out)

    print(
        json.dumps(
            {"study_instance_uid": study_uid, "transfer_syntax": str(syntax), "files": written}
        ),
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
