#!/usr/bin/env python3
"""Times Python onnxruntime on a fixed input, the reference of the side-by-side inference
benchmark (benches/e2e/infer_vs_python.sh): the input split into batches of --batch, one
InferenceSession.run per batch, CPU provider with --threads intra-op threads.

Usage: ort_timing.py MODEL.onnx INPUT.npy INPUT_NAME --batch N --threads T --repeat R
Prints one JSON object: median and mean seconds per pass over the whole input.
"""

import argparse
import json
import time

import numpy as np
import onnxruntime as ort


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("input")
    ap.add_argument("input_name")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=50)
    args = ap.parse_args()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = args.threads
    session = ort.InferenceSession(args.model, opts, providers=["CPUExecutionProvider"])
    x = np.load(args.input)
    batches = [np.ascontiguousarray(x[i : i + args.batch]) for i in range(0, len(x), args.batch)]

    def run() -> None:
        for b in batches:
            session.run(None, {args.input_name: b})

    run()
    times = []
    for _ in range(args.repeat):
        t = time.perf_counter()
        run()
        times.append(time.perf_counter() - t)
    times.sort()
    print(json.dumps({
        "impl": "python",
        "patches": len(x),
        "batch": args.batch,
        "threads": args.threads,
        "median_s": times[len(times) // 2],
        "mean_s": sum(times) / len(times),
    }))


if __name__ == "__main__":
    main()
