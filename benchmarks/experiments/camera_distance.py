"""The experiments behind the camera distance (docs/benchmarks.md, "The camera distance"): rerunnable.

    # five real multi-view cases x seeds, NoW median (fitted / neutral) and the fitted inverse distance k
    .venv/bin/python benchmarks/experiments/camera_distance.py [--seeds 0,1,2] [--set lr.inv_distance=0.05 ...]
    # variants that are not settings of main:
    ... --distance-in-landmark-stages        # k also moved by the pose and shape stages
    ... --drop eyeLook,PupilDilate           # expression blendshapes (name prefixes) held at zero
    ... --photo-landmarks brows:0.9          # an extra landmark term on iBUG groups in the photometric stage
    ... --group-weights brows:0.3            # the detected landmarks of iBUG groups weighted by a factor (all stages)
    ... --static-groups brows                # those groups of the calibrated embedding: the model's own points
    ... --photo-cauchy 0.1                   # photometric residuals under a Cauchy loss of that scale (log units)
    ... --brow-shift 1.0                     # the brows' mean vertical residual per view removed (x this factor)
    ... --cases lee-30,lee-60 --true-cameras # the Lee renders with their true cameras (a cams.json)
    ... --synthetic 8                        # benchmarks/bench_reconstruct.py's 3-view sets instead
    ... --synthetic 8 --inv-distance 1.5     # ... rendered in perspective, 1/1.5 m from the head's origin
    ... --synthetic 8 --inv-distance 1.5 --focal-known  # ... each render's focal length known (as from EXIF)
    ... --cases james --seeds 0 --diagnose   # + per-region error, landmark residuals per iBUG group (James: also
        # against his annotated 3D landmarks projected through the rig) and the largest expression coefficients
    ... --cases james-cal --landmark-residuals floor_james_k100.npz
        # detected - fitted landmarks (% eye distance) with that identity held, cameras only, and for the default
        # fit (identity files: benchmarks/model_floor.py --save DIR)

Held distance at a value: ``--set distance.start=1.42 --set distance.estimate=false``. Default preset
(``--preset best`` for another), 1 torch thread, deterministic for a given thread count.
"""
from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/
from _common import parse_overrides  # noqa: E402

from mfnet.ibug import GROUPS  # noqa: E402


def hold_expressions(model, prefixes: list[str]) -> None:
    """Zero the directions of the expression blendshapes whose names start with ``prefixes``."""
    from mfnet.headmodel.lbs import flat_dirs

    names = model.data_meta["expression_names"]
    cols = [model.n_shape + i for i, n in enumerate(names) if any(n.startswith(p) for p in prefixes)]
    d = model.shapedirs.clone()
    d[:, :, cols] = 0
    model.shapedirs, model._dirs_flat = d, flat_dirs(d)


def patch_stages(distance_in_landmark_stages: bool, photo_landmarks: str) -> None:
    """Variants of :func:`mfnet.fit.stages.build_stages` (patched where the fitter looks it up)."""
    import mfnet.fit.fitter as fitter
    import mfnet.fit.stages as stages
    from mfnet.fit.terms import LossTerm
    from mfnet.losses.landmarks import single_view_landmark_loss

    class GroupLandmarks(LossTerm):
        name = "group_landmarks"

        def __init__(self, idx, weight):
            self.idx, self.weight = torch.tensor(idx), weight

        def __call__(self, state, step):
            l2, v = state.landmarks2d(), state.views
            norm = torch.full((len(v),), v.size / 2.0, dtype=l2.dtype)
            w = None if v.landmark_weights is None else v.landmark_weights[:, self.idx]
            return self.weight * single_view_landmark_loss(l2[:, self.idx], v.landmarks[:, self.idx], w, norm)

    original = stages.build_stages

    def build(cfg, state, *args, **kw):
        out = original(cfg, state, *args, **kw)
        for s in out:
            if distance_in_landmark_stages and s.name in ("pose", "shape") and cfg.distance.estimate:
                s.groups = s.groups + ("distance",)
            if s.name == "photo" and photo_landmarks:
                for item in photo_landmarks.split(","):
                    g, w = item.split(":")
                    s.terms.append((GroupLandmarks(list(GROUPS[g]), float(w)), 1.0))
        return out

    fitter.build_stages = build


def patch_group_weights(spec: str) -> None:
    """Multiply the visibility weights of iBUG groups (``brows:0.3,jaw:0.5``) of every detected view."""
    import mfnet.pipeline as pipeline

    original = pipeline._prepare_views

    def prepare(*a, **kw):
        views, names = original(*a, **kw)
        for item in spec.split(","):
            g, w = item.split(":")
            views.landmark_weights[:, list(GROUPS[g])] *= float(w)
        return views, names

    pipeline._prepare_views = prepare


def static_groups(model, groups: list[str]) -> None:
    """Replace ``groups`` of the model's 'mediapipe' embedding by its static (own) landmarks."""
    data = model._data
    faces, bary = (np.array(a) for a in data.embeddings["mediapipe"])
    for g in groups:
        idx = list(GROUPS[g])
        faces[idx], bary[idx] = np.asarray(data.lmk_faces_idx)[idx], np.asarray(data.lmk_bary_coords)[idx]
    data.embeddings["mediapipe"] = (faces, bary)
    model.use_landmark_embedding("static")
    model.use_landmark_embedding("mediapipe")


def drop_brows(model, mm: float) -> None:
    """Lower the brow points (iBUG 17-26) of the model's 'mediapipe' embedding by ``mm`` on the template's
    surface (model frame, y up): the closest surface point to each point moved straight down."""
    import trimesh

    data = model._data
    faces, bary = (np.array(a) for a in data.embeddings["mediapipe"])
    V, F = np.asarray(data.v_template, np.float64), np.asarray(data.faces)
    idx = list(GROUPS["brows"])
    p = np.einsum("lk,lkc->lc", bary[idx], V[F[faces[idx]]])
    mesh = trimesh.Trimesh(V, F, process=False)
    q, _, tri = trimesh.proximity.closest_point(mesh, p - np.array([0.0, mm / 1000.0, 0.0]))
    faces[idx] = tri
    bary[idx] = trimesh.triangles.points_to_barycentric(V[F[tri]], q)
    data.embeddings["mediapipe"] = (faces, bary.astype(np.asarray(data.embeddings["mediapipe"][1]).dtype))
    model.use_landmark_embedding("static")
    model.use_landmark_embedding("mediapipe")


def patch_brow_shift(factor: float) -> None:
    """The 68-point term compares the brows after removing ``factor`` x their mean vertical residual
    (per view, weighted; no gradient through the shift): a per-person brow height that the identity and
    expression need not explain. Wraps the 68-point loss of each landmark term built after this patch."""
    import mfnet.fit.terms as terms

    brows, base = list(GROUPS["brows"]), terms.single_view_landmark_loss

    def shifted(pred, target, weights=None, norm=None):
        with torch.no_grad():
            w = torch.ones_like(target[:, brows, 1]) if weights is None else weights[:, brows]
            r = (pred[:, brows, 1] - target[:, brows, 1]) * w
            target = target.clone()
            target[:, brows, 1] += factor * r.sum(1, keepdim=True) / w.sum(1, keepdim=True).clamp_min(1e-9)
        return base(pred, target, weights, norm)

    init = terms.LandmarkTerms.__init__

    def patched_init(self, *a, **kw):
        init(self, *a, **kw)
        self.losses["singlelmk"] = shifted

    terms.LandmarkTerms.__init__ = patched_init


def patch_photo_cauchy(scale: float) -> None:
    """The photometric term's Charbonnier replaced by a Cauchy loss of ``scale`` with the same curvature at
    zero, ``c^2 / (2 eps) log(1 + d^2 / c^2)``: residuals far beyond c (highlights, shadows) lose their pull."""
    import mfnet.losses.photometric as ph

    ph.charbonnier = lambda d, eps: scale ** 2 / (2 * eps) * torch.log1p((d / scale) ** 2)


def lee_true_cameras(case: str) -> Path:
    """A cams.json of a Lee case's render cameras in the scan's frame (mm, OpenCV pixel centres)."""
    from mfnet.evaluate.realscans import lee_views, load_scan
    from mfnet.evaluate.realscans_render import (LEE_CASES, PIVOT_BEHIND_MM, _rot, face_frame,
                                                 render_case)

    scan, paths = load_scan("lee"), lee_views(case)
    o, Rf = face_frame(scan.landmarks)
    pivot = o - PIVOT_BEHIND_MM * Rf[2]
    cams = []
    for p, shot, (_, (K, R, t)) in zip(paths, LEE_CASES[case].shots, render_case(case, scan)):
        Rk = _rot(shot.yaw, shot.pitch)  # the render turned the scan by Rk about the pivot
        Kc = K.copy()
        Kc[:2, 2] -= 0.5
        cams.append({"image": p.name, "K": Kc.tolist(), "R": (R @ Rk).tolist(),
                     "t": (R @ (pivot - Rk @ pivot) + t).tolist()})
    out = paths[0].parent / "true_cams.json"
    out.write_text(json.dumps({"units": "mm", "cameras": cams}))
    return out


def run_cases(args, model, overrides) -> None:
    from mfnet.evaluate.realscans import case_views, load_scan, run_case, score_reconstruction
    from mfnet.pipeline import reconstruct

    cases = args.cases.split(",")
    res = {c: [] for c in cases}
    for seed in [int(s) for s in args.seeds.split(",")]:
        for c in cases:
            if args.true_cameras:
                paths, _ = case_views(c)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    rec = reconstruct([str(p) for p in paths], model=model, progress=False,
                                      cameras=str(lee_true_cameras(c)), seed=seed, **overrides)
                s = score_reconstruction(rec, load_scan("lee"), model)
                f, n = s["fitted"]["median"], s["neutral"]["median"]
            else:
                r = run_case(c, args.preset, model, seed=seed, **overrides)
                rec, f, n = r["rec"], r["fitted_median"], r["neutral_median"]
            k = rec.views.inv_distance
            res[c].append((f, n))
            print(f"seed {seed} {c:10s} fitted {f:.3f} neutral {n:.3f} k "
                  f"{'-' if k is None else f'{float(k[0]):.2f}'}", flush=True)
            if args.diagnose and not args.true_cameras:
                diagnose(c, r, model)
    for i, label in enumerate(("fitted", "neutral")):
        means = [float(np.mean([x[i] for x in res[c]])) for c in cases]
        print(f"{label} mean over seeds: " + " ".join(f"{c} {m:.3f}" for c, m in zip(cases, means))
              + f"  mean {np.mean(means):.3f}")


def group_residuals(label: str, a: np.ndarray, b: np.ndarray, ref: np.ndarray) -> None:
    """Print ``a - b`` ((N, 68, 2) pixels) per view and iBUG group, in % of ``ref``'s eye distance."""
    r = (a - b) / np.linalg.norm(ref[:, 36] - ref[:, 45], axis=-1)[:, None, None] * 100
    print(f"  {label}: mean |r| per view {np.linalg.norm(r, axis=-1).mean(1).round(1)} % eye distance")
    for g, idx in GROUPS.items():
        print(f"    {g:6s} mean (x, y) per view {np.round(r[:, list(idx)].mean(1), 1).tolist()}")


def diagnose(case: str, r: dict, model) -> None:
    """Regions, landmark residuals and the largest expression coefficients of a :func:`run_case` result."""
    from mfnet.evaluate.realscans import james_cameras, load_scan

    rec = r["rec"]
    for label, key in (("fitted", "regions"), ("neutral", "neutral_regions")):
        print(f"  regions {label}: " + " ".join(f"{k} {v:.2f}" for k, v in r[key].items()))
    D, F = rec.detected_landmarks, rec.fitted_landmarks
    group_residuals("fitted - detected", F, D, D)
    if case in ("james", "james-cal"):  # the annotated 3D landmarks through the rig's cameras (OpenCV pixels)
        X = np.asarray(load_scan("james").landmarks, np.float64)
        T = np.stack([(lambda x: x[:, :2] / x[:, 2:] - 0.5)((K @ (R @ X.T + t.reshape(3, 1))).T)
                      for K, R, t in james_cameras().values()])
        group_residuals("detected - annotated", D, T, T)
        group_residuals("fitted - annotated", F, T, T)
    e = np.asarray(rec.head.expression, np.float64).ravel()
    names = model.data_meta.get("expression_names") or [str(i) for i in range(e.size)]
    print("  largest expressions: " + ", ".join(f"{names[i]} {e[i]:.2f}" for i in np.argsort(-np.abs(e))[:6]))


def landmark_residuals(args, model, overrides) -> None:
    from mfnet.evaluate.realscans import case_views
    from mfnet.pipeline import reconstruct

    for case in args.cases.split(","):
        paths, cams = case_views(case)
        for label, kw in (("identity held, cameras only", {"identity": args.landmark_residuals, "iters.shape": 0,
                                                           "iters.flow": 0, "iters.photo": 0}),
                          ("default fit", {})):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                rec = reconstruct([str(p) for p in paths], model=model, progress=False, cameras=cams,
                                **{**overrides, **kw})
            print(f"{case}, {label}:")
            group_residuals("fitted - detected", rec.fitted_landmarks, rec.detected_landmarks, rec.detected_landmarks)


def main() -> int:
    from mfnet.errors import MfnetError

    try:
        return _main()
    except MfnetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cases", default="james,james-cal,lee-30,lee-60,lee-lowres")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--preset", default="default", help="fit preset of the real cases (default: default)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--drop", default="", help="expression name prefixes held at zero, comma-separated")
    p.add_argument("--distance-in-landmark-stages", action="store_true")
    p.add_argument("--photo-landmarks", default="", metavar="GROUP:W,...")
    p.add_argument("--group-weights", default="", metavar="GROUP:W,...")
    p.add_argument("--static-groups", default="", metavar="GROUP,...")
    p.add_argument("--brow-shift", type=float, default=0.0)
    p.add_argument("--brow-drop", type=float, default=0.0, metavar="MM",
                   help="lower the embedding's brow points by MM on the model's surface")
    p.add_argument("--photo-cauchy", type=float, default=0.0, metavar="SCALE")
    p.add_argument("--true-cameras", action="store_true", help="Lee cases with their render cameras")
    p.add_argument("--synthetic", type=int, default=0, metavar="N", help="N synthetic subjects instead")
    p.add_argument("--inv-distance", type=float, default=0.0, metavar="K", help="--synthetic: perspective renders")
    p.add_argument("--focal-known", action="store_true", help="--synthetic --inv-distance: renders carry their focal length")
    p.add_argument("--landmark-residuals", default=None, metavar="IDENTITY.npz")
    p.add_argument("--diagnose", action="store_true", help="regions, landmark residuals, expressions per case")
    args = p.parse_args()
    if not args.inv_distance >= 0:
        p.error(f"--inv-distance must be >= 0 (1/m; 0: orthographic), got {args.inv_distance}")
    torch.set_num_threads(1)
    from mfnet.evaluate.realscans import _model

    overrides = parse_overrides(args.set)
    patch_stages(args.distance_in_landmark_stages, args.photo_landmarks)
    if args.photo_cauchy:
        patch_photo_cauchy(args.photo_cauchy)
    if args.brow_shift:
        patch_brow_shift(args.brow_shift)
    if args.group_weights:
        patch_group_weights(args.group_weights)
    if args.synthetic:
        from bench_reconstruct import SETS, run

        rows = run(args.synthetic, args.preset, sets={k: v for k, v in SETS.items() if k.startswith("3 views")},
                   inv_distance=args.inv_distance, focal_known=args.focal_known, **overrides)
        for name, r in rows.items():
            print(f"{name}: median {r['median_mm']:.2f} mm, mean {r['mean_mm']:.2f} mm ({r['n']} subjects)")
        return 0
    model = _model(None)
    if args.brow_drop:
        drop_brows(model, args.brow_drop)
    if args.static_groups:
        static_groups(model, args.static_groups.split(","))
    if args.drop:
        hold_expressions(model, args.drop.split(","))
    if args.landmark_residuals:
        landmark_residuals(args, model, overrides)
    else:
        run_cases(args, model, overrides)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
