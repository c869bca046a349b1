"""Cameras: project head-model points (metres, y up, face towards +z) to screen space.

Screen space is in pixels: origin at the top-left image corner, x to the right,
y downwards; pixel (row i, col j) has its centre at (x=j+0.5, y=i+0.5).
``project`` returns ``(x_px, y_px, depth)`` where a *smaller* depth is closer to
the camera.

Two models are provided:

* :class:`WeakPerspectiveCameras` -- the DECA convention
  ``ndc = scale * (X[..., :2] + trans)``, ``x_px = W/2 + ndc_x * S``,
  ``y_px = H/2 - ndc_y * S`` with ``S = min(H, W) / 2`` and ``depth = -z``
  (an orthographic camera at +z looking down -z).  With ``inv_distance`` k > 0 it is a
  pinhole at distance ``1 / k`` on the +z axis: ``ndc = scale * (X[..., :2] + trans) / (1 - k z)``
  (``scale`` is then the scale of the plane z = 0).
* :class:`PerspectiveCameras` -- the OpenCV pinhole convention
  ``Xc = R X + t``, ``x_px = fx Xc/Zc + cx``, ``y_px = fy Yc/Zc + cy``,
  ``depth = Zc``.  A camera in front of the face has ``R = diag(1, -1, -1)``;
  :func:`look_at_opencv` builds ``R, t`` from an eye position.

Both classes also offer ``view_dirs(points)``: unit vectors, in world
coordinates, from each point towards the camera (used for back-face tests and
cosine weights in texture extraction).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from .rasterize import _image_size

__all__ = [
    "WeakPerspectiveCameras",
    "PerspectiveCameras",
    "look_at_opencv",
    "intrinsics_from_fov",
]


@dataclass
class WeakPerspectiveCameras:
    """Batch of DECA-style weak-perspective (scaled orthographic) cameras.

    Attributes:
        scale: (B,) isotropic scale (NDC units per metre) of the plane z = 0.
        trans: (B, 2) translation added to (x, y) *before* scaling (metres).
        inv_distance: (B,) or None: 1 / the distance (metres) from the plane z = 0 to a pinhole on
            the +z axis (finite-distance perspective, ``ndc / (1 - inv_distance z)``); None or 0:
            scaled orthographic.
    """

    scale: Tensor
    trans: Tensor
    inv_distance: Tensor | None = None

    def __post_init__(self) -> None:
        self.scale = torch.as_tensor(self.scale).reshape(-1)
        self.trans = torch.as_tensor(self.trans, dtype=self.scale.dtype, device=self.scale.device).reshape(-1, 2)
        if self.scale.shape[0] != self.trans.shape[0]:
            raise ValueError(f"scale {tuple(self.scale.shape)} and trans {tuple(self.trans.shape)} batch sizes differ")
        if self.inv_distance is not None:
            k = torch.as_tensor(self.inv_distance, dtype=self.scale.dtype, device=self.scale.device).reshape(-1)
            self.inv_distance = k.expand(self.scale.shape[0]) if k.shape[0] == 1 else k
            if self.inv_distance.shape[0] != self.scale.shape[0]:
                raise ValueError(f"inv_distance {tuple(k.shape)} and scale {tuple(self.scale.shape)} batch sizes differ")

    def __len__(self) -> int:
        return self.scale.shape[0]

    @property
    def perspective_correct(self) -> bool:
        return False

    def to(self, device=None, dtype=None) -> "WeakPerspectiveCameras":
        k = None if self.inv_distance is None else self.inv_distance.to(device=device, dtype=dtype)
        return WeakPerspectiveCameras(self.scale.to(device=device, dtype=dtype),
                                      self.trans.to(device=device, dtype=dtype), k)

    def project(self, verts: Tensor, image_size) -> Tensor:
        """(B, V, 3) world points -> (B, V, 3) screen points (x_px, y_px, depth=-z)."""
        h, w = _image_size(image_size)
        s = min(h, w) / 2.0
        scale = self.scale.to(verts)[:, None, None]
        if self.inv_distance is not None:  # finite distance: points nearer the camera look larger
            scale = scale / (1.0 - self.inv_distance.to(verts)[:, None, None] * verts[..., 2:3])
        ndc = scale * (verts[..., :2] + self.trans.to(verts)[:, None, :])
        x = w / 2.0 + ndc[..., 0] * s
        y = h / 2.0 - ndc[..., 1] * s
        return torch.stack((x, y, -verts[..., 2]), dim=-1)

    def view_dirs(self, points: Tensor) -> Tensor:
        """Unit directions towards the camera (B, N, 3): +z for every point, or towards the pinhole
        ``(-trans, 1 / inv_distance)`` at a finite distance."""
        if self.inv_distance is None:
            d = torch.zeros_like(points)
            d[..., 2] = 1.0
            return d
        k = self.inv_distance.to(points)[:, None]
        # (centre - p) * k, with centre = (-trans, 1/k): finite as k -> 0 (then +z)
        d = torch.cat([(-self.trans.to(points)[:, None, :] - points[..., :2]) * k[..., None],
                       (1.0 - k * points[..., 2])[..., None]], dim=-1)
        return d / d.norm(dim=-1, keepdim=True).clamp_min(1e-12)


@dataclass
class PerspectiveCameras:
    """Batch of OpenCV pinhole cameras.

    Attributes:
        K: (B, 3, 3) intrinsics in pixels (``K[0,0]=fx, K[1,1]=fy, K[0,2]=cx,
           K[1,2]=cy``; a skew ``K[0,1]`` is honoured).  Pixel centres follow the
           renderer convention, so the image centre is ``cx = W/2, cy = H/2``.
        R: (B, 3, 3) world-to-camera rotation.
        t: (B, 3) world-to-camera translation (``Xc = R X + t``).
    """

    K: Tensor
    R: Tensor
    t: Tensor

    def __post_init__(self) -> None:
        self.K = torch.as_tensor(self.K).reshape(-1, 3, 3)
        self.R = torch.as_tensor(self.R, dtype=self.K.dtype, device=self.K.device).reshape(-1, 3, 3)
        self.t = torch.as_tensor(self.t, dtype=self.K.dtype, device=self.K.device).reshape(-1, 3)
        b = {self.K.shape[0], self.R.shape[0], self.t.shape[0]}
        if len(b) != 1:
            raise ValueError("K, R and t must have the same batch size")

    def __len__(self) -> int:
        return self.K.shape[0]

    @property
    def perspective_correct(self) -> bool:
        return True

    def to(self, device=None, dtype=None) -> "PerspectiveCameras":
        return PerspectiveCameras(*(x.to(device=device, dtype=dtype) for x in (self.K, self.R, self.t)))

    def to_camera(self, verts: Tensor) -> Tensor:
        """World (B, V, 3) -> camera coordinates ``R X + t``."""
        return verts @ self.R.to(verts).transpose(1, 2) + self.t.to(verts)[:, None, :]

    def project(self, verts: Tensor, image_size=None) -> Tensor:
        """(B, V, 3) world points -> (B, V, 3) screen points (x_px, y_px, Zc).

        ``image_size`` is accepted for interface symmetry; the intrinsics
        already live in pixel units.  Points with ``Zc <= 0`` produce
        meaningless pixel coordinates; the rasteriser skips faces touching them
        when ``perspective_correct`` is on.
        """
        xc = self.to_camera(verts)
        p = xc @ self.K.to(verts).transpose(1, 2)
        z = xc[..., 2]
        return torch.stack((p[..., 0] / p[..., 2], p[..., 1] / p[..., 2], z), dim=-1)

    def centers(self) -> Tensor:
        """(B, 3) camera centres in world coordinates (``-R^T t``)."""
        return -(self.R.transpose(1, 2) @ self.t[..., None])[..., 0]

    def view_dirs(self, points: Tensor) -> Tensor:
        """Unit directions from each point (B, N, 3) towards its camera centre."""
        d = self.centers().to(points)[:, None, :] - points
        return d / d.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def look_at_opencv(eye, target=(0.0, 0.0, 0.0), up=(0.0, 1.0, 0.0), dtype=None, device=None) -> tuple[Tensor, Tensor]:
    """Rotation/translation of OpenCV cameras at ``eye`` looking at ``target``.

    Args:
        eye, target, up: (3,) or (B, 3) world positions / up direction.
    Returns:
        R (B, 3, 3) with rows (right, down, forward) and t (B, 3) = -R eye, so
        that ``Xc = R X + t`` (x right, y down, z forward).  For ``eye=(0,0,d)``
        looking at the origin with ``up=+y`` this gives ``R = diag(1,-1,-1)``
        and ``t = (0, 0, d)``.
    """
    if dtype is None:
        dtype = eye.dtype if isinstance(eye, Tensor) and eye.is_floating_point() else torch.get_default_dtype()
    eye = torch.as_tensor(eye, dtype=dtype, device=device).reshape(-1, 3)
    target = torch.as_tensor(target, dtype=dtype, device=eye.device).reshape(-1, 3).expand_as(eye)
    up = torch.as_tensor(up, dtype=dtype, device=eye.device).reshape(-1, 3).expand_as(eye)
    fwd = target - eye
    fwd = fwd / fwd.norm(dim=-1, keepdim=True)
    right = torch.linalg.cross(fwd, up, dim=-1)
    right = right / right.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    down = torch.linalg.cross(fwd, right, dim=-1)
    R = torch.stack((right, down, fwd), dim=1)
    t = -(R @ eye[..., None])[..., 0]
    return R, t


def intrinsics_from_fov(fov_deg: float, image_size, batch: int = 1, dtype=None, device=None) -> Tensor:
    """(B, 3, 3) pinhole intrinsics with the given *vertical* field of view.

    Square pixels, principal point at the image centre ``(W/2, H/2)``.
    """
    h, w = _image_size(image_size)
    f = (h / 2.0) / math.tan(math.radians(fov_deg) / 2.0)
    K = torch.tensor([[f, 0.0, w / 2.0], [0.0, f, h / 2.0], [0.0, 0.0, 1.0]], dtype=dtype, device=device)
    return K.expand(batch, 3, 3).clone()


def frame_cameras(vertices: torch.Tensor, fill: float = 0.75, inv_distance: float = 0.0) -> WeakPerspectiveCameras:
    """Weak-perspective cameras that centre each view's (B, V, 3) vertices and fill ``fill`` of the frame
    (of the plane z = 0); ``inv_distance`` > 0 puts a pinhole at 1 / inv_distance on the +z axis (see
    :class:`WeakPerspectiveCameras`), 0 keeps them scaled orthographic."""
    lo, hi = vertices[..., :2].amin(1), vertices[..., :2].amax(1)
    center, extent = (lo + hi) / 2, (hi - lo).amax(-1)
    k = float(inv_distance)
    if not k >= 0:
        raise ValueError(f"inv_distance must be >= 0 (1/m; 0: orthographic), got {inv_distance!r}")
    return WeakPerspectiveCameras(scale=2 * fill / extent, trans=-center,
                                  inv_distance=torch.full_like(extent, k) if k > 0 else None)
