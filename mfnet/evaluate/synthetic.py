"""Error against synthetic ground truth (same topology): pupil-normalised, rigidly aligned, in mm.

The face region is the NoW benchmark's (radius-1.4 sphere around the nose, from the ground
truth's own landmarks) intersected with the model's face mask: the part of the head the standard
protocols score, without the neck, ears and scalp that a photo of a face barely constrains.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..headmodel.landmarks import EYE_LEFT, EYE_RIGHT
from ..ibug import NOW_LANDMARKS
from .now import crop_scan

PUPIL_MM = 62.85


@dataclass
class VertexError:
    mean_mm: float
    median_mm: float
    per_vertex_mm: np.ndarray


def pupil_distance(landmarks3d: np.ndarray) -> float:
    """Distance between the eye centres (mean of each eye's six iBUG landmarks)."""
    return float(np.linalg.norm(landmarks3d[list(EYE_LEFT)].mean(0) - landmarks3d[list(EYE_RIGHT)].mean(0)))


def face_region(model, gt_vertices: np.ndarray, gt_landmarks: np.ndarray) -> np.ndarray:
    """Vertex indices scored by :func:`vertex_error_mm`: the NoW crop of the ground-truth mesh
    (``gt_landmarks``: its 68 iBUG points), within the model's ``face`` mask when it has one."""
    inside = crop_scan(np.asarray(gt_vertices), np.asarray(gt_landmarks)[list(NOW_LANDMARKS)])
    face = getattr(model, "masks", {}).get("face")
    if face is not None:
        keep = np.zeros_like(inside)
        keep[np.asarray(face)] = True
        inside &= keep
    return np.flatnonzero(inside)


def rigid_align(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Best rotation + translation of ``src`` onto ``dst`` (Kabsch), applied to ``src``."""
    ms, md = src.mean(0), dst.mean(0)
    U, _, Vt = np.linalg.svd((src - ms).T @ (dst - md))
    D = np.diag([1.0, 1.0, np.sign(np.linalg.det(U @ Vt))])
    R = (U @ D @ Vt).T
    return (src - ms) @ R.T + md


def vertex_error_mm(pred: np.ndarray, gt: np.ndarray, pred_lmk: np.ndarray, gt_lmk: np.ndarray,
                    region: np.ndarray | None = None) -> VertexError:
    """Per-vertex error on ``region`` after scaling both meshes to a 62.85 mm pupil distance and
    rigidly aligning the prediction to the ground truth on that region."""
    p = np.asarray(pred, np.float64) * (PUPIL_MM / pupil_distance(np.asarray(pred_lmk, np.float64)))
    g = np.asarray(gt, np.float64) * (PUPIL_MM / pupil_distance(np.asarray(gt_lmk, np.float64)))
    if region is not None:
        p, g = p[region], g[region]
    d = np.linalg.norm(rigid_align(p, g) - g, axis=1)
    return VertexError(float(d.mean()), float(np.median(d)), d)
