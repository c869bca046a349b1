"""Per-view camera initialisation from 2D landmarks (no calibration needed).

Rotation: OpenCV PnP of the mean head's 3D landmarks against the detected 2D landmarks with a
long-focal pinhole (close to the weak-perspective camera). Scale and translation: closed-form
least squares of the weak-perspective projection given that rotation.
"""
from __future__ import annotations

import cv2
import numpy as np
import torch

from ..ibug import INNER as _INNER
from ..utils.rotation import FLIP as _FLIP

INNER = np.array(_INNER)  # brows, nose, eyes, mouth: stable under yaw (the contour is not)


def weak_perspective_lsq(points3d: torch.Tensor, points2d: torch.Tensor, weights: torch.Tensor,
                         image_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Closed-form (scale, trans) per view with ``ndc = s * (X_xy + t)``, given rotated points
    (N, L, 3) and pixel targets (N, L, 2)."""
    half = image_size / 2.0
    ndc = torch.stack([(points2d[..., 0] - half) / half, -(points2d[..., 1] - half) / half], -1)
    w = weights[..., None]
    X = points3d[..., :2]
    mx = (w * X).sum(1) / w.sum(1)
    my = (w * ndc).sum(1) / w.sum(1)
    Xc, yc = X - mx[:, None], ndc - my[:, None]
    s = (w * Xc * yc).sum((1, 2)) / (w * Xc * Xc).sum((1, 2)).clamp_min(1e-12)
    s = s.clamp_min(1e-3)
    t = my / s[:, None] - mx
    return s, t


def init_rotations(landmarks3d: torch.Tensor, landmarks2d: torch.Tensor, image_size: int) -> torch.Tensor:
    """Head rotation (N, 3) axis-angle in each view, from the mean head's landmarks (68, 3)
    (canonical frame) and the detected ones (N, 68, 2, renderer pixels)."""
    N = landmarks2d.shape[0]
    X = landmarks3d.detach().cpu().double().numpy()[INNER]
    f = 20.0 * image_size  # long focal: nearly orthographic
    K = np.array([[f, 0, image_size / 2], [0, f, image_size / 2], [0, 0, 1]])
    rots = []
    for i in range(N):  # one small PnP per view
        uv = landmarks2d[i].detach().cpu().double().numpy()[INNER]
        width = float(np.ptp(X[:, 0])) or 0.1
        z0 = f * width / max(float(np.ptp(uv[:, 0])), 1.0)
        rvec0 = cv2.Rodrigues(_FLIP)[0]
        ok, rvec, _ = cv2.solvePnP(X, uv, K, None, rvec0.copy(), np.array([[0.0], [0.0], [z0]]),
                                   useExtrinsicGuess=True, flags=cv2.SOLVEPNP_ITERATIVE)
        R_cv = cv2.Rodrigues(rvec)[0] if ok else _FLIP
        R_head = _FLIP @ R_cv  # rotation of the head in a camera that looks down -z with y up
        rots.append(cv2.Rodrigues(R_head)[0][:, 0])
    return torch.tensor(np.stack(rots), dtype=landmarks2d.dtype)
