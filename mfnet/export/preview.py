"""Quick looks at a head model: a shaded turntable strip, PNG saving."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from ..utils.io import atomic_path


def render_turntable(model, n_views: int = 8, size: int = 256, shape=None, expression=None) -> np.ndarray:
    """Grey, SH-lit renders of the model at ``n_views`` yaw angles, side by side: (size, n*size, 3) uint8."""
    from ..render.cameras import frame_cameras
    from ..render.shading import frontal_light
    from ..render import Renderer

    dt = model.v_template.dtype
    yaws = torch.linspace(0, 2 * math.pi, n_views + 1, dtype=dt)[:-1]
    pose = torch.zeros(n_views, 15, dtype=dt)
    pose[:, 1] = yaws
    with torch.no_grad():
        out = model(None if shape is None else shape.expand(n_views, -1),
                    None if expression is None else expression.expand(n_views, -1), pose)
        verts = out.vertices
        one = frame_cameras(verts.reshape(1, -1, 3), fill=0.8)  # one framing shared by all views
        cams = type(one)(one.scale.expand(n_views), one.trans.expand(n_views, 2))
        albedo = torch.full_like(verts, 0.75)
        img = Renderer(size).render(verts, model.faces, cams, vertex_colors=albedo,
                                    sh_coeffs=frontal_light(n=n_views, dtype=dt),
                                    background=torch.ones(n_views, 3, size, size, dtype=dt)).image
    img = img.clamp(0, 1).permute(2, 0, 3, 1).reshape(size, n_views * size, 3)
    return (img.cpu().numpy() * 255 + 0.5).astype(np.uint8)


def save_png(path: str | Path, image: np.ndarray) -> Path:
    from PIL import Image

    path = Path(path)
    with atomic_path(path) as tmp:
        Image.fromarray(np.asarray(image, dtype=np.uint8)).save(tmp, format="PNG")
    return path
