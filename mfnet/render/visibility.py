"""Which surface points one view sees that another view also sees (z-buffer co-visibility).

Shared by the multi-view terms (:mod:`mfnet.losses.flow`, :mod:`mfnet.losses.photometric`): a
point hit by a pixel of view b lies on face ``f`` at barycentrics ``w``; it is co-visible in view
a when it projects inside a's frame and is the nearest surface there (its depth matches a's
z-buffer)."""
from __future__ import annotations

import torch


def land_in_view(screen_verts: torch.Tensor, faces: torch.Tensor, face_idx: torch.Tensor, bary: torch.Tensor,
                 size: int, zbuf: torch.Tensor | None = None,
                 depth_tol: float = 3e-3) -> tuple[torch.Tensor, torch.Tensor]:
    """Where the points (``faces[face_idx]`` at ``bary``, (K, 3)) land in one view, and whether they are
    visible there.

    screen_verts (V, 3): that view's projected vertices (pixels x, y and depth); zbuf (S, S): its
    depth buffer, or None to test the frame only. Returns q (K, 3) and a (K,) bool mask."""
    q = (screen_verts[faces[face_idx]] * bary[..., None]).sum(1)
    ok = (q[:, 0] >= 0) & (q[:, 0] < size) & (q[:, 1] >= 0) & (q[:, 1] < size)
    if zbuf is not None:
        qi = q[:, :2].floor().long().clamp(0, size - 1)
        ok &= (q[:, 2] - zbuf[qi[:, 1], qi[:, 0]]).abs() < depth_tol
    return q, ok


def subsample(index: torch.Tensor, most: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """At most ``most`` entries of ``index``, drawn without replacement."""
    if index.numel() <= most:
        return index
    return index[torch.randperm(index.numel(), generator=generator)[:most].to(index.device)]
