"""High-level differentiable renderer: albedo (vertex colours or UV texture) x SH shading.

Per-pixel work (normals, albedo, SH shading) is done only on the covered
pixels, in a channel-major (C, M) layout, and scattered once into the dense
outputs.  The image is ``albedo * sum_k l_k H_k(n)`` (MFNet eq. 2) with ``n``
the normalised interpolated vertex normal in world coordinates; it is not
clamped.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ._autograd import blend_cm, normal_shade
from .rasterize import Fragments, _corner_vertex_ids, _image_size, interpolate_face_attributes_packed, rasterize
from .shading import SH_CONSTANTS, vertex_normals_cm
from .silhouette import soft_silhouette
from .texture import sample_texture

__all__ = ["Renderer", "RenderOutput"]


@dataclass
class RenderOutput:
    """Renderer result (all images channel-first).

    ``image`` (without background), ``normals``, ``depth`` (and the extras)
    are channel-major *views*: each (H, W) plane is contiguous but the batch
    layout is not, so use ``.reshape`` / ``.contiguous()`` rather than ``.view``
    across the (B, C) dimensions.

    Attributes:
        image: (B, 3, H, W) ``albedo * shading`` (or albedo alone) composited
            over the background with the hard mask.
        mask: (B, 1, H, W) hard coverage (float 0/1).
        normals: (B, 3, H, W) unit world-space normals (interpolated vertex
            normals), 0 on background.
        depth: (B, 1, H, W) depth in camera units (``-z`` weak perspective,
            ``Zc`` perspective), 0 on background.
        fragments: the :class:`Fragments`.
        soft_mask: (B, 1, H, W) soft silhouette when requested, else None.
        albedo: (B, 3, H, W) albedo (0 on background), only with ``extras=True``.
        shading: (B, 3, H, W) SH shading, only with ``extras=True`` and SH.
    """

    image: Tensor
    mask: Tensor
    normals: Tensor
    depth: Tensor
    fragments: Fragments
    soft_mask: Tensor | None = None
    albedo: Tensor | None = None
    shading: Tensor | None = None


def _norm_rows(v: Tensor) -> Tensor:
    """(1, M) Euclidean norm over the 3 rows of a (3, M) tensor, clamped away from 0.

    Written out because ``Tensor.norm(dim=0)`` on a (3, M) tensor is a slow
    strided reduction on CPU.
    """
    return torch.sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).clamp_min(1e-12)[None]


class Renderer:
    """Rasterise + shade a batch of meshes sharing one topology.

    Args:
        image_size: H or (H, W).
        cull_backfaces: skip back-facing triangles (safe and faster for closed,
            consistently oriented meshes; wrong for open meshes seen from inside).
        sigma: soft-silhouette sharpness in pixels.
    """

    def __init__(self, image_size, cull_backfaces: bool = False, sigma: float = 0.5):
        self.image_size = _image_size(image_size)
        self.cull_backfaces = cull_backfaces
        self.sigma = sigma

    def render(
        self,
        verts: Tensor,
        faces: Tensor,
        cameras,
        *,
        vertex_colors: Tensor | None = None,
        texture: Tensor | None = None,
        vt: Tensor | None = None,
        ft: Tensor | None = None,
        sh_coeffs: Tensor | None = None,
        background: Tensor | None = None,
        soft_mask: bool = False,
        extras: bool = False,
    ) -> RenderOutput:
        """Render ``verts`` (B, V, 3) with ``faces`` (F, 3) seen by ``cameras``.

        Albedo comes from ``texture`` (B or 1, 3, T, T) with UVs ``vt`` (T', 2)
        / ``ft`` (F, 3) if given, else from ``vertex_colors`` (B, V, 3), else
        white.  With ``sh_coeffs`` (B, 9, 3) the albedo is multiplied by the
        SH shading of the interpolated normals.  ``background`` (B or 1, 3, H, W)
        fills uncovered pixels (default 0).  ``extras=True`` also returns the
        dense albedo and shading images.
        """
        H, W = self.image_size
        B, dt = verts.shape[0], verts.dtype
        faces = faces.to(device=verts.device, dtype=torch.long)
        screen = cameras.project(verts, (H, W))
        frags = rasterize(screen, faces, (H, W), self.cull_backfaces, cameras.perspective_correct)
        pix = frags.pix_idx
        bidx = torch.div(pix, H * W, rounding_mode="floor")
        # covered pixels are sorted by batch index: [starts[b], ends[b]) per view
        ends = torch.cumsum(torch.bincount(bidx, minlength=B), 0).tolist()
        starts = [0] + ends[:-1]

        normals, shading, albedo = _shade_covered(frags, verts, faces, spans=list(zip(starts, ends)),
                                                  vertex_colors=vertex_colors if texture is None else None,
                                                  texture=texture, vt=vt, ft=ft, sh_coeffs=sh_coeffs)
        depth = frags.depth_packed[None]
        colour = albedo if shading is None else albedo * shading
        image = frags.scatter_cm(colour)
        m = frags.mask[:, None].to(dt)
        if background is not None:
            image = image + (1.0 - m) * background.to(image)
        soft = None
        if soft_mask:
            soft = soft_silhouette(
                screen, faces, (H, W), self.sigma, frags,
                cull_backfaces=self.cull_backfaces, perspective_correct=cameras.perspective_correct,
            )[:, None]
        return RenderOutput(
            image=image,
            mask=m,
            normals=frags.scatter_cm(normals),
            depth=frags.scatter_cm(depth),
            fragments=frags,
            soft_mask=soft,
            albedo=frags.scatter_cm(albedo) if extras else None,
            shading=frags.scatter_cm(shading) if extras and shading is not None else None,
        )


def _shade_covered(frags, verts: Tensor, faces: Tensor, spans, vertex_colors: Tensor | None,
                   texture: Tensor | None, vt: Tensor | None, ft: Tensor | None, sh_coeffs: Tensor | None):
    """(normals, shading or None, albedo), each (3, M) channel-major over the M covered pixels of
    ``frags`` (contiguous per-channel vectors are the fast path on CPU); ``spans``: each view's
    [start, end) among them. Albedo: ``texture`` (with ``vt``/``ft``), else ``vertex_colors`` (B, V, 3),
    else white; shading: the SH lights ``sh_coeffs`` (B, 9, 3) at the interpolated normals."""
    B, V = verts.shape[:2]
    dt = verts.dtype
    tables = [vertex_normals_cm(verts, faces)]  # (3, B*V)
    if vertex_colors is not None:
        tables.append(vertex_colors.to(dt).expand(B, -1, -1).reshape(B * V, -1).t())
    vals = blend_cm(frags.bary_packed, _corner_vertex_ids(frags, faces, V, True), *tables)
    if sh_coeffs is not None:
        normals, shading = normal_shade(vals[0], sh_coeffs.to(dt), spans, SH_CONSTANTS)
    else:
        normals, shading = vals[0] / _norm_rows(vals[0]), None
    if texture is not None:
        albedo = _texture_albedo(frags, texture.to(dt), vt, ft, spans)
    elif vertex_colors is not None:
        albedo = vals[1]
    else:
        albedo = torch.ones_like(normals)
    return normals, shading, albedo


def _texture_albedo(frags, texture: Tensor, vt: Tensor | None, ft: Tensor | None, spans) -> Tensor:
    """(3, M) albedo of the covered pixels from ``texture`` (B or 1, 3, T, T) at the UVs ``vt`` (T', 2) of
    the faces' corners ``ft`` (F, 3); ``spans``: each view's [start, end) among the covered pixels."""
    if vt is None or ft is None:
        raise ValueError("texture rendering needs vt and ft")
    dev = frags.bary_packed.device
    vt = vt.to(device=dev, dtype=texture.dtype)
    ft = ft.to(device=dev, dtype=torch.long)
    uv = interpolate_face_attributes_packed(frags, vt[ft][None])  # (M, 2)
    if texture.shape[0] == 1:
        return sample_texture(texture, uv[None, None])[0, 0].t()
    return torch.cat([sample_texture(texture[k:k + 1], uv[None, None, a:e])[0, 0].t()
                      for k, (a, e) in enumerate(spans)], 1)

