"""Barycentric landmark embeddings: static iBUG-68, FLAME's dynamic jaw contour, MediaPipe."""
from __future__ import annotations

import math

import torch

from ..ibug import (  # noqa: F401  (re-exported)
    BROW_LEFT, BROW_RIGHT, EYE_LEFT, EYE_RIGHT, EYELID_PAIRS, JAW, LIP_PAIRS, MOUTH_INNER, MOUTH_OUTER, NOSE,
    NOW_LANDMARKS,
)


def vertices_to_landmarks(
    vertices: torch.Tensor, faces: torch.Tensor, lmk_faces_idx: torch.Tensor, lmk_bary_coords: torch.Tensor
) -> torch.Tensor:
    """Landmarks as barycentric combinations of face corners.

    vertices (B, V, 3); faces (F, 3); lmk_faces_idx (L,) or (B, L);
    lmk_bary_coords (L, 3) or (B, L, 3). Returns (B, L, 3).
    """
    B = vertices.shape[0]
    if lmk_faces_idx.dim() == 1:
        lmk_faces_idx = lmk_faces_idx.expand(B, -1)
    if lmk_bary_coords.dim() == 2:
        lmk_bary_coords = lmk_bary_coords.expand(B, -1, -1)
    corner_idx = faces[lmk_faces_idx]  # (B, L, 3)
    batch = torch.arange(B, device=vertices.device)[:, None, None]
    corners = vertices[batch, corner_idx]  # (B, L, 3, 3)
    return (corners * lmk_bary_coords[..., None].to(vertices.dtype)).sum(dim=2)


def contour_rows_from_rotation(rot: torch.Tensor, sign: float = -1.0, max_bin: int = 39) -> torch.Tensor:
    """Row of the dynamic contour table for head rotation(s) ``rot (B, 3, 3)``.

    FLAME convention (smplx / FLAME_PyTorch): yaw from the rotation, in degrees,
    scaled by ``sign`` and rounded; rows 0..39 for yaw >= 0, 40..78 for
    negative yaw, 78 beyond -39 degrees.
    """
    yaw = torch.atan2(-rot[:, 2, 0], torch.sqrt(rot[:, 0, 0] ** 2 + rot[:, 1, 0] ** 2)) * (180.0 / math.pi)
    y = torch.round(torch.clamp(sign * yaw, max=max_bin)).to(torch.long)
    neg_mask = (y < 0).long()
    mask = (y < -max_bin).long()
    neg_vals = mask * 78 + (1 - mask) * (max_bin - y)
    return neg_mask * neg_vals + (1 - neg_mask) * y
