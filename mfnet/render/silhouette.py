"""Soft (differentiable) silhouette and mesh edge adjacency.

Formulation of :func:`soft_silhouette` (image-space, per pixel centre p):

* a pixel covered by the hard rasteriser is exactly 1 (no gradient);
* an uncovered pixel gets ``1 - prod_f (1 - sigmoid(-d_f(p) / sigma))``, where
  ``d_f(p) >= 0`` is the Euclidean distance in pixels from p to the projected
  triangle f (distance to its nearest edge segment), and the product runs over
  the *silhouette faces* whose bounding box dilated by ``radius`` pixels
  (default ``6 sigma``, where a face contributes < 0.25 %) contains p.  It is
  evaluated in log space: ``1 - exp(sum_f log sigmoid(d_f / sigma))``.

Silhouette faces are the rendered faces that own a contour edge, found
vectorised from an edge -> face adjacency: an edge is a contour edge when it
is a boundary edge (no neighbour, or a non-manifold edge) or when its two
faces face opposite ways on screen.  For an opposite-facing pair only the
front-facing face is kept (the back one lies behind the same contour); at a
boundary edge the face is kept whatever its facing (unless back faces are
culled).  Pixels only receive gradient through these faces, which is where
the silhouette can move; ``silhouette_faces_only=False`` uses every rendered
face instead (slower, and the values outside grow with the tessellation
density since more faces enter the product, as in SoftRas).
"""
from __future__ import annotations

import torch
import torch.nn.functional as Fn
from torch import Tensor

from .rasterize import Fragments, _image_size, box_candidates, rasterize, signed_areas

__all__ = ["face_adjacency", "silhouette_faces", "soft_silhouette"]

_ADJ_ATTR = "_mfnet_face_adjacency"  # the cache, on the faces tensor itself: (its _version, result)


def face_adjacency(faces: Tensor) -> Tensor:
    """(F, 3) index of the face across edge (v_k, v_{k+1}) of each face, -1 if none.

    Edges shared by more than two faces (non-manifold) are reported as -1.
    The result is cached on the faces tensor itself, until the tensor is modified in place.
    """
    hit = getattr(faces, _ADJ_ATTR, None)
    if hit is not None and hit[0] == faces._version:
        return hit[1]
    f = faces.long()
    F = f.shape[0]
    a = f
    b = f[:, [1, 2, 0]]
    n = int(f.max()) + 1 if F else 1
    ekey = (torch.minimum(a, b) * n + torch.maximum(a, b)).reshape(-1)
    order = torch.argsort(ekey)
    sk = ekey[order]
    _, inv, counts = torch.unique_consecutive(sk, return_inverse=True, return_counts=True)
    pos = torch.arange(sk.numel(), device=f.device)
    pair = counts[inv] == 2
    first = torch.ones_like(pair)
    first[1:] = sk[1:] != sk[:-1]
    partner_pos = torch.where(first, pos + 1, pos - 1).clamp(0, max(sk.numel() - 1, 0))
    nbr_sorted = torch.where(pair, order[partner_pos] // 3, torch.full_like(order, -1))
    nbr = torch.empty_like(nbr_sorted)
    nbr[order] = nbr_sorted
    nbr = nbr.view(F, 3)
    setattr(faces, _ADJ_ATTR, (faces._version, nbr))
    return nbr


def _contour(area: Tensor, faces: Tensor, cull_backfaces: bool) -> Tensor:
    front = area < 0
    rendered = front if cull_backfaces else (area != 0)
    nbr = face_adjacency(faces)
    missing = nbr < 0
    nfront = front[:, nbr.clamp(min=0)]  # (B,F,3)
    flip = ~missing & (nfront != front[..., None])
    contour = missing.unsqueeze(0) | (flip & front[..., None])
    return rendered & contour.any(-1)


def silhouette_faces(screen_verts: Tensor, faces: Tensor, cull_backfaces: bool = False) -> Tensor:
    """(B, F) bool mask of the faces owning a contour edge (see module doc)."""
    with torch.no_grad():
        faces = faces.to(device=screen_verts.device, dtype=torch.long)
        return _contour(signed_areas(screen_verts.detach(), faces), faces, cull_backfaces)


def soft_silhouette(
    screen_verts: Tensor,
    faces: Tensor,
    image_size,
    sigma: float = 0.5,
    fragments: Fragments | None = None,
    *,
    cull_backfaces: bool = False,
    perspective_correct: bool = False,
    radius: float | None = None,
    silhouette_faces_only: bool = True,
) -> Tensor:
    """Soft coverage (B, H, W) in [0, 1], differentiable at the silhouette.

    Args:
        screen_verts: (B, V, 3) screen-space vertices (see cameras).
        faces: (F, 3) long.
        image_size: H or (H, W).
        sigma: sharpness in pixels.
        fragments: hard rasterisation of the same input (computed if None, with
            ``cull_backfaces`` / ``perspective_correct``).
        radius: influence radius in pixels (default ``6 * sigma``).
        silhouette_faces_only: restrict to contour faces (see module doc).
    """
    H, W = _image_size(image_size)
    B = screen_verts.shape[0]
    faces = faces.to(device=screen_verts.device, dtype=torch.long)
    if fragments is None:
        fragments = rasterize(screen_verts, faces, (H, W), cull_backfaces, perspective_correct)
    covered = fragments.mask.reshape(-1)
    r = 6.0 * sigma if radius is None else float(radius)
    upix, slot, vidx, px, py = _uncovered_candidates(screen_verts, faces, fragments, (H, W), r, cull_backfaces,
                                                     perspective_correct, silhouette_faces_only)
    d = _distance_to_triangles(screen_verts, vidx, px, py)
    acc = d.new_zeros(upix.numel()).index_add(0, slot, Fn.logsigmoid(d / sigma))
    soft = covered.to(screen_verts.dtype)
    soft = soft.index_put((upix,), 1.0 - torch.exp(acc))
    return soft.view(B, H, W)


@torch.no_grad()
def _uncovered_candidates(screen_verts: Tensor, faces: Tensor, fragments: Fragments, size: tuple[int, int], r: float,
                          cull_backfaces: bool, perspective_correct: bool, silhouette_faces_only: bool):
    """The uncovered pixels within ``r`` pixels of a (contour) face's box: (upix (U,) the touched pixels,
    flat and sorted; slot (N,) each candidate's index among them; vidx (3, N) its triangle's rows of the
    flat vertices; px, py (N,) its pixel centre)."""
    H, W = size
    B, V = screen_verts.shape[:2]
    F = faces.shape[0]
    covered = fragments.mask.reshape(-1)
    sv = screen_verts.detach()
    area = fragments.face_areas
    if area is None or area.shape != (B, F):
        area = signed_areas(sv, faces)
    if silhouette_faces_only:
        sel = _contour(area, faces, cull_backfaces)
    else:
        sel = (area < 0) if cull_backfaces else (area != 0)
    sel &= torch.isfinite(area)
    g = torch.nonzero(sel.reshape(-1)).squeeze(1)
    gb = torch.div(g, F, rounding_mode="floor")
    cidx = faces.index_select(0, g - gb * F) + (gb * V)[:, None]  # (S, 3) rows of flat verts
    t = sv.reshape(-1, 3).index_select(0, cidx.reshape(-1)).view(-1, 3, 3)
    if perspective_correct:
        front = t[..., 2].amin(1) > 0
        g, gb, cidx, t = g[front], gb[front], cidx[front], t[front]
    lo = t[..., :2].amin(1) - r
    hi = t[..., :2].amax(1) + r
    j0 = torch.ceil(lo[:, 0] - 0.5).clamp(0, W)
    i0 = torch.ceil(lo[:, 1] - 0.5).clamp(0, H)
    nx = (torch.floor(hi[:, 0] - 0.5).clamp(-1, W - 1) - j0 + 1).clamp(min=0).long()
    ny = (torch.floor(hi[:, 1] - 0.5).clamp(-1, H - 1) - i0 + 1).clamp(min=0).long()
    box, di, dj = box_candidates(nx, ny)
    pi = i0.long()[box] + di
    pj = j0.long()[box] + dj
    pix = (gb[box] * H + pi) * W + pj
    free = torch.nonzero(~covered[pix]).squeeze(1)
    pix, box, pi, pj = pix[free], box[free], pi[free], pj[free]
    vidx = cidx.t().contiguous().index_select(1, box)  # (3, N)
    # unique touched pixels (sorted) and each candidate's slot among them
    touched = torch.zeros(B * H * W, dtype=torch.bool, device=sv.device)
    touched[pix] = True
    upix = torch.nonzero(touched).squeeze(1)
    slot = torch.zeros(B * H * W, dtype=torch.long, device=sv.device)
    slot[upix] = torch.arange(upix.numel(), device=sv.device)
    return upix, slot[pix], vidx, pj.to(sv.dtype) + 0.5, pi.to(sv.dtype) + 0.5


def _distance_to_triangles(screen_verts: Tensor, vidx: Tensor, px: Tensor, py: Tensor) -> Tensor:
    """(N,) distance (pixels) from each point (px, py) to its triangle's edges ``vidx`` (3, N) (rows of the
    flat (B*V, 3) ``screen_verts``), with gradients to the vertices; one vector per edge (fast on CPU)."""
    svT = screen_verts.reshape(-1, 3).t()[0:2].contiguous()  # (2, B*V) rows x, y
    c = [svT.index_select(1, vidx[k]) for k in range(3)]
    xs, ys = [ck[0] for ck in c], [ck[1] for ck in c]
    d2 = None
    for k in range(3):
        ex, ey = xs[(k + 1) % 3] - xs[k], ys[(k + 1) % 3] - ys[k]
        ax, ay = px - xs[k], py - ys[k]
        tt = ((ax * ex + ay * ey) / (ex * ex + ey * ey).clamp_min(1e-12)).clamp(0.0, 1.0)
        dx, dy = ax - tt * ex, ay - tt * ey
        dk = dx * dx + dy * dy
        d2 = dk if d2 is None else torch.minimum(d2, dk)
    return torch.sqrt(d2 + 1e-12)
