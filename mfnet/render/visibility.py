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


def subsample(index: torch.Tensor, most: int, priority: torch.Tensor) -> torch.Tensor:
    """At most ``most`` entries of ``index`` (K,): those of lowest ``priority`` (K,), kept in their order.

    With :func:`pixel_priority` as the priority, whether a pixel is kept depends on its own priority and
    the threshold only, not on its position in ``index``: a small change of the candidates (one pixel
    more) changes the kept points only there, where a random permutation of the index would redraw them all."""
    if index.numel() <= most:
        return index
    order = torch.sort(priority, stable=True).indices[:most]
    return index[torch.sort(order).values]


def _bayer(period: int) -> torch.Tensor:
    """(period, period) ordered-dither threshold map with levels 0 .. period^2 - 1 (period a power of 2)."""
    m = torch.zeros(1, 1, dtype=torch.long)
    while m.shape[0] < period:
        m = torch.cat([torch.cat([4 * m, 4 * m + 2], 1), torch.cat([4 * m + 3, 4 * m + 1], 1)], 0)
    return m


def pixel_priority(size: int, generator: torch.Generator | None = None, period: int = 16,
                   device=None) -> torch.Tensor:
    """(S, S) sampling priorities of the pixels in [0, 1): an ordered-dither (Bayer) map of ``period``,
    shifted by a random offset, plus a random fraction of one level (ties broken at random).

    Keeping the pixels of lowest priority in any region keeps an evenly spread (stratified) subset
    of it; each call draws the same amount from ``generator``, whatever the candidates."""
    shift = torch.randint(period, (2,), generator=generator).tolist()
    jitter = torch.rand(size, size, generator=generator)
    reps = -(-size // period) + 1
    level = _bayer(period).repeat(reps, reps)[shift[0]:shift[0] + size, shift[1]:shift[1] + size]
    return ((level.to(jitter.dtype) + jitter) / period ** 2).to(device)


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
    with ``zbuffer`` are its nearest surface there; at most ``most`` of them, evenly spread: those of lowest
    :func:`pixel_priority` (one map per pair, drawn with ``generator``).

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
            prio = pixel_priority(size, generator, device=mask.device)[mask]
            cand = inside.nonzero()[:, 0]
            yield PairSamples(a, b, mask, f, w, q, inside, subsample(cand, most, prio[cand]))
