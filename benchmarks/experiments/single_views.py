"""Single-view real cases against the mean head, with fit-setting overrides (what `mfnet bench --real`
cannot vary): NoW median mm of the fitted mesh, the mean head's, their ratio, the neutral mesh's.

    .venv/bin/python benchmarks/experiments/single_views.py [--cases lee-1,james-1] [--threads 1]
        [--set weights.silhouette=0 --set silhouette.tau=0.02 ...]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from mfnet.evaluate.realscans import run_case, run_mean_head
from mfnet.fit.config import parse_settings

CASES = "lee-1,lee-1-y30,lee-1-y60,lee-1-y75,lee-1-p20,lee-1-pm20,james-1"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", default=CASES)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    overrides = parse_settings(args.set)
    ratios = []
    print("| case | fitted | mean head | ratio | neutral | seconds |\n| --- | --- | --- | --- | --- | --- |")
    for case in args.cases.split(","):
        t = time.perf_counter()
        r, m = run_case(case, "default", **overrides), run_mean_head(case)
        ratios.append(r["fitted_median"] / m["fitted_median"])
        print(f"| {case} | {r['fitted_median']:.3f} | {m['fitted_median']:.3f} | {ratios[-1]:.3f} | "
              f"{r['neutral_median']:.3f} | {time.perf_counter() - t:.1f} |", flush=True)
    print(f"mean ratio {np.mean(ratios):.3f}, worst {max(ratios):.3f}")


if __name__ == "__main__":
    main()
