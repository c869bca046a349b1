"""Naive reference rasteriser (Python loop over faces) for tests and benchmarks.

Deliberately simple and slow: each face is rasterised over its bounding-box
pixels with plain edge functions (inclusive of edges), and a per-pixel depth
test keeps the nearest face (ties: the earlier face wins).  Not used by the
renderer itself.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["reference_rasterize"]


def reference_rasterize(screen_verts: Tensor, faces: Tensor, image_size, perspective_correct: bool = False):
    """Returns (pix_to_face (B,H,W) long, zbuf (B,H,W)) -- no gradients."""
    H, W = (image_size, image_size) if isinstance(image_size, int) else image_size
    sv = screen_verts.detach()
    B = sv.shape[0]
    p2f = torch.full((B, H, W), -1, dtype=torch.long, device=sv.device)
    zbuf = torch.full((B, H, W), math.inf, dtype=sv.dtype, device=sv.device)
    for b in range(B):
        for f, (i0_, i1_, i2_) in enumerate(faces.tolist()):
            t = sv[b, [i0_, i1_, i2_]]
            x, y, z = t[:, 0], t[:, 1], t[:, 2]
            area = float((x[1] - x[0]) * (y[2] - y[0]) - (y[1] - y[0]) * (x[2] - x[0]))
            if area == 0 or not torch.isfinite(t).all() or (perspective_correct and bool((z <= 0).any())):
                continue
            j0 = max(math.ceil(float(x.min()) - 0.5), 0)
            j1 = min(math.floor(float(x.max()) - 0.5), W - 1)
            i0 = max(math.ceil(float(y.min()) - 0.5), 0)
            i1 = min(math.floor(float(y.max()) - 0.5), H - 1)
            if j1 < j0 or i1 < i0:
                continue
            py, px = torch.meshgrid(
                torch.arange(i0, i1 + 1, dtype=sv.dtype) + 0.5, torch.arange(j0, j1 + 1, dtype=sv.dtype) + 0.5, indexing="ij"
            )
            w0 = (x[2] - x[1]) * (py - y[1]) - (y[2] - y[1]) * (px - x[1])
            w1 = (x[0] - x[2]) * (py - y[2]) - (y[0] - y[2]) * (px - x[2])
            w2 = (x[1] - x[0]) * (py - y[0]) - (y[1] - y[0]) * (px - x[0])
            b0, b1, b2 = w0 / area, w1 / area, w2 / area
            inside = (b0 >= 0) & (b1 >= 0) & (b2 >= 0)
            if perspective_correct:
                d = 1.0 / (b0 / z[0] + b1 / z[1] + b2 / z[2])
            else:
                d = b0 * z[0] + b1 * z[1] + b2 * z[2]
            zb = zbuf[b, i0 : i1 + 1, j0 : j1 + 1]
            win = inside & (d < zb)
            zb[win] = d[win]
            p2f[b, i0 : i1 + 1, j0 : j1 + 1][win] = f
    return p2f, zbuf
