"""`mfnet reconstruct`: photos of one person (or a folder of subjects) -> textured head + report.

Everything that can be checked without the heavy libraries (paths, counts, the output folders) is
checked first, so a bad command line answers in a fraction of a second with one line.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import sys
import time
from pathlib import Path

from ..errors import MfnetError
from ..utils.exif import check_focal_35mm
from ..utils.io import atomic_path, check_output_dir, read_identity, read_manifest, record_written
from ..utils.options import MAX_VIEWS, METHODS
from ..utils.threads import add_threads_argument

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("reconstruct", help="reconstruct one head from 1-16 photos of the same person",
                       description="Reconstruct a textured head model from uncalibrated photos of one person.")
    p.add_argument("images", nargs="*", help="photos of the same person (JPEG/PNG/BMP)")
    p.add_argument("--out", default=None,
                   help="output folder (default: ./mfnet-out, or ./mfnet-batch with --batch); a new folder, or one "
                        "an earlier mfnet run wrote")
    p.add_argument("--overwrite", action="store_true",
                   help="write into an existing folder that holds other files (those files are left alone)")
    p.add_argument("--batch", metavar="ROOT", help="reconstruct every sub-folder of ROOT as one subject")
    p.add_argument("--model", default=None, help="head model name or .npz (default: ict-facekit)")
    p.add_argument("--preset", default="default", choices=["fast", "default", "best"],
                   help="fast: landmarks only (~0.5 s for 3 views on 2 CPU cores); default: + multi-view flow "
                        "and photometric stages (~8 s); best: 384 px crops, 900 photometric steps (~50 s, "
                        "most accurate)")
    p.add_argument("--method", nargs="+", default=["fit"], metavar=("fit|net|net+fit", "CKPT"),
                   help="'fit' (optimisation, default), 'net CKPT' (MFNet network prediction) or "
                        "'net+fit CKPT' (network prediction refined by optimisation)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (default: cpu)")
    p.add_argument("--backend", default="mediapipe", choices=["mediapipe", "dlib"], help="landmark detector")
    p.add_argument("--identity", metavar="PARAMS_NPZ", help="keep the shape of an earlier reconstruction fixed")
    p.add_argument("--cameras", metavar="CAMS_JSON",
                   help='calibrated rig: {"units": "m", "cameras": [{"image": NAME, "K": 3x3, "R": 3x3, "t": [3]}, ...]} '
                        "(OpenCV, original pixels); full perspective with one head pose")
    p.add_argument("--focal", type=float, default=None, metavar="MM",
                   help="the cameras' 35 mm-equivalent focal length (e.g. 26 for a phone's main camera): their "
                        "distances from the face follow from it (default: each photo's EXIF, where it records one)")
    p.add_argument("--covisibility", choices=["zbuffer", "landmarks"], default=None,
                   help="co-visible mask for the flow loss: exact z-buffer (default) or the paper's landmark boxes")
    p.add_argument("--flow", default=None, metavar="dis|raft:PATH",
                   help="flow backend for the multi-view loss: OpenCV DIS (default) or torchvision RAFT with weights")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE", dest="settings",
                   help="change one fit setting, e.g. --set iters.photo=0 --set photo.w_reg=1e-3 (repeatable; "
                        "names: mfnet.fit.config, README 'How it works')")
    p.add_argument("--no-report", action="store_true", help="skip report.html")
    p.add_argument("--neutral", action="store_true",
                   help="also write neutral.obj / neutral.ply: the same person without expression, jaw closed")
    add_threads_argument(p)
    g = p.add_mutually_exclusive_group()
    g.add_argument("--quiet", action="store_true", help="no progress bars or log lines")
    g.add_argument("--json", action="store_true", help="print one JSON summary on stdout (implies --quiet)")
    p.set_defaults(func=cmd_reconstruct)


def _overrides(args) -> dict:
    out = {"flow.covisibility": args.covisibility} if args.covisibility else {}
    if args.flow:
        out["flow.method"] = args.flow
    from ..fit.config import parse_settings

    return {**out, **parse_settings(args.settings)}


def _split_method(args) -> None:
    """``--method net CKPT IMG...`` -> method, checkpoint, and the photos argparse gathered into --method."""
    items = list(args.method)
    method = items.pop(0)
    if method not in METHODS:
        raise MfnetError(f"--method {method}: use 'fit', 'net CKPT' or 'net+fit CKPT'")
    ckpt = None
    if method != "fit":
        if not items:
            raise MfnetError(f"--method {method} needs a checkpoint: --method {method} CKPT")
        ckpt = items.pop(0)
    args.method_name, args.checkpoint = method, ckpt
    args.images = items + list(args.images)


def check_photos(images, where: str = "") -> list[Path]:
    """Cheap checks of a subject's photo paths (count, existence), before anything heavy is imported."""
    paths = [Path(p) for p in images]
    if len(paths) > MAX_VIEWS:
        raise MfnetError(f"{where}{len(paths)} photos given: mfnet fits 1 to {MAX_VIEWS} views of one person")
    for p in paths:
        if p.is_dir():
            raise MfnetError(f"{p} is a folder, not a photo: pass the photos inside it (or use --batch {p})")
        if not p.exists():
            raise MfnetError(f"photo not found: {p} (working directory {Path.cwd()}): check the path and file name")
    return paths


def _check_input_file(path, flag: str) -> None:
    if path is not None and Path(path).suffix and not Path(path).exists():
        what = {"--cameras": "cameras file", "--identity": "identity file"}.get(flag, "file")
        raise MfnetError(f"{flag} {path}: no such {what}")


def _check_common(args) -> None:
    from ..fit.config import get_preset

    get_preset(args.preset, **_overrides(args))  # unknown names / bad values answer before any heavy work
    if args.identity is not None:
        read_identity(args.identity)  # read now: a bad file answers before any heavy work
    _check_input_file(args.cameras, "--cameras")
    if args.focal is not None:
        check_focal_35mm(args.focal, "--focal")
    if args.focal is not None and args.cameras is not None:
        raise MfnetError("--focal with --cameras: the cameras file's K already holds the focal lengths; give one of them")
    if args.checkpoint is not None:
        _check_input_file(args.checkpoint, f"--method {args.method_name}")
    if args.model is not None and Path(args.model).suffix and not Path(args.model).exists():
        raise MfnetError(f"--model {args.model}: no such file (give an installed model name or an .npz path)")


def cmd_reconstruct(args) -> int:
    _split_method(args)
    quiet = args.quiet or args.json
    if quiet:
        logging.getLogger().setLevel(logging.WARNING)
    if args.batch and args.images:
        raise MfnetError("give either photos or --batch ROOT, not both")
    if not args.batch and not args.images:
        raise MfnetError("no photos given: mfnet reconstruct IMG [IMG ...] --out DIR (or --batch ROOT)")
    _check_common(args)
    if args.batch:
        return _batch(args)
    images = check_photos(args.images)
    out = check_output_dir(Path(args.out or "mfnet-out"), overwrite=args.overwrite, protect=images)
    model = _load_model(args)
    summary = _run_one(images, out, args, model)
    if args.json:
        print(json.dumps(summary))
    elif not quiet:
        errs = ", ".join(f"{e:.2f} px ({p:.1f}%)" for e, p in zip(summary["reprojection_error_px"],
                                                                  summary["reprojection_error_iod_percent"]))
        print(f"reconstructed {len(summary['views'])} view(s) in {summary['seconds']:.1f} s; "
              f"landmark reprojection error (% of the eye distance): {errs}")
        print(f"wrote {summary['out']}/")
    return 0


def _load_model(args):
    t = time.perf_counter()
    log.info("loading head model %s ...", args.model or "ict-facekit")
    from ..calibrate.install import load_model

    model = load_model(args.model)
    log.info("loaded %s (%d vertices) in %.1f s", model.name, model.num_vertices, time.perf_counter() - t)
    return model


def _run_one(images, out: Path, args, model) -> dict:
    from ..export.reconstruction import save_reconstruction
    from ..pipeline import reconstruct

    rec = reconstruct(images, model=model, preset=args.preset, device=args.device, backend=args.backend,
                      identity=args.identity, progress=not (args.quiet or args.json), method=args.method_name,
                      checkpoint=args.checkpoint, cameras=args.cameras, focal=args.focal, **_overrides(args))
    t = time.perf_counter()
    log.info("writing %s/ ...", out)
    save_reconstruction(rec, out, report=not args.no_report, overwrite=args.overwrite, protect=images,
                        neutral=args.neutral)
    log.info("wrote %s/ in %.1f s", out, time.perf_counter() - t)
    err = rec.reprojection_error_px
    return {"out": str(out), "views": rec.names, "reprojection_error_px": [round(float(e), 3) for e in err],
            "reprojection_error_iod_percent": [round(float(e), 2) for e in rec.reprojection_error_iod],
            "seconds": round(rec.timings["total"] + time.perf_counter() - t, 3), "warnings": rec.warnings}


def _batch_plan(args) -> tuple[Path, list[tuple[Path, list[Path]]]]:
    """The subjects of ``--batch ROOT`` with their photos, every output folder checked before any work."""
    root = Path(args.batch)
    if not root.is_dir():
        raise MfnetError(f"{root}: --batch needs a folder with one sub-folder of photos per subject")
    subjects = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not subjects:
        raise MfnetError(f"{root}: no sub-folders found (expected ROOT/<subject>/<photo>.jpg)")
    out_root = Path(args.out or "mfnet-batch")
    check_output_dir(out_root, overwrite=True)  # a container: its own foreign files are left alone
    summary = out_root / "summary.csv"
    if summary.exists() and "summary.csv" not in read_manifest(out_root) and not args.overwrite:
        raise MfnetError(f"--out {out_root}: holds a summary.csv mfnet did not write; choose a new folder or pass "
                         "--overwrite")
    plan = []
    for subj in subjects:
        images = sorted(p for p in subj.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTS)
        check_output_dir(out_root / subj.name, overwrite=args.overwrite, protect=images)
        plan.append((subj, images))
    return out_root, plan


def _batch(args) -> int:
    out_root, plan = _batch_plan(args)
    model = _load_model(args)
    rows = []
    for subj, images in plan:
        t = time.perf_counter()
        try:
            if not images:
                raise MfnetError(f"{subj}: no photos (JPEG/PNG/BMP) in this folder")
            check_photos(images, f"{subj}: ")
            info = _run_one(images, out_root / subj.name, args, model)
            rows.append({"subject": subj.name, "status": "ok", **info})
        except MfnetError as exc:
            rows.append({"subject": subj.name, "status": "failed", "error": str(exc),
                         "seconds": round(time.perf_counter() - t, 3)})
            if not args.json:
                print(f"error: {subj.name}: {exc}", file=sys.stderr)
    _write_summary(out_root, rows)
    n_ok = sum(r["status"] == "ok" for r in rows)
    if args.json:
        print(json.dumps(rows))
    else:
        print(f"\n{'subject':<24} {'status':<8} {'views':>5} {'reproj px':>10} {'seconds':>8}")
        for r in rows:
            print(f"{r['subject']:<24} {r['status']:<8} {_views(r):>5} {_mean_err(r):>10.2f} {r['seconds']:>8.1f}")
        print(f"{n_ok}/{len(rows)} subjects reconstructed into {out_root}/ (table: {out_root / 'summary.csv'})")
    return 0 if n_ok == len(rows) else (1 if n_ok else 2)


def _views(row) -> int:
    return len(row["views"]) if row["status"] == "ok" else 0


def _mean_err(row) -> float:
    e = row.get("reprojection_error_px") or []
    return sum(e) / len(e) if row["status"] == "ok" and e else float("nan")


def _write_summary(out_root: Path, rows: list[dict]) -> None:
    """``out_root/summary.csv`` (one row per subject), recorded in the folder's manifest."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["subject", "status", "views", "mean_reprojection_px", "seconds", "output", "error"])
    for r in rows:
        err = _mean_err(r)
        w.writerow([r["subject"], r["status"], _views(r), "" if err != err else f"{err:.3f}", f"{r['seconds']:.1f}",
                    r.get("out", ""), r.get("error", "")])
    out_root.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_root / "summary.csv") as tmp:
        tmp.write_text(buf.getvalue())
    record_written(out_root, ["summary.csv"])
