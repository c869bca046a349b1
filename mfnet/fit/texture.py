"""UV texture fused from all views (paper eqs. 3-4, beyond: visibility- and angle-weighted),
with holes filled."""
from __future__ import annotations

import cv2
import numpy as np
import torch

from ..render.texture import extract_texture


@torch.no_grad()
def fuse_texture(images: torch.Tensor, posed_vertices: torch.Tensor, faces: torch.Tensor, vt: torch.Tensor,
                 ft: torch.Tensor, cameras, tex_size: int = 512, sharpness: float = 4.0) -> np.ndarray:
    """(N, 3, S, S) crops + per-view posed vertices -> (T, T, 3) uint8 texture.

    Each texel is a weighted mean over the views that see it, weight = cos(angle)^sharpness,
    so the most frontal view dominates. Small holes inside the seen area are inpainted;
    texels no view sees get the mean seen colour.
    """
    tex, vis = extract_texture(images, posed_vertices, faces, vt, ft, cameras, tex_size)
    w = vis.clamp_min(0) ** sharpness
    wsum = w.sum(0)
    fused = (tex * w).sum(0) / wsum.clamp_min(1e-8)  # (3, T, T)
    seen = (wsum[0] > 1e-6).cpu().numpy()
    img = (fused.permute(1, 2, 0).clamp(0, 1).cpu().numpy() * 255 + 0.5).astype(np.uint8)
    if not seen.any():
        return np.full_like(img, 128)
    mean = img[seen].mean(0).astype(np.uint8)
    closed = cv2.morphologyEx(seen.astype(np.uint8), cv2.MORPH_CLOSE, np.ones((9, 9), np.uint8)).astype(bool)
    holes = closed & ~seen
    img[~seen] = mean
    if holes.any():
        img = cv2.inpaint(img, holes.astype(np.uint8), 3, cv2.INPAINT_TELEA)
    return img
