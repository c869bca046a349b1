"""Diagnosis of the real-scan error: how much of the fitted face the expression carries.

    .venv/bin/python benchmarks/experiments/split_expression.py --cases james,lee-60,lee-30 [--seeds 0,1,2]

Per case and seed (default preset, 1 thread, :func:`mfnet.evaluate.realscans.run_case`): the NoW median
and per-region errors (mm) of the fitted head, of the same head with expression and jaw set to zero, the
norm of the identity code and the largest expression weight; with several seeds, also the head whose
shape, expression and jaw are the mean over the seeds (is the error seed noise or systematic?).
"""
from __future__ import annotations

import argparse

import numpy as np
import torch


def _score(model, head, case):
    from mfnet.evaluate.realscans import case_scan, load_scan, score_mesh

    with torch.no_grad():
        out = model(head.shape[None], head.expression[None], head.pose(torch.zeros(1, 3)))
    return score_mesh(out.vertices[0].numpy(), model.faces.numpy(), out.landmarks[0].numpy(),
                      load_scan(case_scan(case)))


def _line(label, s):
    return f"  {label:22s} {s['median']:.3f}  " + " ".join(f"{k} {v:.2f}" for k, v in s["regions"].items())


def main() -> None:
    from mfnet.evaluate.realscans import _model, run_case
    from mfnet.types import HeadParams

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cases", default="james,lee-60,lee-30")
    p.add_argument("--seeds", default="0")
    args = p.parse_args()
    torch.set_num_threads(1)
    model = _model(None)
    for case in args.cases.split(","):
        heads = []
        for seed in [int(s) for s in args.seeds.split(",")]:
            h = run_case(case, "default", model, seed=seed)["rec"].head
            heads.append(h)
            still = HeadParams(h.shape, h.expression * 0, h.jaw * 0, h.neck, h.eyes)
            print(f"{case} seed {seed}: |shape| {float(h.shape.norm()):.2f}, max expression "
                  f"{float(h.expression.max()):.2f}, jaw {np.degrees(h.jaw.numpy()).round(1)}°")
            print(_line("fitted", _score(model, h, case)))
            print(_line("expression, jaw zero", _score(model, still, case)), flush=True)
        if len(heads) > 1:
            mean = HeadParams(*(torch.stack([getattr(h, k) for h in heads]).mean(0)
                                for k in ("shape", "expression", "jaw")), heads[0].neck, heads[0].eyes)
            print(_line(f"{case} mean of seeds", _score(model, mean, case)), flush=True)


if __name__ == "__main__":
    main()
