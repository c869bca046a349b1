"""2x3 affine maps of pixel coordinates (crop <-> photo), in one place."""
from __future__ import annotations

import numpy as np


def apply_affine(points: np.ndarray, A: np.ndarray) -> np.ndarray:
    """Points through affine maps ``[M | b]``, in float64: one (2, 3) map for ``(..., 2)`` points, or
    (N, 2, 3) maps for (N, V, 2) points (map i for the points of view i)."""
    A = np.asarray(A, np.float64)
    p = np.asarray(points, np.float64)
    if A.ndim == 2:
        return p @ A[:, :2].T + A[:, 2]
    return np.einsum("nij,nvj->nvi", A[:, :, :2], p) + A[:, None, :, 2]
