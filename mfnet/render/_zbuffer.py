"""Discrete scanline z-buffer core of :func:`mfnet.render.rasterize.rasterize` (no autograd).

See the module docstring of :mod:`mfnet.render.rasterize` for the algorithm.
"""
from __future__ import annotations

import torch
from torch import Tensor

_KEY_EMPTY = torch.iinfo(torch.int64).max
_SUB = 256.0  # sub-pixel snapping grid (8 bits), as in GPU rasterisers
_GUARD_PX = 16384.0  # faces with a vertex farther out are skipped
_BIG = 1e18
_TILE = 8  # hierarchical-z tile size (px)


def _expand(counts: Tensor, total: int | None = None) -> tuple[Tensor, Tensor]:
    """For K groups of ``counts[k]`` items: (owner group, rank within group) of every item."""
    if total is None:
        total = int(counts.sum())
    owner = torch.repeat_interleave(torch.arange(counts.numel(), device=counts.device), counts, output_size=total)
    start = torch.cumsum(counts, 0) - counts
    return owner, torch.arange(total, device=counts.device) - start[owner]


def box_candidates(nx: Tensor, ny: Tensor, total: int | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """Enumerate all cells of K boxes of nx x ny cells without a Python loop.

    Returns (box index, row offset, column offset), each (sum(nx*ny),) long.
    """
    box, r = _expand(nx * ny, total)
    w = nx[box]
    di = torch.div(r, w, rounding_mode="floor")
    return box, di, r - di * w


def _prefilter(sv: Tensor, faces: Tensor, H: int, W: int, cull: bool, persp: bool):
    """Cheap per-face filter in the input precision (no autograd).

    Drops faces that are off-screen (generous by one pixel), beyond the guard
    band or not finite, behind the camera (perspective) or back-facing (when
    culling).  Returns (keep (K,) flat b*F+f ids, their screen triangles
    (K, 3, 3), (B, F) signed areas of all faces).
    """
    B, F = sv.shape[0], faces.shape[0]
    tri = sv.index_select(1, faces.reshape(-1)).view(B, F, 3, 3)
    x, y = tri[..., 0], tri[..., 1]
    xmin, xmax, ymin, ymax = x.amin(-1), x.amax(-1), y.amin(-1), y.amax(-1)
    ok = (xmax > -1.0) & (xmin < W + 1.0) & (ymax > -1.0) & (ymin < H + 1.0)
    ok &= (xmin > -_GUARD_PX) & (xmax < _GUARD_PX) & (ymin > -_GUARD_PX) & (ymax < _GUARD_PX)  # also drops NaN
    area_f = (x[..., 1] - x[..., 0]) * (y[..., 2] - y[..., 0]) - (y[..., 1] - y[..., 0]) * (x[..., 2] - x[..., 0])
    if cull:
        ok &= area_f <= 0
    if persp:
        ok &= tri[..., 2].amin(-1) > 0
    else:
        ok &= torch.isfinite(tri[..., 2]).all(-1)
    keep = torch.nonzero(ok.reshape(-1)).squeeze(1)
    return keep, tri.reshape(-1, 3, 3).index_select(0, keep), area_f


def _face_setup(t: Tensor, keep: Tensor, H: int, W: int, persp: bool):
    """Per (batch, face) scan-conversion data (no autograd).

    Screen x/y are snapped to a 1/256-pixel grid and held in float64, so every
    edge-function value below is an exact integer (|coords| < 16384 px).  With
    pixel centres P = (256 j + 128, 256 i + 128) and edge k from vertex k+1 to
    k+2, the oriented edge function plus tie bias is ``R0 + Ri * i + C * j``
    and a pixel is inside iff it is > 0 for the three edges.  The 0/1 bias
    implements the tie rule: a centre exactly on an edge belongs to the face iff
    the edge, oriented with the face on its positive side, has dy > 0 or
    (dy == 0 and dx > 0) -- true for exactly one of the two faces sharing it.

    Input: screen triangles ``t`` (K, 3, 3) and their flat b*F+f ids.
    Returns (keep (K',) ids of the faces with a non-empty snapped footprint,
    edge (K', 9) = [R0 | Ri | C], depth plane (K', 3) = [z at pixel (0,0) |
    dz/drow | dz/dcol] (1/z when perspective), i0, ny (K',) candidate rows,
    nx (K',) bounding-box width).
    """
    q = torch.round(t[..., :2].double() * _SUB)  # (K,3,2) snapped x, y
    X, Y = q[..., 0], q[..., 1]
    area = (X[:, 1] - X[:, 0]) * (Y[:, 2] - Y[:, 0]) - (Y[:, 1] - Y[:, 0]) * (X[:, 2] - X[:, 0])
    h = _SUB / 2
    i0 = torch.ceil((Y.amin(1) - h) / _SUB).clamp(min=0)
    i1 = torch.floor((Y.amax(1) - h) / _SUB).clamp(max=H - 1)
    nx = torch.floor((X.amax(1) - h) / _SUB).clamp(max=W - 1) - torch.ceil((X.amin(1) - h) / _SUB).clamp(min=0) + 1
    sel = (area != 0) & (i1 >= i0) & (nx > 0)
    if not bool(sel.all()):
        idx = torch.nonzero(sel).squeeze(1)
        keep, t, q, area, i0, i1, nx = (a.index_select(0, idx) for a in (keep, t, q, area, i0, i1, nx))
    X, Y = q[..., 0], q[..., 1]
    s = torch.sign(area)
    Xc, Yc = X.unbind(1), Y.unbind(1)
    R0, Ri, C = [], [], []
    for k in range(3):  # edge k: vertex k+1 -> vertex k+2
        xa, ya = Xc[(k + 1) % 3], Yc[(k + 1) % 3]
        sdX, sdY = s * (Xc[(k + 2) % 3] - xa), s * (Yc[(k + 2) % 3] - ya)
        tl = ((sdY > 0) | ((sdY == 0) & (sdX > 0))).to(sdX.dtype)
        R0.append(sdX * (h - ya) - sdY * (h - xa) + tl)
        Ri.append(_SUB * sdX)
        C.append(-_SUB * sdY)
    edge = torch.stack(R0 + Ri + C, 1)  # (K, 9)
    # depth plane (1/z when perspective) from the unsnapped coordinates
    t = t.double()
    x, y, z = t[..., 0], t[..., 1], t[..., 2]
    if persp:
        z = 1.0 / z
    dx1, dx2, dy1, dy2 = x[:, 1] - x[:, 0], x[:, 2] - x[:, 0], y[:, 1] - y[:, 0], y[:, 2] - y[:, 0]
    dz1, dz2 = z[:, 1] - z[:, 0], z[:, 2] - z[:, 0]
    det = dx1 * dy2 - dy1 * dx2
    det = torch.where(det == 0, torch.ones_like(det), det)
    gx = (dz1 * dy2 - dy1 * dz2) / det
    gy = (dx1 * dz2 - dz1 * dx2) / det
    z0 = z[:, 0] + gx * (0.5 - x[:, 0]) + gy * (0.5 - y[:, 0])  # plane at pixel (0, 0)
    return keep, edge, torch.stack((z0, gy, gx), 1), i0.long(), (i1 - i0 + 1).long(), nx.long()


def _decode_depth(keys: Tensor) -> Tensor:
    """float32 depth stored in the high bits of z-buffer keys (inf where empty)."""
    bits = (keys >> 32).to(torch.int32)
    bits = bits ^ ((bits >> 31) & 0x7FFFFFFF)  # the order transform is an involution
    d = bits.view(torch.float32)
    return torch.where(keys == _KEY_EMPTY, torch.full_like(d, float("inf")), d)


def _hidden_by_hiz(keys: Tensor, B: int, H: int, W: int, face_b: Tensor, t: Tensor, tile: int = _TILE) -> Tensor:
    """Faces (screen triangles ``t`` (K, 3, 3) of views ``face_b``) certainly
    hidden by the current z-buffer (hierarchical-z test).

    A face whose (conservative) bounding box lies within 2 x 2 tiles that are
    fully covered by geometry all nearer than the face's nearest vertex cannot
    win any pixel, so skipping it changes nothing (exact, not a heuristic).
    """
    d = _decode_depth(keys).view(B, 1, H, W)
    tmax = torch.nn.functional.max_pool2d(d, tile, tile, ceil_mode=True)  # inf if any pixel is empty
    Ht, Wt = tmax.shape[-2:]
    tmax = tmax.reshape(-1)
    x, y = t[..., 0], t[..., 1]
    j0 = torch.floor(x.amin(1) - 0.5).clamp(0, W - 1).long()
    j1 = torch.ceil(x.amax(1) - 0.5).clamp(0, W - 1).long()
    i0 = torch.floor(y.amin(1) - 0.5).clamp(0, H - 1).long()
    i1 = torch.ceil(y.amax(1) - 0.5).clamp(0, H - 1).long()
    ti0, ti1 = torch.div(i0, tile, rounding_mode="floor"), torch.div(i1, tile, rounding_mode="floor")
    tj0, tj1 = torch.div(j0, tile, rounding_mode="floor"), torch.div(j1, tile, rounding_mode="floor")
    small = (ti1 - ti0 <= 1) & (tj1 - tj0 <= 1)
    base = face_b * (Ht * Wt)
    m = torch.maximum(
        torch.maximum(tmax[base + ti0 * Wt + tj0], tmax[base + ti0 * Wt + tj1]),
        torch.maximum(tmax[base + ti1 * Wt + tj0], tmax[base + ti1 * Wt + tj1]),
    )
    return small & (m < t[..., 2].amin(1).float())


def _resolve(sv, faces, H, W, cull, persp, max_candidates):
    """Discrete z-buffer: (B*H*W,) int64 keys (``_KEY_EMPTY`` = empty), (B, F) signed areas.

    Without culling, front-facing faces are drawn first; back-facing faces that
    the hierarchical-z test proves hidden are then skipped (exact).
    """
    B, F = sv.shape[0], faces.shape[0]
    keep, t, area = _prefilter(sv, faces, H, W, cull, persp)
    keys = torch.full((B * H * W,), _KEY_EMPTY, dtype=torch.int64, device=sv.device)
    if cull:
        _draw(keys, _face_setup(t, keep, H, W, persp), F, H, W, persp, max_candidates)
        return keys, area
    front = area.reshape(-1).index_select(0, keep) < 0
    fi = torch.nonzero(front).squeeze(1)
    _draw(keys, _face_setup(t.index_select(0, fi), keep.index_select(0, fi), H, W, persp), F, H, W, persp, max_candidates)
    bi = torch.nonzero(~front).squeeze(1)
    if bi.numel():
        kb, tb = keep.index_select(0, bi), t.index_select(0, bi)
        vis = torch.nonzero(~_hidden_by_hiz(keys, B, H, W, torch.div(kb, F, rounding_mode="floor"), tb)).squeeze(1)
        _draw(keys, _face_setup(tb.index_select(0, vis), kb.index_select(0, vis), H, W, persp), F, H, W, persp, max_candidates)
    return keys, area


def _draw(keys, tables, F, H, W, persp, max_candidates) -> None:
    """Scan-convert faces (tables from :func:`_face_setup`) into ``keys``."""
    keep, edge, zp, i0, ny, nx = tables
    if keep.numel() == 0:
        return
    bidx = torch.div(keep, F, rounding_mode="floor")
    fidx = keep - bidx * F
    bound = ny * nx  # candidate pixels per face (bounding box), for chunking
    ends = torch.cumsum(bound, 0)
    if int(ends[-1]) <= max_candidates:
        bounds = [(0, keep.numel())]
    else:  # chunk the face list so that the (face, row) and pixel lists stay bounded
        _, sizes = torch.unique_consecutive(torch.div(ends - bound, max_candidates, rounding_mode="floor"), return_counts=True)
        e = [0] + torch.cumsum(sizes, 0).tolist()
        bounds = list(zip(e[:-1], e[1:]))
    for lo_, hi_ in bounds:
        # level 1: (face, row) pairs -> exact span [lo, hi] of covered columns
        fr, di = _expand(ny[lo_:hi_])
        fr = fr + lo_
        i = i0.index_select(0, fr) + di
        R = edge.index_select(0, fr)
        Cr = R[:, 6:9]
        R = torch.addcmul(R[:, 0:3], R[:, 3:6], i.double()[:, None])  # exact integers
        qt = R / Cr  # the pixel is inside edge k iff R + C j > 0
        pos, neg = Cr > 0, Cr < 0
        lo = torch.where(pos, torch.floor(-qt) + 1, -_BIG).amax(1).clamp(min=0)
        hi = torch.where(neg, torch.ceil(-qt) - 1, _BIG).amin(1).clamp(max=W - 1)
        dead = (~(pos | neg) & (R <= 0)).any(1)
        cnt = (hi - lo + 1).clamp(min=0).masked_fill(dead, 0).long()
        rows = torch.nonzero(cnt).squeeze(1)
        if rows.numel() == 0:
            continue
        fr, i, cnt, lo = fr.index_select(0, rows), i.index_select(0, rows), cnt.index_select(0, rows), lo.index_select(0, rows)
        zr = zp.index_select(0, fr)
        zrow = torch.addcmul(zr[:, 0], zr[:, 1], i.double()) + zr[:, 2] * lo  # depth at the span start
        base = (bidx.index_select(0, fr) * H + i) * W + lo.long()
        # level 2: pixels of each span
        r, dj = _expand(cnt)
        depth = torch.addcmul(zrow.index_select(0, r), zr[:, 2].index_select(0, r), dj.double())
        if persp:
            depth = 1.0 / depth
        pix = base.index_select(0, r) + dj
        bits = depth.float().view(torch.int32)
        bits = bits ^ ((bits >> 31) & 0x7FFFFFFF)  # order-preserving int for floats
        key = (bits.long() << 32) | fidx.index_select(0, fr).index_select(0, r)
        keys.scatter_reduce_(0, pix, key, reduce="amin")
