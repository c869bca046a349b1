"""Synthetic multi-view subjects with known ground truth, rendered from a head model.

Used by ``mfnet demo``, tests and benchmarks: random identity, expression, skin albedo and SH
lighting; one head, several yaw angles; weak-perspective cameras that frame the head.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..headmodel.model import HeadModel
from ..render import Renderer, WeakPerspectiveCameras
from ..render.cameras import frame_cameras
from ..render.shading import frontal_light

@dataclass
class SyntheticSubject:
    images: torch.Tensor  # (N, 3, H, W) in [0, 1]
    masks: torch.Tensor  # (N, 1, H, W)
    shape: torch.Tensor  # (S,)
    expression: torch.Tensor  # (E,)
    pose: torch.Tensor  # (15,) shared neck/jaw/eye pose (global part zero)
    view_rotations: torch.Tensor  # (N, 3) axis-angle of the head in each view
    cameras: WeakPerspectiveCameras  # N cameras
    sh_coeffs: torch.Tensor  # (N, 9, 3)
    vertex_colors: torch.Tensor  # (V, 3) albedo
    vertices: torch.Tensor  # (N, V, 3) posed vertices in each view's frame
    canonical_vertices: torch.Tensor  # (V, 3) the head before the view rotation
    landmarks2d: torch.Tensor  # (N, 68, 2) projected landmarks, pixels
    yaws_deg: tuple[float, ...]


def skin_albedo(model: HeadModel, generator: torch.Generator, dtype=torch.float32) -> torch.Tensor:
    """Per-vertex albedo: a random skin tone with smooth variation, redder lips, white eyes."""
    v = model.v_template
    tone = torch.tensor([0.78, 0.58, 0.47]) * (0.75 + 0.35 * torch.rand(1, generator=generator))
    tone = tone + 0.04 * torch.randn(3, generator=generator)
    freq = torch.randn(3, 3, generator=generator) * 25.0
    phase = torch.rand(3, generator=generator) * 6.28
    variation = 0.05 * torch.sin(v.cpu().float() @ freq + phase).mean(1, keepdim=True)
    # fine per-vertex mottling (pores/freckles) so photos carry texture for optical flow
    mottling = 0.06 * torch.randn(v.shape[0], 1, generator=generator) * torch.tensor([[1.0, 0.9, 0.85]])
    colors = (tone[None] + variation + mottling).clamp(0.05, 0.95)
    for name, color in (("lips", (0.70, 0.38, 0.38)), ("eyeballs", (0.85, 0.85, 0.82))):
        if name in model.masks:
            colors[model.masks[name]] = torch.tensor(color)
    return _facial_features(model, colors, generator).to(dtype)


def _polyline_distance(points: torch.Tensor, line: torch.Tensor) -> torch.Tensor:
    """(P,) distance from each of ``points (P, 3)`` to the polyline through ``line (K, 3)``."""
    a, b = line[:-1], line[1:]  # (K-1, 3) segments
    ab = b - a
    t = (((points[:, None] - a[None]) * ab[None]).sum(-1) / (ab * ab).sum(-1).clamp_min(1e-12)).clamp(0, 1)
    return (points[:, None] - (a[None] + t[..., None] * ab[None])).norm(dim=-1).amin(1)


def _paint(colors: torch.Tensor, dist: torch.Tensor, radius: float, soft: float, color: torch.Tensor) -> None:
    alpha = ((radius + soft - dist) / soft).clamp(0, 1)[:, None]
    colors.mul_(1 - alpha).add_(alpha * color)


def _facial_features(model: HeadModel, colors: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Eyebrows, lash lines and irises/pupils, so that the renders look like faces to a landmark
    detector (a skin-only head has no brows or pupils to find). Placed from the model's own 68
    landmarks on the mean head (metres) and from the eyeball vertices."""
    v = model.v_template.detach().cpu().float()
    lmk = model.template_landmarks().detach().cpu().float()
    scale = float((lmk[45] - lmk[36]).norm()) / 0.09  # ~1 for a head in metres with 9 cm outer eye corners
    face = model.masks.get("face")
    ids = face if face is not None else torch.arange(v.shape[0])
    pts = v[ids]
    hair = torch.tensor([0.16, 0.11, 0.08]) * (0.6 + 0.8 * torch.rand(1, generator=generator))
    sub = colors[ids]
    for brow in (lmk[17:22], lmk[22:27]):
        _paint(sub, _polyline_distance(pts, brow), 0.0035 * scale, 0.0015 * scale, hair)
    for lid in (lmk[36:40], lmk[42:46]):  # upper lid: lash line
        _paint(sub, _polyline_distance(pts, lid), 0.0008 * scale, 0.0008 * scale, hair * 0.6)
    colors[ids] = sub
    eyeballs = model.masks.get("eyeballs")
    if eyeballs is not None:
        iris = torch.tensor([0.30, 0.20, 0.12]) * (0.4 + 1.2 * torch.rand(1, generator=generator))
        ev = v[eyeballs]
        for side in (ev[:, 0] < 0, ev[:, 0] >= 0):
            if side.sum() < 10:
                continue
            c = ev[side].mean(0)
            d = ev[side] - c
            cos = d[:, 2] / d.norm(dim=1).clamp_min(1e-12)  # angle from the gaze (+z)
            sel = eyeballs[side]
            colors[sel[cos > 0.86]] = iris.to(colors)  # iris: within ~30 degrees of the gaze
            colors[sel[cos > 0.97]] = torch.tensor([0.04, 0.03, 0.03]).to(colors)  # pupil
    return colors


def random_expression(model: HeadModel, generator: torch.Generator, scale: float = 1.0) -> torch.Tensor:
    if str(model.data_meta.get("source", "")).startswith("ICT"):
        # ICT blendshape activations live in [0, 1]: a few mild, sparse activations
        act = torch.rand(model.n_expr, generator=generator) * 0.35 * scale
        return act * (torch.rand(model.n_expr, generator=generator) < 0.2)
    return torch.randn(model.n_expr, generator=generator) * 0.6 * scale


def render_subject(model: HeadModel, yaws_deg=(-30.0, 0.0, 30.0), image_size: int = 256, seed: int = 0,
                   shape_scale: float = 1.0, expression_scale: float = 1.0, renderer: Renderer | None = None,
                   background: float = 0.5, inv_distance: float = 0.0) -> SyntheticSubject:
    """Render one random subject from several yaw angles (degrees; positive turns the face to its left).
    ``inv_distance`` (1/m, > 0): a perspective camera 1 / inv_distance from the head's origin (about
    10 cm behind the face), like a real photo; 0: scaled orthographic, MFNet's camera."""
    g = torch.Generator().manual_seed(seed)
    dt = model.v_template.dtype
    n = len(yaws_deg)
    shape = (torch.randn(model.n_shape, generator=g) * shape_scale).to(dt)
    expression = random_expression(model, g, expression_scale).to(dt)
    pose = torch.zeros(15, dtype=dt)
    pitch = (torch.rand(n, generator=g) - 0.5) * math.radians(10)
    rot = torch.stack([pitch, torch.tensor([math.radians(y) for y in yaws_deg]), torch.zeros(n)], 1).to(dt)
    canonical = model(shape[None], expression[None], pose[None]).vertices[0]
    with torch.no_grad():
        out = model(shape.expand(n, -1), expression.expand(n, -1), _with_global(pose, rot))
    cams = frame_cameras(out.vertices, inv_distance=inv_distance)
    light = frontal_light(n=n, dtype=dt) * (0.9 + 0.2 * torch.rand(n, 1, 1, generator=g)).to(dt)
    albedo = skin_albedo(model, g, dt)
    renderer = renderer or Renderer(image_size)
    bg = torch.full((n, 3, image_size, image_size), background, dtype=dt)
    with torch.no_grad():
        r = renderer.render(out.vertices, model.faces, cams, vertex_colors=albedo.expand(n, -1, -1),
                            sh_coeffs=light, background=bg)
        lmk2d = cams.project(out.landmarks, (image_size, image_size))[..., :2]
    return SyntheticSubject(images=r.image.clamp(0, 1), masks=r.mask, shape=shape, expression=expression, pose=pose,
                            view_rotations=rot, cameras=cams, sh_coeffs=light, vertex_colors=albedo,
                            vertices=out.vertices, canonical_vertices=canonical, landmarks2d=lmk2d,
                            yaws_deg=tuple(float(y) for y in yaws_deg))


def _with_global(pose: torch.Tensor, rot: torch.Tensor) -> torch.Tensor:
    p = pose.expand(rot.shape[0], -1).clone()
    p[:, :3] = rot
    return p


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(N, 3, H, W) in [0, 1] -> (N, H, W, 3) uint8."""
    return (images.detach().clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy() * 255 + 0.5).astype(np.uint8)
