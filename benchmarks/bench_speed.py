"""End-to-end speed of `mfnet.reconstruct` on 3 synthetic 512 px views, per stage, per preset.

    .venv/bin/python benchmarks/bench_speed.py [--threads 2] [--runs 3] [--presets fast,default,best]
"""
from __future__ import annotations

import argparse
import os
import statistics
import warnings

import torch

from mfnet.data.synthetic import render_subject, to_uint8
from mfnet.calibrate.install import load_model
from mfnet.pipeline import reconstruct


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--presets", default="fast,default,best", help="comma-separated presets to time")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = load_model()
    subj = render_subject(model, (-30.0, 0.0, 30.0), image_size=512, seed=7)
    images = list(to_uint8(subj.images))
    warnings.simplefilter("ignore")
    reconstruct(images, model=model, preset="fast", progress=False)  # warm-up (detector, allocator)
    print(f"3 views at 512 px, torch threads {args.threads}, median of {args.runs} runs, "
          f"load average {os.getloadavg()[0]:.2f}")
    keys = ["detect", "fit.pose", "fit.shape", "fit.flow", "fit.light", "fit.photo", "texture", "total"]
    print("| preset | " + " | ".join(keys) + " |")
    print("| --- " * (len(keys) + 1) + "|")
    for preset in args.presets.split(","):
        runs = [reconstruct(images, model=model, preset=preset, progress=False).timings for _ in range(args.runs)]
        med = {k: statistics.median(r.get(k, 0.0) for r in runs) for k in keys}
        print(f"| {preset} | " + " | ".join(f"{med[k]:.2f}" for k in keys) + " |")


if __name__ == "__main__":
    main()
