"""UV textures: sampling, UV-space rasterisation and texture extraction.

UV convention (OBJ): u to the right in [0, 1], v *up* in [0, 1].  A texture
tensor (B, C, Ht, Wt) stores row 0 at the top, so texel (row, col) covers
``u in [col, col+1] / Wt`` and ``v in [1 - (row+1)/Ht, 1 - row/Ht]``; i.e. the
continuous texel coordinates of (u, v) are ``(u * Wt, (1 - v) * Ht)``, which
is exactly what ``grid_sample(align_corners=False)`` uses for the grid
``(2u - 1, 1 - 2v)``.
"""
from __future__ import annotations

import weakref

import torch
import torch.nn.functional as Fn
from torch import Tensor

from ._autograd import blend
from .rasterize import Fragments, _image_size, rasterize
from .shading import face_normals, vertex_normals

__all__ = ["sample_texture", "rasterize_uv", "extract_texture"]

_UV_ATTR = "_mfnet_uv_fragments"  # the cache, on the ft tensor: {(Ht, Wt): (vt ref, versions, result)}


def sample_texture(texture: Tensor, uv: Tensor, padding_mode: str = "border") -> Tensor:
    """Bilinearly sample ``texture`` (B or 1, C, Ht, Wt) at ``uv`` (B, H, W, 2) -> (B, H, W, C)."""
    B = uv.shape[0]
    if texture.shape[0] == 1 and B > 1:
        texture = texture.expand(B, *texture.shape[1:])
    grid = torch.stack((2.0 * uv[..., 0] - 1.0, 1.0 - 2.0 * uv[..., 1]), dim=-1).to(texture.dtype)
    out = Fn.grid_sample(texture, grid, mode="bilinear", padding_mode=padding_mode, align_corners=False)
    return out.permute(0, 2, 3, 1)


def rasterize_uv(vt: Tensor, ft: Tensor, tex_size, cache: bool = True) -> Fragments:
    """Rasterise the UV layout: which face (and barycentrics) each texel centre hits.

    Args:
        vt: (T, 2) UV coordinates; ft: (F, 3) long indices into ``vt`` (face f
            of the 3D mesh uses UV corners ``vt[ft[f]]``).
        tex_size: Ts or (Ht, Wt).
        cache: reuse the result for the same (identical, unmodified) tensors (kept on ``ft``).
    Returns:
        :class:`Fragments` of batch 1 and size (Ht, Wt); ``pix_to_face`` indexes
        faces (rows of ``ft``), -1 where no UV triangle covers the texel.
        Overlapping UV islands resolve to the lower face index.
    """
    Ht, Wt = _image_size(tex_size)
    versions = (vt._version, ft._version)
    if cache:
        hit = getattr(ft, _UV_ATTR, {}).get((Ht, Wt))
        if hit is not None and hit[0]() is vt and hit[1] == versions:
            return hit[2]
    with torch.no_grad():
        v = vt.detach()
        sv = torch.stack((v[:, 0] * Wt, (1.0 - v[:, 1]) * Ht, torch.zeros_like(v[:, 0])), dim=-1)[None]
        frags = rasterize(sv, ft, (Ht, Wt))
    if cache:
        if not hasattr(ft, _UV_ATTR):
            setattr(ft, _UV_ATTR, {})
        getattr(ft, _UV_ATTR)[Ht, Wt] = (weakref.ref(vt), versions, frags)
    return frags


def _bilinear_zbuf(zbuf: Tensor, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """Bilinear z-buffer lookup at continuous pixel coords (B, N) -> (depth, in-bounds)."""
    B, H, W = zbuf.shape
    fx, fy = x - 0.5, y - 0.5
    j0, i0 = torch.floor(fx), torch.floor(fy)
    wx, wy = fx - j0, fy - i0
    j0, i0 = j0.long(), i0.long()
    inb = (x >= 0) & (x < W) & (y >= 0) & (y < H)
    zs, ws = [], []
    for di, dj, w in ((0, 0, (1 - wx) * (1 - wy)), (0, 1, wx * (1 - wy)), (1, 0, (1 - wx) * wy), (1, 1, wx * wy)):
        i = (i0 + di).clamp(0, H - 1)
        j = (j0 + dj).clamp(0, W - 1)
        zs.append(torch.gather(zbuf.reshape(B, -1), 1, i * W + j))
        ws.append(w)
    z = torch.stack(zs, -1)
    w = torch.stack(ws, -1)
    fin = torch.isfinite(z)
    zmax = torch.where(fin, z, torch.full_like(z, -float("inf"))).amax(-1, keepdim=True)
    z = torch.where(fin, z, zmax)
    return (z * w).sum(-1), inb & fin.any(-1)


def extract_texture(
    image: Tensor,
    verts: Tensor,
    faces: Tensor,
    vt: Tensor,
    ft: Tensor,
    cameras,
    tex_size,
    *,
    depth_tol: float | None = None,
    fragments: Fragments | None = None,
) -> tuple[Tensor, Tensor]:
    """Unwrap an image into UV space (MFNet eqs. 3-4).

    For every texel covered by the UV layout its 3D point is the barycentric
    combination of the face vertices, it is projected with ``cameras`` and the
    image is sampled there (bilinear ``grid_sample``; the bilinear weights are
    renormalised over the pixels covered by the mesh so that background never
    bleeds into the texture).  A texel is visible when it projects inside the
    image, over the mesh (renormalisation weight > 0.5), its face is
    front-facing (face normal · view direction > 0) and its depth is within
    ``depth_tol`` of the image's z-buffer (bilinearly interpolated between
    pixel centres, exact on planar patches).

    Args:
        image: (B, 3, H, W); verts: (B, V, 3) world coordinates; faces: (F, 3);
        vt, ft: UV layout (see :func:`rasterize_uv`); cameras: a camera batch;
        tex_size: T or (Ht, Wt).
        depth_tol: in depth units (metres); default 0.5 % of the mesh
            bounding-box diagonal.
        fragments: precomputed rasterisation of the mesh in the image.
    Returns:
        texture (B, 3, Ht, Wt), zero where not visible; visibility
        (B, 1, Ht, Wt) = visible * max(0, n · v) with n the interpolated vertex
        normal and v the direction to the camera: a cosine weight for fusing
        several views (``sum_i w_i T_i / sum_i w_i``).  Differentiable w.r.t.
        ``image`` and ``verts`` (the binary visibility itself is not).
    """
    B, C, H, W = image.shape
    Ht, Wt = _image_size(tex_size)
    faces = faces.to(device=verts.device, dtype=torch.long)
    tpix, tface, bb, idx = _texel_corners(verts, faces, vt, ft, (Ht, Wt))
    pts = blend(bb, verts.reshape(-1, 3), idx).view(B, -1, 3)
    scr = cameras.project(pts, (H, W))
    if fragments is None:
        with torch.no_grad():
            sv = cameras.project(verts.detach(), (H, W))
            fragments = rasterize(sv, faces, (H, W), perspective_correct=cameras.perspective_correct)
    if depth_tol is None:
        ext = verts.detach().amax(1) - verts.detach().amin(1)
        depth_tol = (0.005 * ext.norm(dim=-1)).view(B, 1)
    with torch.no_grad():
        zref, inb = _bilinear_zbuf(fragments.zbuf.detach(), scr[..., 0].detach(), scr[..., 1].detach())
        view = cameras.view_dirs(pts.detach())
        fn = face_normals(verts.detach(), faces)[:, tface]
        vis = inb & ((fn * view).sum(-1) > 0) & (scr[..., 2].detach() <= zref + depth_tol)
    n = blend(bb, vertex_normals(verts, faces).reshape(-1, 3), idx).view(B, -1, 3)
    n = n / n.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    cosw = (n * cameras.view_dirs(pts)).sum(-1).clamp_min(0.0)
    col, over_mesh = _sample_over_mesh(image, fragments.mask, scr)
    visf = (vis & over_mesh).to(image.dtype)
    tex = image.new_zeros(B, C, Ht * Wt).index_copy(2, tpix, col * visf[:, None])
    w = (visf * cosw.to(image.dtype))[:, None]
    visibility = image.new_zeros(B, 1, Ht * Wt).index_copy(2, tpix, w)
    return tex.view(B, C, Ht, Wt), visibility.view(B, 1, Ht, Wt)


def _texel_corners(verts: Tensor, faces: Tensor, vt: Tensor, ft: Tensor, size: tuple[int, int]):
    """The texels the UV layout covers and their mesh corners, for each of the B views of ``verts`` (B, V, 3):
    ``tpix`` (Mt,) flat texel index, ``tface`` (Mt,) face, ``bary`` (B*Mt, 3) and ``idx`` (3, B*Mt) rows of
    the flattened (B*V, 3) vertices, view-major (what :func:`blend` takes)."""
    B, V = verts.shape[:2]
    ft = ft.to(device=verts.device, dtype=torch.long)
    tpix, tface, tbary = rasterize_uv(vt.to(verts.device), ft, size).packed()
    offsets = (torch.arange(B, device=verts.device) * V)[None, :, None]
    idx = (faces.t().contiguous().index_select(1, tface)[:, None, :] + offsets).reshape(3, B * tface.shape[0])
    return tpix, tface, tbary.to(verts.dtype).repeat(B, 1), idx


def _sample_over_mesh(image: Tensor, mask: Tensor, scr: Tensor) -> tuple[Tensor, Tensor]:
    """Bilinear samples (B, C, M) of ``image`` (B, C, H, W) at the screen points ``scr`` (B, M, >=2) from the
    pixels the mesh covers only (``mask`` (B, H, W): the weights renormalised over it, so the background never
    bleeds in), and (B, M) bool: the point lies over the mesh (renormalisation weight > 0.5)."""
    C, H, W = image.shape[1:]
    grid = torch.stack((2.0 * scr[..., 0] / W - 1.0, 2.0 * scr[..., 1] / H - 1.0), -1)[:, None].to(image.dtype)
    m = mask[:, None].to(image.dtype)
    samp = Fn.grid_sample(torch.cat((image * m, m), 1), grid, mode="bilinear", padding_mode="zeros",
                          align_corners=False)[:, :, 0]
    alpha = samp[:, C:]
    return samp[:, :C] / alpha.clamp_min(0.5), alpha[:, 0].detach() > 0.5
