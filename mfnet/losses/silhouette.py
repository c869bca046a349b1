"""Silhouette losses: the model's outline against a person mask of the photo.

A point of the model's outer outline (:func:`mfnet.fit.silhouette.outline_vertices`) projects onto
the photo's outline when the fit is right. :func:`signed_distance` turns a mask into the distance
to its outline (pixels, positive outside); :func:`silhouette_loss` reads it at the projected points
with a robust (Geman-McClure) penalty, so that outline points far from any photo outline (the jaw
above the neck, which the mask continues; hair) stop pulling.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as Fn
from scipy.ndimage import distance_transform_edt


def signed_distance(mask: torch.Tensor) -> torch.Tensor:
    """(H, W) bool mask -> (H, W) float: pixels from each pixel centre to the mask's outline, positive
    outside the mask, negative inside (about ±0.5 on the two sides of the outline); ±(H + W) everywhere
    when the mask is empty or full (no outline: no pull anywhere).

    The exact Euclidean distance transform of SciPy, in float64: OpenCV's (``DIST_MASK_PRECISE``) differs
    in the last bit from call to call in a long-running process (measured: 800 of 65,536 pixels of the
    same mask), which made two identical fits differ."""
    if mask.dim() != 2:
        raise ValueError(f"expected an (H, W) mask, got {tuple(mask.shape)}")
    m = mask.detach().cpu().numpy().astype(bool)
    bound = float(sum(m.shape))
    if not m.any() or m.all():
        d = np.full(m.shape, -bound if m.any() else bound, np.float32)
    else:
        d = np.where(m, 0.5 - distance_transform_edt(m), distance_transform_edt(~m) - 0.5).astype(np.float32)
    return torch.from_numpy(d).to(mask.device)


def silhouette_loss(points: torch.Tensor, sdf: torch.Tensor, weights: torch.Tensor, tau: float) -> torch.Tensor:
    """Mean over views of the weighted mean Geman-McClure penalty ``d² / (d² + tau²)`` of the signed
    distances ``d`` read (bilinearly) at ``points``.

    points (N, K, 2): pixel coordinates (x right, y down; pixel i covers [i, i + 1]); sdf (N, H, W):
    :func:`signed_distance` per view; weights (N, K) >= 0 (0: not an outline point in that view);
    tau: pixels at which the penalty is half its maximum. Returns a scalar in [0, 1)."""
    if points.dim() != 3 or points.shape[-1] != 2 or sdf.dim() != 3 or weights.shape != points.shape[:2]:
        raise ValueError(f"expected points (N, K, 2), sdf (N, H, W), weights (N, K); got {tuple(points.shape)}, "
                         f"{tuple(sdf.shape)}, {tuple(weights.shape)}")
    H, W = sdf.shape[-2:]
    scale = points.new_tensor([2.0 / W, 2.0 / H])
    grid = (points * scale - 1.0)[:, :, None]  # (N, K, 1, 2) in [-1, 1], align_corners=False
    d = Fn.grid_sample(sdf[:, None].to(points), grid, mode="bilinear", padding_mode="border",
                       align_corners=False)[:, 0, :, 0]
    rho = d * d / (d * d + tau * tau)
    return ((rho * weights).sum(1) / weights.sum(1).clamp_min(1e-8)).mean()
