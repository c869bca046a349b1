"""`mfnet reconstruct`: photos of one person (or a folder of subjects) -> textured head + report."""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from ..errors import MfnetError

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("reconstruct", help="reconstruct one head from 1-16 photos of the same person",
                       description="Reconstruct a textured head model from uncalibrated photos of one person.")
    p.add_argument("images", nargs="*", help="photos of the same person (JPEG/PNG/BMP)")
    p.add_argument("--out", default=None, help="output folder (default: ./mfnet-out, or ./mfnet-batch with --batch)")
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
    p.add_argument("--covisibility", choices=["zbuffer", "landmarks"], default=None,
                   help="co-visible mask for the flow loss: exact z-buffer (default) or the paper's landmark boxes")
    p.add_argument("--flow", default=None, metavar="dis|raft:PATH",
                   help="flow backend for the multi-view loss: OpenCV DIS (default) or torchvision RAFT with weights")
    p.add_argument("--no-report", action="store_true", help="skip report.html")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--quiet", action="store_true", help="no progress bars or log lines")
    g.add_argument("--json", action="store_true", help="print one JSON summary on stdout (implies --quiet)")
    p.set_defaults(func=cmd_reconstruct)


def _overrides(args) -> dict:
    out = {"covisibility": args.covisibility} if args.covisibility else {}
    if args.flow:
        out["flow"] = args.flow
    return out


def _run_one(images, out: Path, args, model) -> dict:
    from ..pipeline import reconstruct

    method, ckpt = args.method_name, args.checkpoint
    rec = reconstruct(images, model=model, preset=args.preset, device=args.device, backend=args.backend,
                      identity=args.identity, progress=not (args.quiet or args.json), method=method,
                      checkpoint=ckpt, cameras=args.cameras, **_overrides(args))
    rec.save(out, report=not args.no_report)
    err = rec.reprojection_error_px
    return {"out": str(out), "views": rec.names, "reprojection_error_px": [round(float(e), 3) for e in err],
            "seconds": round(rec.timings["total"], 3), "warnings": rec.warnings}


def _split_method(args) -> None:
    """``--method net CKPT IMG...`` -> method, checkpoint, and the photos argparse gathered into --method."""
    items = list(args.method)
    method = items.pop(0)
    if method not in ("fit", "net", "net+fit"):
        raise MfnetError(f"--method {method}: use 'fit', 'net CKPT' or 'net+fit CKPT'")
    ckpt = None
    if method != "fit":
        if not items:
            raise MfnetError(f"--method {method} needs a checkpoint: --method {method} CKPT")
        ckpt = items.pop(0)
    args.method_name, args.checkpoint = method, ckpt
    args.images = items + list(args.images)


def cmd_reconstruct(args) -> int:
    from ..headmodel.registry import load_head_model

    _split_method(args)
    quiet = args.quiet or args.json
    if quiet:
        logging.getLogger().setLevel(logging.WARNING)
    if args.batch and args.images:
        raise MfnetError("give either photos or --batch ROOT, not both")
    if not args.batch and not args.images:
        raise MfnetError("no photos given: mfnet reconstruct IMG [IMG ...] --out DIR (or --batch ROOT)")
    model = load_head_model(args.model)
    if not args.batch:
        summary = _run_one(args.images, Path(args.out or "mfnet-out"), args, model)
        if args.json:
            print(json.dumps(summary))
        elif not quiet:
            errs = ", ".join(f"{e:.2f}" for e in summary["reprojection_error_px"])
            print(f"reconstructed {len(summary['views'])} view(s) in {summary['seconds']:.1f} s; "
                  f"landmark reprojection error (px): {errs}")
            print(f"wrote {summary['out']}/")
        return 0
    return _batch(args, model)


def _batch(args, model) -> int:
    root = Path(args.batch)
    if not root.is_dir():
        raise MfnetError(f"{root}: --batch needs a folder with one sub-folder of photos per subject")
    subjects = sorted(p for p in root.iterdir() if p.is_dir())
    if not subjects:
        raise MfnetError(f"{root}: no sub-folders found (expected ROOT/<subject>/<photo>.jpg)")
    out_root = Path(args.out or "mfnet-batch")
    rows = []
    for subj in subjects:
        images = sorted(p for p in subj.iterdir() if p.suffix.lower() in IMAGE_EXTS)
        t = time.perf_counter()
        try:
            if not images:
                raise MfnetError(f"{subj}: no photos (JPEG/PNG/BMP) in this folder")
            info = _run_one(images, out_root / subj.name, args, model)
            rows.append({"subject": subj.name, "status": "ok", **info})
        except MfnetError as exc:
            rows.append({"subject": subj.name, "status": "failed", "error": str(exc),
                         "seconds": round(time.perf_counter() - t, 3)})
            if not args.json:
                print(f"error: {subj.name}: {exc}", file=sys.stderr)
    if args.json:
        print(json.dumps(rows))
    else:
        print(f"\n{'subject':<24} {'status':<8} {'views':>5} {'reproj px':>10} {'seconds':>8}")
        for r in rows:
            ok = r["status"] == "ok"
            err = sum(r["reprojection_error_px"]) / len(r["reprojection_error_px"]) if ok else float("nan")
            print(f"{r['subject']:<24} {r['status']:<8} {len(r['views']) if ok else 0:>5} {err:>10.2f} "
                  f"{r['seconds']:>8.1f}")
        n_ok = sum(r["status"] == "ok" for r in rows)
        print(f"{n_ok}/{len(rows)} subjects reconstructed into {out_root}/")
    return 0 if any(r["status"] == "ok" for r in rows) else 2
