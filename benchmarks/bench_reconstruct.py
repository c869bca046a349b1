"""Synthetic ground-truth benchmark of the optimisation path, detection included.

Renders random heads of the open model (random identity, expression, skin, light) at 512 px from
0°, ±30° and ±60° yaw, reconstructs from the images (MediaPipe landmarks, no ground-truth
landmarks), and reports the face-region error in mm (the NoW crop of the ground truth, see
:func:`mfnet.evaluate.synthetic.face_region`) after scaling both meshes to a 62.85 mm
pupil distance and rigid alignment. Also times the whole call.

    .venv/bin/python benchmarks/bench_reconstruct.py [--subjects 5] [--preset default] [--ablate]

The renders are scaled orthographic (MFNet's camera) unless ``--inv-distance K`` (1/m) puts a pinhole
1/K metres from the head's origin (about 10 cm behind the face): K = 1.5 is a photo from ~57 cm, as a
phone at arm's length; real photos are never orthographic.
"""
from __future__ import annotations

import argparse
import statistics
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from mfnet.data.synthetic import render_subject, to_uint8
from mfnet.evaluate.synthetic import face_region, vertex_error_mm
from mfnet.fit.config import without
from mfnet.calibrate.install import load_model
from mfnet.pipeline import reconstruct
from mfnet.utils.images import ImageView

from _common import parse_overrides  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

SETS = {"1 view (0°)": (0.0,), "3 views (0°, ±30°)": (-30.0, 0.0, 30.0), "3 views (0°, ±60°)": (-60.0, 0.0, 60.0),
        "1 view (60°)": (60.0,)}


def run(subjects: int, preset: str, size: int = 512, sets=SETS, disabled=(), decompose: bool = False,
        inv_distance: float = 0.0, focal_known: bool = False, **overrides):
    model = load_model()
    # the embedding reconstruct() fits with: ground truth, mean head and fit then align on the same landmarks
    if not model.use_landmark_embedding("mediapipe"):
        model.use_landmark_embedding("static")
    rows = {}
    mean = model()
    for name, yaws in sets.items():
        errs, secs, fails, base = [], [], 0, []
        for seed in range(subjects):
            subj = render_subject(model, yaws, image_size=size, seed=1000 + seed, inv_distance=inv_distance)
            images = list(to_uint8(subj.images))
            if focal_known and inv_distance > 0:  # as if each photo's EXIF recorded its focal length
                f = (subj.cameras.scale / subj.cameras.inv_distance * size / 2).tolist()
                images = [ImageView(Path(f"<render {i}>"), im, focal_px=fi) for i, (im, fi) in enumerate(zip(images, f))]
            t = time.perf_counter()
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    rec = reconstruct(images, model=model, preset=preset, progress=False,
                                      **{**without(*disabled), **overrides})
            except Exception as exc:  # a detector miss counts as a failure, reported
                fails += 1
                print(f"  {name} seed {seed}: failed ({exc})")
                continue
            secs.append(time.perf_counter() - t)
            with torch.no_grad():
                gt = model(subj.shape[None], subj.expression[None], subj.pose[None])
            face = face_region(model, gt.vertices[0].numpy(), gt.landmarks[0].numpy())
            e = vertex_error_mm(rec.vertices, gt.vertices[0].numpy(), rec.landmarks3d, gt.landmarks[0].numpy(), face)
            errs.append(e.mean_mm)
            if decompose:  # which part of the error is identity, which expression
                _print_split(model, subj, rec, gt, face, f"  {name} seed {seed}: {e.mean_mm:.2f} mm")
            base.append(vertex_error_mm(mean.vertices[0].detach().numpy(), gt.vertices[0].numpy(),
                                        mean.landmarks[0].detach().numpy(), gt.landmarks[0].numpy(), face).mean_mm)
        rows[name] = {"median_mm": statistics.median(errs) if errs else float("nan"),
                      "mean_head_mm": float(np.mean(base)) if base else float("nan"),
                      "mean_mm": float(np.mean(errs)) if errs else float("nan"),
                      "seconds": statistics.median(secs) if secs else float("nan"), "failed": fails, "n": subjects}
    return rows


def _print_split(model, subj, rec, gt, face, label: str) -> None:
    """Error of the fitted shape with the true expression, and of the true shape with the fitted
    expression / with no expression (canonical pose, same metric)."""
    g, gl = gt.vertices[0].numpy(), gt.landmarks[0].numpy()
    shape, expr = torch.as_tensor(rec.head.shape).to(subj.shape), torch.as_tensor(rec.head.expression).to(subj.shape)
    parts = []
    for what, s, x in (("fitted shape + true expression", shape, subj.expression),
                       ("true shape + fitted expression", subj.shape, expr),
                       ("true shape + no expression", subj.shape, torch.zeros_like(expr))):
        with torch.no_grad():
            out = model(s[None], x[None])
        parts.append(f"{what} {vertex_error_mm(out.vertices[0].numpy(), g, out.landmarks[0].numpy(), gl, face).mean_mm:.2f}")
    print(f"{label} = " + "; ".join(parts), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--subjects", type=int, default=5)
    ap.add_argument("--preset", default="default")
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--w-reg", type=float, default=None, help="override the shape/expression regulariser weight")
    ap.add_argument("--w-dense", type=float, default=None,
                    help="weight of the 478-point MediaPipe term (needs `mfnet models calibrate --dense`)")
    ap.add_argument("--iters-photo", type=int, default=None,
                    help="steps of the photometric stage (0 = without it; default: the preset's)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override any FitConfig field, e.g. --set photo.blur=1.0 (repeatable; names: mfnet.fit.config)")
    ap.add_argument("--decompose", action="store_true",
                    help="per subject: error with the true expression / the true shape swapped in")
    ap.add_argument("--inv-distance", type=float, default=0.0, metavar="K",
                    help="perspective renders, camera 1/K m from the head's origin (default 0: orthographic)")
    ap.add_argument("--focal-known", action="store_true",
                    help="--inv-distance: each render carries its focal length, as a photo's EXIF would")
    ap.add_argument("--only", default=None, help="run only the view sets whose name contains this text, e.g. 60")
    ap.add_argument("--ablate", action="store_true",
                    help="paper Table 3: rerun the 3-view ±60° set with each loss removed")
    args = ap.parse_args()
    if not args.inv_distance >= 0:
        ap.error(f"--inv-distance must be >= 0 (1/m; 0: orthographic), got {args.inv_distance}")
    torch.set_num_threads(args.threads)
    if args.ablate:
        sets = {"3 views (0°, ±60°)": SETS["3 views (0°, ±60°)"]}
        print(f"| losses | median error (mm) | mean error (mm) |\n| --- | --- | --- |")
        for off in ((), ("multiop",), ("singlelmk",), ("eye",), ("lip",), ("reg",), ("photo",)):
            r = run(args.subjects, args.preset, args.size, sets, disabled=off,
                    inv_distance=args.inv_distance)["3 views (0°, ±60°)"]
            label = "all" if not off else f"−{off[0]}"
            print(f"| {label} | {r['median_mm']:.2f} | {r['mean_mm']:.2f} |", flush=True)
        return
    over = {} if args.w_reg is None else {"weights.reg_shape": args.w_reg, "weights.reg_expression": args.w_reg}
    if args.w_dense is not None:
        over["weights.dense"] = args.w_dense
    if args.iters_photo is not None:
        over["iters.photo"] = args.iters_photo
    over.update(parse_overrides(args.set))
    sets = {k: v for k, v in SETS.items() if args.only is None or args.only in k}
    rows = run(args.subjects, args.preset, args.size, sets, decompose=args.decompose, inv_distance=args.inv_distance,
               focal_known=args.focal_known, **over)
    camera = f"camera at 1/{args.inv_distance:g} m" if args.inv_distance > 0 else "orthographic"
    print(f"\npreset {args.preset}, {args.subjects} subjects, {args.size}px renders ({camera}), "
          f"torch threads {args.threads}")
    print("| views | median error (mm) | mean error (mm) | mean head, mean error (mm) | median time (s) | failed |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, r in rows.items():
        print(f"| {name} | {r['median_mm']:.2f} | {r['mean_mm']:.2f} | {r['mean_head_mm']:.2f} | {r['seconds']:.2f} "
              f"| {r['failed']}/{r['n']} |")


if __name__ == "__main__":
    main()
