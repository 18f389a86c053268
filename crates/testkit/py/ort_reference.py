#!/usr/bin/env python3
"""Reference inference for the parity test of issue 4: runs an ONNX model with the
Python onnxruntime package (CPU provider) on an input tensor stored as .npy and writes
every output to a .npy file named after it in OUT_DIR.

Usage: ort_reference.py MODEL.onnx INPUT.npy INPUT_NAME OUT_DIR [--threads N]
"""

import argparse
import pathlib

import numpy as np
import onnxruntime as ort


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("input")
    ap.add_argument("input_name")
    ap.add_argument("out", type=pathlib.Path)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = args.threads
    session = ort.InferenceSession(args.model, opts, providers=["CPUExecutionProvider"])
    x = np.load(args.input)
    names = [o.name for o in session.get_outputs()]
    for name, value in zip(names, session.run(names, {args.input_name: x})):
        np.save(args.out / f"{name}.npy", value)


if __name__ == "__main__":
    main()
