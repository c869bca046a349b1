"""Per-landmark visibility weights from a rough head-yaw estimate.

Neither backend reports per-point confidences. What goes wrong in practice is
the jaw contour on the far side of a turned face: MediaPipe places its fixed
mesh vertices there (hidden behind the cheek), dlib snaps them to the visible
silhouette; either way they do not correspond to fixed model vertices. So:

* yaw is estimated from the MediaPipe mesh depth (:func:`yaw_from_mesh`) or,
  for dlib, from where the nose tip sits between the jaw ends
  (:func:`yaw_from_points`);
* every iBUG point has a lateral position ``l`` in [-1, 1] on a frontal face
  (-1 = subject's right edge = iBUG 0, +1 = iBUG 16);
* ``t = l * sin(yaw)`` is how far the point has turned towards the far
  side; weight = ``clip(1 - gain * (t - dead), min_weight, 1)``, with a small
  dead zone for the jaw contour (down-weighted from ~10 deg of yaw) and a large
  one for eyes / brows / nose / mouth (only beyond ~45-60 deg, where the far
  eye corner and brow tail get hidden by the nose bridge).

Yaw sign convention: ``yaw > 0`` when the subject's LEFT side (iBUG 9-16,
image right in an unmirrored photo) is the far side.
"""
from __future__ import annotations

import numpy as np

from .landmarks import JAW

#: (subject's right, subject's left) MediaPipe vertex pairs on rigid parts of the face.
MESH_SYMMETRIC_PAIRS = np.array([(234, 454), (127, 356), (93, 323), (33, 263), (133, 362)], dtype=np.int64)


def _lateral_template() -> np.ndarray:
    """(68,) approximate lateral position of each iBUG point on a frontal face."""
    half = {  # subject's-left half (image right), by index; mirrored below
        17: 0.8, 18: 0.6, 19: 0.4, 20: 0.25, 21: 0.1,
        31: 0.2, 32: 0.1, 33: 0.0,
        36: 0.7, 37: 0.55, 38: 0.4, 39: 0.25, 40: 0.4, 41: 0.55,
        48: 0.4, 49: 0.3, 50: 0.15, 51: 0.0, 57: 0.0, 58: 0.15, 59: 0.3,
        60: 0.35, 61: 0.15, 62: 0.0, 66: 0.0, 67: 0.15,
    }
    from .landmarks import IBUG68_FLIP

    lat = np.zeros(68, np.float32)
    i = np.arange(17)
    lat[:17] = np.sin(0.5 * np.pi * (i - 8) / 8.0)
    for k, v in half.items():  # the table lists subject's-RIGHT points (negative side)
        lat[k] = -v
        lat[IBUG68_FLIP[k]] = v
    return lat


#: (68,) lateral position template, -1 (iBUG 0 side) .. +1 (iBUG 16 side).
LATERAL = _lateral_template()
_IS_JAW = np.zeros(68, bool)
_IS_JAW[list(JAW)] = True


def yaw_from_mesh(mesh: np.ndarray) -> float:
    """Yaw (radians) from a (478 or 468, 3) MediaPipe mesh in pixel units (z: larger = farther)."""
    m = np.asarray(mesh, np.float64)
    right, left = m[MESH_SYMMETRIC_PAIRS[:, 0]], m[MESH_SYMMETRIC_PAIRS[:, 1]]
    d = left - right
    dz = d[:, 2].sum()
    dxy = np.linalg.norm(d[:, :2], axis=1).sum()
    return float(np.arctan2(dz, dxy))


def yaw_from_points(points68: np.ndarray) -> float:
    """Rough yaw (radians) from 2D iBUG points: nose tip (30) position between the jaw ends (0, 16).

    Frontal faces put the nose tip half-way (yaw 0); at a full profile it
    reaches the far end (+-90 deg). Model: the jaw points follow the visible
    outline (as dlib's do), which stays at about +-R from the turning axis,
    while the nose tip, about R in front of it, moves by R sin(yaw); so
    ``yaw = asin(2 r - 1)``. Crude; in-plane roll invariant.
    """
    p = np.asarray(points68, np.float64)
    axis = p[16] - p[0]
    n2 = float(axis @ axis)
    if n2 <= 1e-9:
        return 0.0
    r = float((p[30] - p[0]) @ axis) / n2
    return float(np.arcsin(np.clip(2.0 * r - 1.0, -1.0, 1.0)))


def visibility_from_yaw(
    yaw: float,
    *,
    gain: float = 2.0,
    jaw_dead_zone: float = 0.1,
    inner_dead_zone: float = 0.6,
    min_weight: float = 0.2,
) -> np.ndarray:
    """(68,) float32 weights in ``[min_weight, 1]`` for a head turned by ``yaw`` radians.

    With the defaults, the outermost far-side jaw point weighs ~0.8 at 10 deg,
    ~0.5 at 20 deg and ``min_weight`` from 30 deg; near-side and central points
    keep 1. Vectorised over points; ``yaw`` may be NaN (all ones).
    """
    if not np.isfinite(yaw):
        return np.ones(68, np.float32)
    t = LATERAL * np.float32(np.sin(yaw))
    dead = np.where(_IS_JAW, jaw_dead_zone, inner_dead_zone).astype(np.float32)
    w = 1.0 - gain * np.maximum(t - dead, 0.0)
    return np.clip(w, min_weight, 1.0).astype(np.float32)
