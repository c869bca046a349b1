"""`mfnet synth` (write synthetic multi-view subjects) and `mfnet prepare` (landmark cache) commands.

Register them in the CLI with :func:`register_synth` and :func:`register_prepare`.
"""
from __future__ import annotations

import argparse
import json
import logging
import re
from pathlib import Path
from typing import Sequence

from ..errors import MfnetError
from ..utils.threads import add_threads_argument

log = logging.getLogger(__name__)


def parse_yaws(text: str) -> list[float]:
    """'-60,0,60' -> [-60.0, 0.0, 60.0]."""
    try:
        yaws = [float(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise MfnetError(f"--views {text!r}: give yaw angles in degrees separated by commas, e.g. -60,0,60") from None
    if len(yaws) < 1 or any(abs(y) > 90 for y in yaws):
        raise MfnetError(f"--views {text!r}: give 1 or more yaw angles between -90 and 90 degrees")
    return yaws


def write_synthetic(out: str | Path, n_subjects: int, yaws: Sequence[float], image_size: int = 224,
                    model_name: str | None = None, seed: int = 0, progress: bool = True, model=None) -> Path:
    """Render ``n_subjects`` random subjects to ``out/<subject>/view_<yaw>.png`` + ``meta.npz`` (ground
    truth) and ``out/synth.json``. Subjects already written are kept (resumable)."""
    import numpy as np
    from tqdm.auto import tqdm

    from ..export.preview import save_png
    from ..calibrate.install import load_model
    from ..utils.io import output_dir
    from ..data.synthetic import render_subject, to_uint8

    model = model if model is not None else load_model(model_name)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    info = {"model": model.name, "image_size": int(image_size), "yaws": [float(y) for y in yaws],
            "seed": int(seed), "subjects": int(n_subjects), "landmarks": "renderer crop pixels, static contour"}
    (out / "synth.json").write_text(json.dumps(info, indent=2))
    for i in tqdm(range(n_subjects), desc="synth", unit="subject", disable=not progress):
        folder = out / f"subject_{i:05d}"
        if (folder / "meta.npz").is_file():
            continue
        s = render_subject(model, tuple(yaws), image_size, seed=seed * 100003 + i)
        files = [f"view_{int(round(y)):+03d}.png" for y in yaws]
        with output_dir(folder) as tmp:
            for f, img in zip(files, to_uint8(s.images)):
                save_png(tmp / f, img)
            np.savez(tmp / "meta.npz", files=np.array(files), yaws=np.array(yaws, np.float32),
                     shape=s.shape.numpy(), expression=s.expression.numpy(), pose=s.pose.numpy(),
                     view_rotations=s.view_rotations.numpy(), landmarks2d=s.landmarks2d.numpy(),
                     scale=s.cameras.scale.numpy(), trans=s.cameras.trans.numpy())
    return out


def register_synth(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("synth", help="render random synthetic subjects from several yaws (training / evaluation data)")
    p.add_argument("--subjects", type=int, default=100, help="number of subjects (default 100)")
    p.add_argument("--views", default="-60,0,60", help="yaw angles in degrees (default -60,0,60)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--size", type=int, default=224, help="image size in pixels (default 224)")
    p.add_argument("--model", default=None, help="head model name or .npz (default: ict-facekit)")
    p.add_argument("--seed", type=int, default=0)
    # let `--views -60,0,60` through: argparse would take "-60,0,60" for an option
    p._negative_number_matcher = re.compile(r"^-\d+$|^-\d*\.\d+$|^-[\d.]+(,-?[\d.]+)*$")
    add_threads_argument(p)
    p.set_defaults(func=cmd_synth)


def cmd_synth(args) -> int:
    if args.subjects < 1:
        raise MfnetError("--subjects must be at least 1")
    out = write_synthetic(args.out, args.subjects, parse_yaws(args.views), args.size, args.model, args.seed)
    print(f"wrote {args.subjects} subjects to {out}")
    return 0


def register_prepare(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("prepare", help="detect and cache the landmarks of a photo dataset (resumable)")
    p.add_argument("dataset_dir", help="dataset root folder")
    p.add_argument("--kind", choices=("folder", "multipie", "facescape"), default="folder",
                   help="layout: folder (ROOT/<subject>/<view>.jpg), multipie, facescape (default folder)")
    p.add_argument("--cache", default=None, help="cache folder (default DATASET_DIR/.mfnet-cache)")
    p.add_argument("--backend", default="mediapipe", choices=("mediapipe", "dlib"))
    add_threads_argument(p)
    p.set_defaults(func=cmd_prepare)


def cmd_prepare(args) -> int:
    from ..data.datasets import open_dataset, prepare_dataset

    ds = open_dataset(args.kind, args.dataset_dir, cache_dir=args.cache)
    stats = prepare_dataset(ds, backend=args.backend)
    print(f"{args.dataset_dir}: {stats['groups_done']} groups detected, {stats['groups_skipped']} already cached; "
          f"{stats['faces']} faces, {stats['no_face']} photos without a face; cache in {ds.cache_dir}")
    return 0
