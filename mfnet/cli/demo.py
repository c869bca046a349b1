"""`mfnet demo`: render a random head from 3 views with the open model, reconstruct it from the
images through the full pipeline, and print the error against the known ground truth."""
from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

from ..utils.threads import add_threads_argument

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="render a random head from 3 views, reconstruct it, report the error (./mfnet-demo)")
    p.add_argument("--out", default="mfnet-demo", help="output folder (default: ./mfnet-demo)")
    p.add_argument("--model", default=None, help="head model name or .npz (default: ict-facekit)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", type=int, default=512, help="render size in pixels (default 512)")
    p.add_argument("--preset", default="default", choices=["fast", "default", "best"])
    p.add_argument("--overwrite", action="store_true",
                   help="write into an existing folder that holds other files (those files are left alone)")
    add_threads_argument(p)
    p.set_defaults(func=cmd_demo)


def cmd_demo(args) -> int:
    import warnings

    import numpy as np
    import torch

    from ..data.synthetic import render_subject, to_uint8
    from ..evaluate.synthetic import face_region, vertex_error_mm
    from ..export.mesh import write_obj
    from ..export.preview import save_png
    from ..export.reconstruction import save_reconstruction
    from ..calibrate.install import load_model
    from ..pipeline import reconstruct
    from ..utils.io import check_output_dir, output_dir

    out = check_output_dir(Path(args.out), overwrite=args.overwrite)
    t0 = time.perf_counter()
    model = load_model(args.model)
    t_model = time.perf_counter() - t0
    yaws = (-30.0, 0.0, 30.0)
    t1 = time.perf_counter()
    subj = render_subject(model, yaws, image_size=args.size, seed=args.seed)
    t_render = time.perf_counter() - t1
    images = list(to_uint8(subj.images))
    with output_dir(out, overwrite=args.overwrite) as tmp:
        inputs = tmp / "inputs"
        inputs.mkdir()
        paths = [save_png(inputs / f"view_{int(y):+d}.png", img) for img, y in zip(images, yaws)]
        gt = tmp / "ground_truth"
        gt.mkdir()
        with torch.no_grad():
            gt_out = model(subj.shape[None], subj.expression[None], subj.pose[None])
        write_obj(gt / "mesh.obj", gt_out.vertices[0].numpy(), model.faces.numpy(),
                  vertex_colors=subj.vertex_colors.numpy())
        np.savez(gt / "params.npz", shape=subj.shape.numpy(), expression=subj.expression.numpy(),
                 pose=subj.pose.numpy(), view_rotations=subj.view_rotations.numpy(),
                 cam_scale=subj.cameras.scale.numpy(), cam_trans=subj.cameras.trans.numpy())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rec = reconstruct(paths, model=model, preset=args.preset, progress=True)
        save_reconstruction(rec, tmp / "reconstruction")
        face = face_region(model, gt_out.vertices[0].numpy(), gt_out.landmarks[0].numpy())
        err = vertex_error_mm(rec.vertices, gt_out.vertices[0].numpy(), rec.landmarks3d,
                              gt_out.landmarks[0].numpy(), face)
        summary = {
            "model": model.name, "vertices": model.num_vertices, "faces": int(model.faces.shape[0]),
            "views_yaw_deg": list(yaws), "image_size": args.size, "seed": args.seed, "preset": args.preset,
            "face_error_mm": {"mean": round(err.mean_mm, 3), "median": round(err.median_mm, 3)},
            "reprojection_error_px": [round(float(e), 3) for e in rec.reprojection_error_px],
            "seconds": {"load_model": round(t_model, 3), "render_3_views": round(t_render, 3),
                        **{k: round(v, 3) for k, v in rec.timings.items()}},
        }
        (tmp / "summary.json").write_text(json.dumps(summary, indent=2))
        lines = [f"mfnet demo: model {model.name} ({model.num_vertices} vertices, {summary['faces']} faces)",
                 f"rendered a random head from {len(yaws)} views (yaw {', '.join(f'{y:+.0f}' for y in yaws)} deg) "
                 f"at {args.size}px, then reconstructed it from the images (detection included)",
                 f"face-region error vs ground truth: mean {err.mean_mm:.2f} mm, median {err.median_mm:.2f} mm "
                 "(pupil distance normalised to 62.85 mm)",
                 f"reconstruction took {rec.timings['total']:.1f} s (preset {args.preset})",
                 "files: inputs/*.png, ground_truth/mesh.obj, reconstruction/ (mesh.obj + texture.png, mesh.glb, "
                 "params, landmarks.json, overlays, report.html)"]
        (tmp / "summary.txt").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"wrote {out}/")
    return 0
