"""Which surface points one view sees that another view also sees (z-buffer co-visibility).

Shared by the multi-view terms (:mod:`mfnet.losses.flow`, :mod:`mfnet.losses.photometric`): a
point hit by a pixel of view b lies on face ``f`` at barycentrics ``w``; it is co-visible in view
a when it projects inside a's frame and is the nearest surface there (its depth matches a's
z-buffer)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

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


@dataclass
class PairSamples:
    """Co-visible points of one ordered view pair: the pixels of view ``b`` (``mask`` (S, S)) hit faces
    ``f`` (K,) at ``w`` (K, 3); they land at ``q`` (K, 3) in view ``a``, visible there where ``inside``;
    ``keep``: indices (into the K) of the visible points drawn."""

    a: int
    b: int
    mask: torch.Tensor
    f: torch.Tensor
    w: torch.Tensor
    q: torch.Tensor
    inside: torch.Tensor
    keep: torch.Tensor


def covisible_pairs(screen_verts: torch.Tensor, frags, faces: torch.Tensor, size: int, covered: list[torch.Tensor],
                    depth_tol: float, most: int, generator: torch.Generator | None = None, zbuffer: bool = True,
                    pair_mask=None) -> Iterator[PairSamples]:
    """For every ordered pair of views (b outer, a inner, a != b): the surface points seen by view b's
    pixels in ``covered[b]`` (S, S) bool (and ``pair_mask(a, b)`` when given) that land in view a, and
    with ``zbuffer`` are its nearest surface there; at most ``most`` of them drawn with ``generator``.

    screen_verts (N, V, 3): each view's projected vertices; frags: their rasterisation."""
    p2f, bary, zbuf = frags.pix_to_face, frags.bary.detach(), frags.zbuf
    n = screen_verts.shape[0]
    for b in range(n):
        for a in range(n):
            if a == b:
                continue
            mask = covered[b] if pair_mask is None else covered[b] & pair_mask(a, b)
            f, w = p2f[b][mask], bary[b][mask]
            q, inside = land_in_view(screen_verts[a], faces, f, w, size, zbuf[a] if zbuffer else None, depth_tol)
            yield PairSamples(a, b, mask, f, w, q, inside, subsample(inside.nonzero()[:, 0], most, generator))
