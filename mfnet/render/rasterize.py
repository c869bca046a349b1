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
from ._zbuffer import _KEY_EMPTY, _resolve, box_candidates  # noqa: F401  (box_candidates re-exported)

__all__ = [
    "Fragments",
    "rasterize",
    "interpolate",
    "interpolate_packed",
    "interpolate_face_attributes",
    "interpolate_face_attributes_packed",
    "signed_areas",
]

_MAX_CANDIDATES = 1 << 22


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
    _bary: Tensor | None = field(default=None, init=False, repr=False)

    _mask: Tensor | None = field(default=None, init=False, repr=False)

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
    """``S`` or ``(H, W)`` -> ``(H, W)`` as ints (the one parser of image sizes in :mod:`mfnet.render`)."""
    if isinstance(image_size, int):
        return int(image_size), int(image_size)
    return int(image_size[0]), int(image_size[1])


def signed_areas(screen_verts: Tensor, faces: Tensor) -> Tensor:
    """(B, F) twice the signed screen area; negative = front-facing."""
    tri = screen_verts[:, faces, :2]
    e1 = tri[:, :, 1] - tri[:, :, 0]
    e2 = tri[:, :, 2] - tri[:, :, 0]
    return e1[..., 0] * e2[..., 1] - e1[..., 1] * e2[..., 0]


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
