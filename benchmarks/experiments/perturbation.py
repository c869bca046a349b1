"""How much the result moves with invisible changes of the photos: each real case is reconstructed
from copies of its photos in which a random 2 % of the pixels are one grey level brighter or darker
(seeded; copy 0 is the photos as they are), with the same fit seed. A fit whose result jumps with such
changes cannot be measured: the spread is the benchmark's noise (docs/benchmarks.md, "Issue 11, sixth
session").

    .venv/bin/python benchmarks/experiments/perturbation.py [--cases james,lee-60] [--copies 5]
        [--preset default] [--set photo.points=2000 ...]

NoW median mm of the fitted and neutral meshes per copy, then each case's mean, standard deviation and
range over the copies. 1 torch thread.
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

from mfnet.fit.config import parse_settings


def perturbed_copy(paths: list[Path], copy: int, out: Path) -> list[str]:
    """The photos written to ``out``; for ``copy`` > 0 with +-1 grey level on a random 2 % of the pixels.
    Their EXIF block (the focal length) is kept."""
    from PIL import Image

    written = []
    for j, p in enumerate(paths):
        with Image.open(p) as im:
            im.load()
            img, exif = np.asarray(im.convert("RGB")), im.getexif()
        if copy > 0:
            rng = np.random.default_rng(1000 * copy + j)
            step = (rng.random(img.shape[:2]) < 0.02) * rng.choice([-1, 1], size=img.shape[:2])
            img = np.clip(img.astype(np.int16) + step[..., None], 0, 255).astype(np.uint8)
        q = out / (p.stem + ".png")  # lossless, so the change is exactly the one drawn
        Image.fromarray(img).save(q, format="PNG", exif=exif.tobytes())
        written.append(str(q))
    return written


def main() -> None:
    from mfnet.evaluate import realscans as rs
    from mfnet.pipeline import reconstruct

    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", default="james,lee-60")
    ap.add_argument("--copies", type=int, default=5)
    ap.add_argument("--preset", default="default")
    ap.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE")
    args = ap.parse_args()
    torch.set_num_threads(1)
    overrides = parse_settings(args.set)
    model = rs._model(None)
    for case in args.cases.split(","):
        paths, cams = rs.case_views(case)
        scan = rs.load_scan(rs.case_scan(case))
        fitted = []
        for copy in range(args.copies):
            with tempfile.TemporaryDirectory() as tmp:
                photos = perturbed_copy(paths, copy, Path(tmp))
                cameras = None
                if cams is not None:
                    cameras = str(shutil.copy(cams, Path(tmp) / "cams.json"))  # names the photos by file name
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    rec = reconstruct(photos, model=model, preset=args.preset, progress=False, cameras=cameras,
                                      **overrides)
            s = rs.score_reconstruction(rec, scan, model)
            fitted.append(s["fitted"]["median"])
            print(f"{case} copy {copy}: fitted {fitted[-1]:.3f} neutral {s['neutral']['median']:.3f}", flush=True)
        print(f"{case}: mean {np.mean(fitted):.3f} std {np.std(fitted):.3f} range {min(fitted):.3f}-{max(fitted):.3f}",
              flush=True)


if __name__ == "__main__":
    main()
