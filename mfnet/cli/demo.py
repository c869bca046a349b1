"""`mfnet demo`: render a random head from 3 views with the default open model and export it."""
from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="render a random head from 3 views and export mesh + texture (./mfnet-demo)")
    p.add_argument("--out", default="mfnet-demo", help="output folder (default: ./mfnet-demo)")
    p.add_argument("--model", default=None, help="head model name or .npz (default: ict-facekit)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", type=int, default=512, help="render size in pixels (default 512)")
    p.set_defaults(func=cmd_demo)


def cmd_demo(args) -> int:
    import numpy as np
    import torch

    from ..data.synthetic import render_subject, to_uint8
    from ..export.mesh import write_obj
    from ..export.preview import save_png
    from ..headmodel.registry import load_head_model
    from ..render.texture import extract_texture
    from ..utils.io import atomic_dir

    t0 = time.perf_counter()
    model = load_head_model(args.model)
    t_model = time.perf_counter() - t0
    yaws = (-30.0, 0.0, 30.0)
    t1 = time.perf_counter()
    subj = render_subject(model, yaws, image_size=args.size, seed=args.seed)
    t_render = time.perf_counter() - t1
    texture = None
    if model.has_uvs:
        with torch.no_grad():
            tex, vis = extract_texture(subj.images, subj.vertices, model.faces, model.vt, model.ft, subj.cameras, 512)
            w = vis / vis.sum(0, keepdim=True).clamp_min(1e-6)
            fused = (tex * w).sum(0)
            covered = vis.sum(0) > 0
            fused = torch.where(covered, fused, fused.new_tensor(0.5).expand_as(fused))
        texture = to_uint8(fused[None])[0]
    out = Path(args.out)
    with atomic_dir(out) as tmp:
        for img, yaw in zip(to_uint8(subj.images), yaws):
            save_png(tmp / f"view_{int(yaw):+d}.png", img)
        canonical = subj.canonical_vertices.cpu().numpy()
        faces = model.faces.cpu().numpy()
        if texture is not None:
            write_obj(tmp / "mesh.obj", canonical, faces, model.vt.cpu().numpy(), model.ft.cpu().numpy(), texture=texture)
        else:
            write_obj(tmp / "mesh.obj", canonical, faces, vertex_colors=subj.vertex_colors.cpu().numpy())
        np.savez(tmp / "params.npz", shape=subj.shape.numpy(), expression=subj.expression.numpy(),
                 pose=subj.pose.numpy(), view_rotations=subj.view_rotations.numpy(),
                 cam_scale=subj.cameras.scale.numpy(), cam_trans=subj.cameras.trans.numpy())
        summary = {
            "model": model.name, "vertices": model.num_vertices, "faces": int(model.faces.shape[0]),
            "views_yaw_deg": list(yaws), "image_size": args.size, "seed": args.seed,
            "shape_norm": float(subj.shape.norm()), "expression_norm": float(subj.expression.norm()),
            "seconds": {"load_model": round(t_model, 3), "render_3_views": round(t_render, 3)},
        }
        (tmp / "summary.json").write_text(json.dumps(summary, indent=2))
        lines = [f"mfnet demo: model {model.name} ({model.num_vertices} vertices, {summary['faces']} faces)",
                 f"rendered {len(yaws)} views at {args.size}px (yaw {', '.join(f'{y:+.0f}' for y in yaws)} deg) "
                 f"in {t_render:.2f} s",
                 f"files: view_*.png, mesh.obj{' + mesh.mtl + mesh.png (UV texture fused from the views)' if texture is not None else ''}, params.npz"]
        (tmp / "summary.txt").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"wrote {out}/")
    return 0
