"""How close can the head model itself get to a real scan? Its identity fitted in 3D to the scan.

    .venv/bin/python benchmarks/model_floor.py --scans james,lee --components 10,30,100 [--expression]

For each scan (``james``: the real capture; ``lee``: the Lee Perry-Smith head scan, outer surface) the
model's first K identity components (and with ``--expression`` its expression blendshapes, within
their bounds) are fitted straight to the cropped scan: alternately (a) NoW's alignment of the current
mesh (:func:`mfnet.evaluate.realscans.score_mesh`: 7 landmarks, then s, R, t refined) and (b) 300 Adam
steps on a Huber loss (δ 2 mm) between the scan points and their closest points on the mesh (fixed
triangle and barycentre for the step), identity prior 1e-4·|β|². The NoW median of the result is the
floor that no photo-based fit restricted to those components can beat on that scan; it separates
what the head model cannot express from what the photos do not tell. Deterministic (1 thread).
``--save DIR`` writes each fitted code as ``DIR/floor_<scan>_k<K>.npz`` (``shape``, ``expression``),
which ``mfnet reconstruct --identity`` (or ``run_case(..., identity=PATH)``) accepts: the fit with the
true identity held. ``--landmarks`` also prints, per iBUG group, where the model's 68 landmarks (its own
and the detector-calibrated embedding) lie on that fitted head relative to the scan's landmarks (James:
annotated in 3D; Lee: detected on renders), mm in the model's frame (x left, y up, z forward) after the
NoW alignment: a landmark embedding's bias on a real face, which the fitted identity cannot explain.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch


def fit_floor(model, scan, k: int, expression: bool, rounds: int = 6, steps: int = 300, w_prior: float = 1e-4):
    """Fit the first ``k`` identity components (and the expression) of ``model`` to ``scan``; returns
    (shape (S,), expression (E,), score of the final mesh, medians after each round)."""
    from mfnet.evaluate.geometry import TriangleIndex
    from mfnet.evaluate.now import crop_scan
    from mfnet.evaluate.realscans import score_mesh

    faces = model.faces.cpu().numpy()
    keep = (torch.arange(model.n_shape) < k).float()
    shape = torch.zeros(1, model.n_shape, requires_grad=True)
    expr = torch.zeros(1, model.n_expr, requires_grad=True)
    lo, hi = model.expression_bounds if model.expression_bounds is not None else (-3.0, 3.0)
    pts_mm = scan.scored_vertices[crop_scan(scan.scored_vertices, scan.now_landmarks)]

    def mesh():
        o = model(shape * keep, expr)
        return o.vertices[0], o.landmarks[0]

    trace = []
    for _ in range(rounds):
        with torch.no_grad():
            v, lm = mesh()
        s = score_mesh(v.numpy(), faces, lm.numpy(), scan)
        trace.append(s["median"])
        local = s["alignment"].inverse_apply(pts_mm) / 1000.0  # the scan points in the model's frame, m
        cp = TriangleIndex(v.numpy().astype(np.float64), faces).query(local)
        tri = torch.as_tensor(faces[cp.face])
        bary = torch.as_tensor(cp.bary, dtype=torch.float32)[..., None]
        target = torch.as_tensor(local, dtype=torch.float32)
        opt = torch.optim.Adam([shape] + ([expr] if expression else []), lr=0.05)
        for _ in range(steps):  # optimiser steps, not a loop over points
            opt.zero_grad()
            v, _ = mesh()
            d = ((v[tri] * bary).sum(1) - target).norm(dim=1) * 1000.0
            loss = torch.nn.functional.huber_loss(d, torch.zeros_like(d), delta=2.0) + w_prior * (shape ** 2).sum()
            loss.backward()
            opt.step()
            with torch.no_grad():
                expr.clamp_(lo, hi)
    with torch.no_grad():
        v, lm = mesh()
    s = score_mesh(v.numpy(), faces, lm.numpy(), scan)
    return (shape * keep).detach()[0], expr.detach()[0], s, trace + [s["median"]]


def landmark_offsets(model, scan, shape: torch.Tensor) -> None:
    """Print the model's landmarks minus the scan's, per group (mean x, y, z mm), for each embedding."""
    from mfnet.evaluate.realscans import score_mesh
    from mfnet.ibug import GROUPS

    active = model.embedding_name
    for name in dict.fromkeys(("static", active)):
        model.use_landmark_embedding(name)
        with torch.no_grad():
            o = model(shape[None])
        v, lm = o.vertices[0].numpy(), o.landmarks[0].numpy()
        al = score_mesh(v, model.faces.cpu().numpy(), lm, scan)["alignment"]
        d = lm * 1000.0 - al.inverse_apply(np.asarray(scan.landmarks, np.float64))
        print(f"  {name:9s} model - scan landmarks, mean (x, y, z) mm: "
              + "  ".join(f"{g} {np.round(d[list(i)].mean(0), 1).tolist()}" for g, i in GROUPS.items()))
    model.use_landmark_embedding(active)


def main(argv=None) -> int:
    from mfnet.errors import MfnetError
    from mfnet.evaluate.realscans import _model, load_scan

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--scans", default="james,lee")
    p.add_argument("--components", default="10,30,100", help="identity components K (comma-separated)")
    p.add_argument("--expression", action="store_true", help="also fit the expression blendshapes")
    p.add_argument("--save", default=None, metavar="DIR")
    p.add_argument("--landmarks", action="store_true", help="the landmark embeddings' offsets on the fitted head")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    try:
        model = _model(None)
        scans = {name: load_scan(name) for name in args.scans.split(",")}  # every name checked before the work
    except MfnetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for name, scan in scans.items():
        for k in [int(x) for x in args.components.split(",")]:
            shape, expr, s, trace = fit_floor(model, scan, min(k, model.n_shape), args.expression)
            regions = " ".join(f"{r} {v:.2f}" for r, v in s["regions"].items())
            print(f"{name:6s} K={k:3d}{' +expression' if args.expression else ''}: median {s['median']:.3f} mm "
                  f"(rounds {' '.join(f'{m:.3f}' for m in trace)}) |shape| {float(shape.norm()):.1f}  {regions}",
                  flush=True)
            if args.landmarks:
                landmark_offsets(model, scan, shape)
            if args.save:
                Path(args.save).mkdir(parents=True, exist_ok=True)
                np.savez(Path(args.save) / f"floor_{name}_k{k}.npz", shape=shape.numpy(), expression=expr.numpy())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
