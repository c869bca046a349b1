"""``mfnet evaluate facescape`` and ``mfnet evaluate now``: benchmark a folder of predictions.

Wire into the main parser with :func:`register` (``register(subparsers)``).

``mfnet evaluate facescape --pred DIR --gt DIR [--set wild|lab] [--out DIR]``
    FaceScape CD (mm) / MNE (rad) / CR per item, FS-Wild per yaw bin, FS-Lab
    per focal length and view.  Layout: ``GT_DIR/<name>.obj`` +
    ``<name>_params.json`` (head_center, head_rotation, pupil_scale; FS-Lab also
    K and image_size), ``PRED_DIR/<name>.obj`` in the GT frame (see
    :mod:`mfnet.evaluate.files`).

``mfnet evaluate now --pred DIR --gt DIR [--out DIR] [--metrical]``
    NoW scan-to-mesh error.  Layout: ``PRED_DIR/<subject>/<challenge>/<image>.obj``
    + ``<image>.npy`` (7 landmarks); ``GT_DIR/<subject>.obj`` +
    ``<subject>_lmks.npy`` (or ``.pp`` / ``_lmks.txt``).

Outputs in ``--out`` (default ``./mfnet-eval``): ``<bench>_items.csv`` (one
row per item), ``<bench>_summary.md`` (tables) and, for NoW,
``now_cumulative.png`` / ``now_cumulative.csv`` (cumulative error 0-8 mm).
"""
from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from ..utils.threads import add_threads_argument

log = logging.getLogger(__name__)

FACESCAPE_HELP = """\
folder layout:
  GT_DIR/<name>.obj           ground-truth mesh
  GT_DIR/<name>_params.json   head_center [3], head_rotation [3x3] (same frame/units as the mesh),
                              pupil_scale (mm per unit; or pupils [[3],[3]]);
                              FS-Lab also K [3x3] and image_size [h, w]; optional index/view/focal;
                              optional camera_R [3x3], camera_t [3]: GT (and its pose) in a world
                              frame, x_cam = R x + t
  PRED_DIR/<name>.obj         prediction named like its GT, in the GT frame: FS-Wild the
                              normalised orthographic cube of the photo (x right, y up, looking
                              down -z), FS-Lab the GT camera frame; GT units (or mm: --pred-units mm)
metrics: CD (mm, two-sided, 15 mm jump rule), MNE (rad), CR, after L1 depth alignment
"""

NOW_HELP = """\
folder layout:
  PRED_DIR/<subject>/<challenge>/<image>.obj  neutral prediction (expression and jaw zeroed)
  PRED_DIR/<subject>/<challenge>/<image>.npy  its 7 NoW landmarks (7x3, same units)
  GT_DIR/<subject>.obj (or GT_DIR/<subject>/<subject>.obj)  the scan
  GT_DIR/<subject>_lmks.npy | <subject>.pp | <subject>_lmks.txt  the scan's 7 landmarks
landmark order: right eye outer, right eye inner, left eye inner, left eye outer,
nose bottom, right mouth corner, left mouth corner (subject's right)
units: auto = metres if the outer eye corners are < 1 unit apart, else mm
"""


def register(subparsers) -> None:
    """Add ``evaluate facescape`` and ``evaluate now`` to an argparse subparsers object."""
    p = subparsers.add_parser("evaluate", help="benchmark predictions (FaceScape CD/MNE/CR, NoW scan-to-mesh)",
                              description="Evaluate a folder of predicted meshes against a benchmark.")
    sub = p.add_subparsers(dest="benchmark", metavar="BENCHMARK")
    sub.required = True

    fs = sub.add_parser("facescape", help="FaceScape FS-Wild / FS-Lab: CD, MNE, CR",
                        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=FACESCAPE_HELP)
    fs.add_argument("--pred", required=True, type=Path, help="folder of predicted <name>.obj")
    fs.add_argument("--gt", required=True, type=Path, help="folder of ground-truth <name>.obj + <name>_params.json")
    fs.add_argument("--set", choices=("wild", "lab"), default="wild", help="FS-Wild (default) or FS-Lab protocol")
    fs.add_argument("--out", type=Path, default=Path("mfnet-eval"), help="output folder (default ./mfnet-eval)")
    fs.add_argument("--pred-units", choices=("gt", "mm"), default="gt",
                    help="prediction units: those of the GT (default) or mm (GT units x pupil_scale)")
    fs.add_argument("--allow-missing", action="store_true", help="evaluate only the GT items that have a prediction")
    add_threads_argument(fs)
    fs.set_defaults(func=cmd_facescape)

    now = sub.add_parser("now", help="NoW: scan-to-mesh error after landmark + similarity alignment",
                         formatter_class=argparse.RawDescriptionHelpFormatter, epilog=NOW_HELP)
    now.add_argument("--pred", required=True, type=Path, help="folder of <subject>/<challenge>/<image>.obj + .npy")
    now.add_argument("--gt", required=True, type=Path, help="folder of scans <subject>.obj + landmarks")
    now.add_argument("--out", type=Path, default=Path("mfnet-eval"), help="output folder (default ./mfnet-eval)")
    now.add_argument("--pred-units", choices=("auto", "m", "mm"), default="auto", help="prediction units (default auto)")
    now.add_argument("--gt-units", choices=("auto", "m", "mm"), default="auto", help="scan units (default auto)")
    now.add_argument("--metrical", action="store_true", help="keep the predicted scale (rigid alignment only)")
    now.add_argument("--no-refine", action="store_true", help="landmark alignment only (no scan-to-mesh refinement)")
    add_threads_argument(now)
    now.set_defaults(func=cmd_now)


def _pupil_scale(params: dict, lab: bool, where: Path) -> float:
    from ..evaluate.facescape import PUPIL_DISTANCE_MM
    from ..evaluate.files import EvaluationError

    if "pupil_scale" in params:
        return float(params["pupil_scale"])
    if "pupils" in params:
        d = float(((params["pupils"][0] - params["pupils"][1]) ** 2).sum() ** 0.5)
        if d > 0:
            return PUPIL_DISTANCE_MM / d
    if lab:
        return PUPIL_DISTANCE_MM
    raise EvaluationError(f"{where}: FS-Wild parameters need 'pupil_scale' (62.85 / GT pupil distance) or 'pupils'")


def cmd_facescape(args) -> int:
    from ..evaluate import facescape as fs
    from ..evaluate.files import (EvaluationError, find_facescape_items, load_facescape_params, load_mesh,
                        markdown_table, trailing_number, write_csv)

    lab = args.set == "lab"
    items = find_facescape_items(args.pred, args.gt, allow_missing=args.allow_missing)
    rows = []
    t0 = time.perf_counter()
    for n, it in enumerate(items):  # one benchmark item per iteration
        prm = load_facescape_params(it.params)
        scale = _pupil_scale(prm, lab, it.params)
        pv, pf = load_mesh(it.pred)
        gv, gf = load_mesh(it.gt)
        if args.pred_units == "mm":
            pv = pv / scale
        centre, rot = prm["head_center"], prm["head_rotation"]
        if "camera_R" in prm:  # GT given in a world frame: move it (and its pose) into the camera frame
            R, t = prm["camera_R"], prm["camera_t"]
            gv, centre, rot = gv @ R.T + t, R @ centre + t, R @ rot
        pose = dict(head_center=centre, head_rotation=rot, pupil_scale=scale)
        try:
            if lab:
                if "K" not in prm:
                    raise EvaluationError(f"{it.params}: FS-Lab parameters need 'K' (3x3 intrinsics)")
                K = prm["K"]
                size = prm.get("image_size", [2 * K[1, 2], 2 * K[0, 2]])
                m = fs.evaluate_lab(pv, pf, gv, gf, K=K, image_size=size, **pose)
            else:
                m = fs.evaluate_wild(pv, pf, gv, gf, **pose)
        except ValueError as exc:
            if isinstance(exc, EvaluationError):
                raise
            raise EvaluationError(f"{it.pred}: {exc}") from None
        row = {"name": it.name, "cd_mm": m.cd, "mne_rad": m.mne, "cr": m.cr, "depth_offset_mm": m.depth_offset}
        if lab:
            row["focal"] = int(prm["focal"]) if "focal" in prm else "unknown"
            row["view"] = int(prm["view"]) if "view" in prm else "unknown"
        else:
            idx = int(prm["index"]) if "index" in prm else trailing_number(it.name)
            row["angle_bin"] = fs.wild_angle_bin(idx) if idx is not None else "unknown"
        rows.append(row)
        log.info("[%d/%d] %s  CD %.3f mm  MNE %.4f  CR %.4f", n + 1, len(items), it.name, m.cd, m.mne, m.cr)
    metrics = ("cd_mm", "mne_rad", "cr")
    fmt = {"cd_mm": "{:.3f}", "mne_rad": "{:.4f}", "cr": "{:.4f}"}
    name = f"facescape_{args.set}"
    md = [f"# FaceScape FS-{args.set.capitalize()} evaluation", "",
          f"Predictions: `{args.pred}`; ground truth: `{args.gt}`; {len(rows)} items; "
          f"{time.perf_counter() - t0:.1f} s.  CD in mm (pupil distance 62.85 mm), MNE in radians, CR as a fraction.",
          "", "## All items", "", markdown_table(fs.summarise(rows, None, metrics), fmt)]
    groups = ("focal", "view") if lab else ("angle_bin",)
    for key in groups:
        table = fs.summarise(rows, key, metrics)
        if not lab:
            order = {b: i for i, b in enumerate(fs.WILD_ANGLE_BINS)}
            table.sort(key=lambda r: order.get(r[key], len(order)))
        else:  # numbers ascending, 'unknown' last
            table.sort(key=lambda r: (isinstance(r[key], str), 0 if isinstance(r[key], str) else r[key]))
        md += [f"## Per {key.replace('_', ' ')}", "", markdown_table(table, fmt)]
    out = Path(args.out)
    write_csv(out / f"{name}_items.csv", rows)
    (out / f"{name}_summary.md").write_text("\n".join(md))
    print("\n".join(md[4:]))
    print(f"wrote {out / (name + '_items.csv')} and {out / (name + '_summary.md')}")
    return 0


def cmd_now(args) -> int:
    from ..evaluate.files import (EvaluationError, find_now_items, load_landmarks, load_mesh, markdown_table,
                        units_to_mm, write_csv)
    from ..evaluate.now import CURVE_MAX_MM, cumulative_curve, evaluate_now, now_statistics, plot_cumulative

    items = find_now_items(args.pred, args.gt)
    scans: dict = {}
    rows, per_challenge = [], {}
    t0 = time.perf_counter()
    for n, it in enumerate(items):  # one predicted image per iteration
        if it.subject not in scans:
            scans[it.subject] = (_load_scan(it.scan), load_landmarks(it.scan_landmarks))
        sv, sl = scans[it.subject]
        pv, pf = load_mesh(it.pred)
        pl = load_landmarks(it.pred_landmarks)
        try:
            r = evaluate_now(pv, pf, pl, sv, sl, pred_scale=units_to_mm(args.pred_units, pl),
                             scan_scale=units_to_mm(args.gt_units, sl), metrical=args.metrical,
                             refine=not args.no_refine)
        except ValueError as exc:
            if isinstance(exc, EvaluationError):
                raise
            raise EvaluationError(f"{it.pred} vs {it.scan}: {exc}") from None
        st = r.stats
        rows.append({"subject": it.subject, "challenge": it.challenge, "image": it.image, "points": st["n"],
                     "median_mm": st["median"], "mean_mm": st["mean"], "std_mm": st["std"],
                     "scale": r.alignment.s, "iterations": r.iterations})
        per_challenge.setdefault(it.challenge, []).append(r.distances)
        log.info("[%d/%d] %s/%s/%s  median %.3f  mean %.3f mm", n + 1, len(items), it.subject, it.challenge,
                 it.image, st["median"], st["mean"])
    everything = [d for ds in per_challenge.values() for d in ds]
    table = [{"challenge": "all", "images": len(rows), **_stat_row(now_statistics(everything))}]
    table += [{"challenge": c, "images": len(ds), **_stat_row(now_statistics(ds))} for c, ds in sorted(per_challenge.items())]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "now_items.csv", rows)
    curves = {"all": everything, **dict(sorted(per_challenge.items()))}
    plot_cumulative(curves, out / "now_cumulative.png")
    x, y = cumulative_curve(everything)
    write_csv(out / "now_cumulative.csv", [{"error_mm": float(a), "fraction": float(b)} for a, b in zip(x, y)])
    fmt = {"median_mm": "{:.3f}", "mean_mm": "{:.3f}", "std_mm": "{:.3f}"}
    mode = "metrical (scale kept)" if args.metrical else "similarity (scale fitted)"
    md = ["# NoW evaluation", "",
          f"Predictions: `{args.pred}`; scans: `{args.gt}`; {len(rows)} images; alignment: {mode}"
          f"{'' if not args.no_refine else ', landmarks only'}; {time.perf_counter() - t0:.1f} s.  "
          "Distances pooled over all cropped scan vertices, in mm.", "",
          markdown_table(table, fmt), "",
          f"Cumulative error curve (0-{CURVE_MAX_MM:g} mm): `now_cumulative.png`, `now_cumulative.csv`.", ""]
    (out / "now_summary.md").write_text("\n".join(md))
    print(markdown_table(table, fmt))
    print(f"wrote {out / 'now_items.csv'}, {out / 'now_summary.md'}, {out / 'now_cumulative.png'}")
    return 0


def _stat_row(st: dict) -> dict:
    return {"points": st["n"], "median_mm": st["median"], "mean_mm": st["mean"], "std_mm": st["std"]}


def _load_scan(path: Path):
    """Scan vertices (faces are not needed): OBJ 'v' lines, or any trimesh-readable file."""
    from ..evaluate.files import EvaluationError

    try:
        if path.suffix.lower() == ".obj":
            from ..headmodel.objio import read_obj_vertices

            return read_obj_vertices(path)
        import trimesh

        return trimesh.load(path, process=False).vertices
    except (ValueError, OSError) as exc:
        raise EvaluationError(f"{path}: cannot read the scan ({exc})") from None
