"""Single-view real cases against the mean head, with fit-setting overrides (what `mfnet bench --real`
cannot vary): NoW median mm of the fitted mesh, the mean head's, their ratio, the neutral mesh's.

    .venv/bin/python benchmarks/experiments/single_views.py [--cases lee-1,james-1] [--threads 1]
        [--set weights.silhouette=0 --set silhouette.tau=0.02 ...] [--sweep] [--mirror]

``--sweep`` runs 13 further single renders of the Lee scan instead (yaw -50..45 degrees, two pitched; the
lights and backgrounds of the benchmark in turn, 50-80 cm): a wider sample than the benchmark's seven cases.
``--mirror`` fits each photo together with its horizontally mirrored copy (EXIF kept), as if the mirror image
were a second camera's photo of the same (assumed symmetric) face: a "virtual stereo pair" (measured, not kept:
docs/benchmarks.md).
"""
from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import mfnet.evaluate.realscans as realscans
from mfnet.evaluate.realscans import run_case, run_mean_head
from mfnet.evaluate.realscans_render import LEE_CASES, LeeCase, _set
from mfnet.fit.config import parse_settings

CASES = "lee-1,lee-1-y30,lee-1-y60,lee-1-y75,lee-1-p20,lee-1-pm20,james-1"
SWEEP = ("0", "10", "-10", "20", "-20", "25", "-30", "35", "-40", "45", "-50", "15:10", "-25:-10")  # yaw[:pitch]
LIGHTS = ("studio", "window", "side", "warm", "overcast")


def register_sweep() -> list[str]:
    """Add the sweep's renders to the Lee cases; their names."""
    names = []
    for k, spec in enumerate(SWEEP):
        yaw, _, pitch = spec.partition(":")
        name = f"lee-sw-y{yaw}p{pitch or 0}"
        LEE_CASES[name] = LeeCase(f"Lee, 1 render, yaw {yaw}, pitch {pitch or 0}",
                                  _set((float(yaw),), LIGHTS[k % 5], "clutter" if k % 2 else "plain",
                                       500 + 100 * (k % 4), pitch=float(pitch or 0), seed=200 + 10 * k))
        names.append(name)
    return names


def mirror_views(out_dir: Path):
    """A ``case_views`` that adds each uncalibrated case's photos mirrored left-right (EXIF kept)."""
    from PIL import Image, ImageOps

    original = realscans.case_views

    def case_views(case, root=None):
        paths, cams = original(case, root)
        if cams is not None:
            return paths, cams
        d = out_dir / case
        d.mkdir(parents=True, exist_ok=True)
        mirrored = []
        for p in map(Path, paths):
            im = Image.open(p)
            q = d / f"mirror_{p.name}"
            kw = {"exif": im.info["exif"]} if im.info.get("exif") else {}
            ImageOps.mirror(im).save(q, **kw, **({"quality": 95} if p.suffix.lower() in (".jpg", ".jpeg") else {}))
            mirrored.append(q)
        return [Path(p) for p in paths] + mirrored, cams

    return case_views


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", default=CASES)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE")
    ap.add_argument("--sweep", action="store_true", help="the 13 further Lee renders instead of --cases")
    ap.add_argument("--mirror", action="store_true", help="fit each photo with its mirrored copy")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    overrides = parse_settings(args.set)
    cases = register_sweep() if args.sweep else args.cases.split(",")
    with tempfile.TemporaryDirectory(prefix="mfnet-mirror-") if args.mirror else contextlib.nullcontext() as tmp:
        if args.mirror:
            realscans.case_views = mirror_views(Path(tmp))
        run(cases, overrides)


def run(cases: list[str], overrides: dict) -> None:
    """Print each case's row and the mean and worst ratio to the mean head."""
    ratios = []
    print("| case | fitted | mean head | ratio | neutral | seconds |\n| --- | --- | --- | --- | --- | --- |")
    for case in cases:
        t = time.perf_counter()
        r, m = run_case(case, "default", **overrides), run_mean_head(case)
        ratios.append(r["fitted_median"] / m["fitted_median"])
        print(f"| {case} | {r['fitted_median']:.3f} | {m['fitted_median']:.3f} | {ratios[-1]:.3f} | "
              f"{r['neutral_median']:.3f} | {time.perf_counter() - t:.1f} |", flush=True)
    print(f"mean ratio {np.mean(ratios):.3f}, worst {max(ratios):.3f}")


if __name__ == "__main__":
    main()
