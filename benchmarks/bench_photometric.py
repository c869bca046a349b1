"""Where the photometric stage goes when it starts from the ground truth.

Renders random heads of the open model at 0° and ±60° (512 px), detects and crops as
`mfnet reconstruct` does, then runs only the light + photometric stages starting from the true
shape, expression, head rotations and (crop-space) cameras, and reports the face-region error it
ends at (same metric as bench_reconstruct.py). A stage whose objective is minimal at the truth
stays near 0 mm; drift shows bias (landmarks, regulariser) or steps too large for the basin.

    .venv/bin/python benchmarks/bench_photometric.py [--subjects 3] [--lr-scale 1.0] [--no-landmarks]
        [--w-reg 1e-4] [--iters 120] [--terms] [--yaw 60] [--set KEY=VALUE ...]

``--terms`` also fits each subject from the images (default preset) and prints every weighted term
of the photometric stage's objective at that fit and at the truth (lights fitted with the geometry
held): a term larger at the truth pulls the optimum away from it.
"""
from __future__ import annotations

import argparse
import warnings

import numpy as np
import torch

from mfnet.data.synthetic import render_subject, to_uint8
from mfnet.evaluate.synthetic import face_region, vertex_error_mm
from mfnet.fit.config import get_config
from mfnet.fit.fitter import MultiViewFitter
from mfnet.fit.init import weak_perspective_lsq
from mfnet.fit.terms import FitState
from mfnet.fit.views import prepare_views
from mfnet.calibrate.install import load_model
from mfnet.types import HeadParams, ViewParams

from _common import parse_overrides  # noqa: E402  (benchmarks/ is on sys.path when run as a script)


def true_start(model, subj, views) -> tuple[HeadParams, ViewParams]:
    """The true parameters, with the weak-perspective cameras re-expressed in each view's crop."""
    n, S = len(subj.yaws_deg), views.size
    pose = torch.cat([subj.view_rotations, subj.pose[3:].expand(n, -1)], 1)
    with torch.no_grad():
        verts = model(subj.shape.expand(n, -1), subj.expression.expand(n, -1), pose).vertices
        px = subj.cameras.project(verts, subj.images.shape[-2:])[..., :2].numpy() - 0.5  # detector pixels
    crop_px = torch.from_numpy(np.stack([c.to_crop(px[i]) + 0.5 for i, c in enumerate(views.crops)])).float()
    s, t = weak_perspective_lsq(verts, crop_px, torch.ones(n, verts.shape[1]), S)
    return (HeadParams(subj.shape.clone(), subj.expression.clone(), torch.zeros(3)),
            ViewParams(subj.view_rotations.clone(), s, t))


def objective_terms(fitter: MultiViewFitter, res, views, draws: int = 3) -> dict[str, float]:
    """The photometric stage's weighted terms at a fit result, averaged over ``draws`` point samples
    (the identity prior at its weight before noise scaling)."""
    from dataclasses import replace

    out: dict[str, float] = {}
    with torch.no_grad():
        for k in range(draws):
            f = MultiViewFitter(fitter.model, replace(fitter.cfg, seed=100 + k), progress=False)
            state = FitState(f.model, views, res.rig, res.head.shape, res.head.expression, res.head.jaw,
                             light=res.views.light)
            photo = next(s for s in f.stages(state) if s.name == "photo")
            for name, v in photo.losses(state, 0).items():
                out[name] = out.get(name, 0.0) + float(v) / draws
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--subjects", type=int, default=3)
    ap.add_argument("--lr-scale", type=float, default=1.0, help="photo.lr_scale")
    ap.add_argument("--w-reg", type=float, default=None, help="photo.w_reg (default: the preset's)")
    ap.add_argument("--iters", type=int, default=120, help="iters.photo")
    ap.add_argument("--no-landmarks", action="store_true", help="photometric term (and regulariser) only")
    ap.add_argument("--terms", action="store_true", help="objective terms at the image fit and at the truth")
    ap.add_argument("--yaw", type=float, default=60.0, help="side views at ±yaw degrees (and 0°)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a FitConfig field in every fit, e.g. --set photo.w_reg=1e-3 (repeatable)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = load_model()
    model.use_landmark_embedding("mediapipe")
    base = parse_overrides(args.set)
    over = {**base, "iters.pose": 0, "iters.shape": 0, "iters.flow": 0, "iters.photo": args.iters,
            "photo.lr_scale": args.lr_scale}
    if args.w_reg is not None:
        over["photo.w_reg"] = args.w_reg
    if args.no_landmarks:
        over.update({"weights.landmarks": 0.0, "weights.eye": 0.0, "weights.lip": 0.0})
    errs = []
    for i in range(args.subjects):
        subj = render_subject(model, (-args.yaw, 0.0, args.yaw), image_size=512, seed=1000 + i)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            views = prepare_views(list(to_uint8(subj.images)), crop_size=256)
        if len(views) != 3:
            print(f"subject {i}: a view without a detected face, skipped")
            continue
        res = MultiViewFitter(model, get_config("default", **over), progress=False).fit(views, init=true_start(
            model, subj, views))
        if args.terms:
            held = MultiViewFitter(model, get_config("default", **{**over, "photo.lr_scale": 0.0}), progress=False)
            at_truth = objective_terms(held, held.fit(views, init=true_start(model, subj, views)), views)
            fit = MultiViewFitter(model, get_config("default", **base), progress=False)
            at_fit = objective_terms(fit, fit.fit(views), views)
            for label, t in (("image fit", at_fit), ("truth", at_truth)):
                print(f"  {label:9s}: total {sum(t.values()):.4f} = "
                      + " + ".join(f"{k} {v:.4f}" for k, v in t.items()))
        with torch.no_grad():
            gt = model(subj.shape[None], subj.expression[None], subj.pose[None])
            p = model(res.head.shape[None], res.head.expression[None])
        region = face_region(model, gt.vertices[0].numpy(), gt.landmarks[0].numpy())
        e = vertex_error_mm(p.vertices[0].numpy(), gt.vertices[0].numpy(), p.landmarks[0].numpy(),
                            gt.landmarks[0].numpy(), region).mean_mm
        errs.append(e)
        print(f"subject {i}: from the truth -> {e:.2f} mm", flush=True)
    print(f"lr scale {args.lr_scale}, landmarks {'off' if args.no_landmarks else 'on'}, "
          f"{args.iters} steps: mean {np.mean(errs):.2f} mm over {len(errs)} subjects")


if __name__ == "__main__":
    main()
