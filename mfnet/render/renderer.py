"""High-level differentiable renderer: albedo (vertex colours or UV texture) x SH shading."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .rasterize import Fragments, _image_size, interpolate_face_attributes_packed, interpolate_packed, rasterize
from .shading import sh_basis, vertex_normals
from .silhouette import soft_silhouette
from .texture import sample_texture

__all__ = ["Renderer", "RenderOutput"]


@dataclass
class RenderOutput:
    """Renderer result (all images channel-first).

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
        B = verts.shape[0]
        faces = faces.to(device=verts.device, dtype=torch.long)
        screen = cameras.project(verts, (H, W))
        frags = rasterize(screen, faces, (H, W), self.cull_backfaces, cameras.perspective_correct)
        pix = frags.pix_idx
        bidx = torch.div(pix, H * W, rounding_mode="floor")

        # everything below works on the M covered pixels only ("packed")
        attrs = [vertex_normals(verts, faces)]
        use_vc = texture is None and vertex_colors is not None
        if use_vc:
            attrs.append(vertex_colors.to(verts.dtype).expand(B, -1, -1))
        vals = interpolate_packed(frags, torch.cat(attrs, -1), faces)
        normals = vals[:, :3]
        normals = normals / normals.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        depth = (frags.depth_packed if frags.depth_packed is not None else frags.zbuf.reshape(-1)[pix])[:, None]

        if texture is not None:
            if vt is None or ft is None:
                raise ValueError("texture rendering needs vt and ft")
            vt = vt.to(verts)
            ft = ft.to(device=verts.device, dtype=torch.long)
            uv = frags.scatter(interpolate_face_attributes_packed(frags, vt[ft][None]))
            albedo = sample_texture(texture.to(verts.dtype), uv).reshape(-1, texture.shape[1])[pix]
        elif use_vc:
            albedo = vals[:, 3:6]
        else:
            albedo = torch.ones_like(normals)

        shading = None
        colour = albedo
        if sh_coeffs is not None:
            L = sh_coeffs.to(verts.dtype)  # (B,9,3)
            Hk = sh_basis(normals)  # (M,9)
            # covered pixels are sorted by batch index: one small matmul per view
            ends = torch.cumsum(torch.bincount(bidx, minlength=B), 0).tolist()
            starts = [0] + ends[:-1]
            shading = torch.cat([Hk[a:e] @ L[b] for b, (a, e) in enumerate(zip(starts, ends))])
            colour = albedo * shading
        image = frags.scatter(colour, channels_first=True)
        m = frags.mask[:, None].to(verts.dtype)
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
            normals=frags.scatter(normals, channels_first=True),
            depth=frags.scatter(depth, channels_first=True),
            fragments=frags,
            soft_mask=soft,
            albedo=frags.scatter(albedo, channels_first=True) if extras else None,
            shading=frags.scatter(shading, channels_first=True) if extras and shading is not None else None,
        )
