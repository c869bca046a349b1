"""Vectorised triangle rasteriser (z-buffer) in plain PyTorch.

Input vertices are already in screen space (``x_px, y_px, depth``; see
:mod:`mfnet.render.cameras`): pixel (i, j) is sampled at its centre
(x=j+0.5, y=i+0.5) and a smaller depth is closer.

Algorithm (no Python loop over faces or pixels; a scanline z-buffer):

1. Per face (without autograd): faces that are off-screen, not finite, beyond
   a +-16384 px guard band, behind the camera (perspective) or back-facing
   (when culling) are dropped.  Screen x/y are snapped to a 1/256 px grid (as
   GPUs do) and held in float64, so all edge-function values are exact
   integers; zero-area faces (after snapping) are dropped.
2. Level 1: all (face, row) pairs of the faces' row ranges are enumerated at
   once (``repeat_interleave`` / ``arange``).  On a row each edge function is
   linear in the column, so the exact span of covered pixel centres is the
   intersection of three half-lines (exact floor/ceil divisions).  Pixel
   centres lying exactly on an edge follow a top-left style tie rule, which
   assigns them to exactly one of the two faces sharing the edge: a mesh
   covers each pixel centre once, without cracks or double coverage.
3. Level 2: the pixels of every span are enumerated; depth comes from the
   face's screen-space depth plane (``1/z`` plane when
   ``perspective_correct``) and the nearest face per pixel is picked by
   ``scatter_reduce(amin)`` on an int64 key ``(order-preserving float32 depth
   bits << 32) | face`` -- exact depth ties go to the lower face index.
   Only covered pixels are ever materialised (no bounding-box candidates).
4. For the winning (pixel, face) pairs only, barycentrics (and depth) are
   recomputed from ``screen_verts`` with a fused autograd function: the
   visibility decision is piecewise constant, barycentrics/depth are
   differentiable.

Front-facing convention: a face whose vertices are counter-clockwise seen from
the camera (outward normal by the right-hand rule pointing at the camera) has
a *negative* signed area ``(x1-x0)(y2-y0) - (y1-y0)(x2-x0)`` in the y-down
screen space.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from ._autograd import blend, pixel_barycentrics

__all__ = [
    "Fragments",
    "rasterize",
    "interpolate",
    "interpolate_packed",
    "interpolate_face_attributes",
    "interpolate_face_attributes_packed",
    "signed_areas",
]

_KEY_EMPTY = torch.iinfo(torch.int64).max
_MAX_CANDIDATES = 1 << 22
_SUB = 256.0  # sub-pixel snapping grid (8 bits), as in GPU rasterisers
_GUARD_PX = 16384.0  # faces with a vertex farther out are skipped
_BIG = 1e18
_TILE = 8  # hierarchical-z tile size (px)


@dataclass
class Fragments:
    """Rasterisation result for a batch of B images of size H x W.

    Attributes:
        pix_to_face: (B, H, W) long, index into ``faces`` (per mesh, not
            packed), -1 for background.
        zbuf: (B, H, W) interpolated depth, ``inf`` on background.
        pix_idx: (M,) flat indices into B*H*W of the covered pixels.
        face_idx: (M,) their face index.
        bary_packed: (M, 3) their barycentric weights at the pixel centre
            (perspective-corrected if requested), differentiable w.r.t. the
            screen vertices.
        depth_packed: (M,) their depth (the zbuf values), differentiable.
        face_areas: (B, F) twice the signed screen area of every face (no
            gradient; negative = front-facing), reused by the soft silhouette.
    Properties:
        bary: (B, H, W, 3) dense barycentrics (0 on background), built lazily.
        mask: (B, H, W) bool coverage.
    """

    pix_to_face: Tensor
    zbuf: Tensor
    pix_idx: Tensor
    face_idx: Tensor
    bary_packed: Tensor
    depth_packed: Tensor | None = None
    face_areas: Tensor | None = None
    _bary: Tensor | None = field(default=None, repr=False)

    _mask: Tensor | None = field(default=None, repr=False)

    @property
    def mask(self) -> Tensor:
        """(B, H, W) bool, True where a face covers the pixel centre (cached)."""
        if self._mask is None:
            self._mask = self.pix_to_face >= 0
        return self._mask

    @property
    def bary(self) -> Tensor:
        if self._bary is None:
            B, H, W = self.pix_to_face.shape
            self._bary = self.scatter(self.bary_packed)
        return self._bary

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.pix_to_face.shape)

    def packed(self) -> tuple[Tensor, Tensor, Tensor]:
        """(pix_idx (M,), face_idx (M,), bary (M, 3)) for covered pixels."""
        return self.pix_idx, self.face_idx, self.bary_packed

    def scatter_cm(self, values: Tensor, fill: float = 0.0) -> Tensor:
        """Channel-major packed values (C, M) -> dense (B, C, H, W), ``fill`` elsewhere.

        Built with one ``index_copy`` along dim 1 of a (C, B*H*W) buffer; the
        result is a channel-major *view* (each (H, W) plane contiguous; use
        ``.contiguous()`` if a contiguous batch layout is needed).
        """
        B, H, W = self.pix_to_face.shape
        C = values.shape[0]
        full = values.new_full((C, B * H * W), fill)
        full.index_copy_(1, self.pix_idx, values)
        return full.view(C, B, H, W).permute(1, 0, 2, 3)

    def scatter(self, values: Tensor, fill: float = 0.0, channels_first: bool = False) -> Tensor:
        """Packed per-pixel values (M, C) -> dense (B, H, W, C), ``fill`` elsewhere.

        With ``channels_first`` the result is a contiguous (B, C, H, W) tensor.
        """
        B, H, W = self.pix_to_face.shape
        C = values.shape[-1]
        if not channels_first:
            full = values.new_full((B * H * W, C), fill)
            full.index_put_((self.pix_idx,), values)
            return full.view(B, H, W, C)
        full = values.new_full((B, C, H * W), fill)
        b = torch.div(self.pix_idx, H * W, rounding_mode="floor")
        full.permute(0, 2, 1).index_put_((b, self.pix_idx - b * (H * W)), values)
        return full.view(B, C, H, W)


def _image_size(image_size) -> tuple[int, int]:
    if isinstance(image_size, int):
        return image_size, image_size
    return int(image_size[0]), int(image_size[1])


def signed_areas(screen_verts: Tensor, faces: Tensor) -> Tensor:
    """(B, F) twice the signed screen area; negative = front-facing."""
    tri = screen_verts[:, faces, :2]
    e1 = tri[:, :, 1] - tri[:, :, 0]
    e2 = tri[:, :, 2] - tri[:, :, 0]
    return e1[..., 0] * e2[..., 1] - e1[..., 1] * e2[..., 0]


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


def rasterize(
    screen_verts: Tensor,
    faces: Tensor,
    image_size,
    cull_backfaces: bool = False,
    perspective_correct: bool = False,
    max_candidates: int = _MAX_CANDIDATES,
) -> Fragments:
    """Rasterise a batch of meshes sharing one face list.

    Args:
        screen_verts: (B, V, 3) pixel x, pixel y, depth (smaller = closer).
        faces: (F, 3) long vertex indices.
        image_size: H or (H, W).
        cull_backfaces: skip faces with positive signed screen area (see module
            docstring for the orientation convention).
        perspective_correct: interpolate depth linearly in 1/z and return
            perspective-correct barycentrics (``b_k / z_k`` renormalised);
            faces with a vertex at depth <= 0 are skipped.
        max_candidates: the (face, pixel) candidate pairs are processed in
            chunks of at most this many (bounds peak memory).
    Returns:
        :class:`Fragments`.
    """
    H, W = _image_size(image_size)
    B, V = screen_verts.shape[:2]
    faces = faces.to(device=screen_verts.device, dtype=torch.long)
    with torch.no_grad():
        keys, areas = _resolve(screen_verts.detach(), faces, H, W, cull_backfaces, perspective_correct, max_candidates)
        pix = torch.nonzero(keys != _KEY_EMPTY).squeeze(1)
        face = keys[pix] & 0xFFFFFFFF
        b = torch.div(pix, H * W, rounding_mode="floor")
        rem = pix - b * (H * W)
        i = torch.div(rem, W, rounding_mode="floor")
        p = torch.stack(((rem - i * W).to(screen_verts.dtype) + 0.5, i.to(screen_verts.dtype) + 0.5), -1)
        vidx = faces.t().contiguous().index_select(1, face) + (b * V)[None]  # (3, M)
    # differentiable part: barycentrics of the winning face at the pixel centre
    bary, depth = pixel_barycentrics(screen_verts.reshape(-1, 3), vidx, p, perspective_correct)
    n = B * H * W
    pix_to_face = torch.full((n,), -1, dtype=torch.long, device=screen_verts.device)
    pix_to_face[pix] = face
    zbuf = screen_verts.new_full((n,), float("inf"))
    zbuf.index_put_((pix,), depth)
    return Fragments(pix_to_face.view(B, H, W), zbuf.view(B, H, W), pix, face, bary, depth, areas)


def _corner_vertex_ids(fragments: Fragments, faces: Tensor, n_verts: int, batched: bool) -> Tensor:
    """(3, M) rows of the flattened (B*V or V) vertex array for each covered pixel's corners."""
    pix, face, _ = fragments.packed()
    vid = faces.to(device=pix.device, dtype=torch.long).t().contiguous().index_select(1, face)
    if batched:
        B, H, W = fragments.pix_to_face.shape
        vid = vid + (torch.div(pix, H * W, rounding_mode="floor") * n_verts)[None]
    return vid


def interpolate_packed(fragments: Fragments, vertex_attrs: Tensor, faces: Tensor) -> Tensor:
    """Per-vertex attributes (B or 1, V, C) -> (M, C) at the covered pixels only."""
    Bv, V, C = vertex_attrs.shape
    vid = _corner_vertex_ids(fragments, faces, V, Bv > 1)
    return blend(fragments.bary_packed, vertex_attrs.reshape(-1, C), vid)


def interpolate(fragments: Fragments, vertex_attrs: Tensor, faces: Tensor) -> Tensor:
    """Interpolate per-vertex attributes (B or 1, V, C) -> (B, H, W, C); background 0.

    Differentiable w.r.t. ``vertex_attrs`` and (through the barycentrics) the
    screen vertices used to rasterise.
    """
    return fragments.scatter(interpolate_packed(fragments, vertex_attrs, faces))


def interpolate_face_attributes_packed(fragments: Fragments, face_attrs: Tensor) -> Tensor:
    """Per-face-corner attributes (B or 1, F, 3, C) -> (M, C) at the covered pixels."""
    Ba, F, _, C = face_attrs.shape
    pix, face, bary = fragments.packed()
    idx = face
    if Ba > 1:
        B, H, W = fragments.pix_to_face.shape
        idx = face + torch.div(pix, H * W, rounding_mode="floor") * F
    idx = (idx * 3)[None] + torch.arange(3, device=idx.device)[:, None]
    return blend(bary, face_attrs.reshape(-1, C), idx)


def interpolate_face_attributes(fragments: Fragments, face_attrs: Tensor) -> Tensor:
    """Interpolate per-face-corner attributes (B or 1, F, 3, C) -> (B, H, W, C).

    Typical use: UV coordinates ``vt[ft][None]``.  Background is 0.
    """
    return fragments.scatter(interpolate_face_attributes_packed(fragments, face_attrs))
