"""Differentiable mesh renderer in plain PyTorch (CPU or CUDA, float32/float64).

Pipeline: :mod:`cameras` project world points to screen space, :mod:`rasterize`
builds a z-buffer (``Fragments``) with differentiable barycentrics,
:mod:`shading` provides normals and SH lighting, :mod:`texture` UV sampling and
texture extraction, :mod:`silhouette` a soft silhouette, and
:class:`Renderer` ties them together.
"""
from .cameras import PerspectiveCameras, WeakPerspectiveCameras, frame_cameras, intrinsics_from_fov, look_at_opencv
from .rasterize import (
    Fragments,
    interpolate,
    interpolate_face_attributes,
    interpolate_face_attributes_packed,
    interpolate_packed,
    rasterize,
    signed_areas,
)
from .renderer import RenderOutput, Renderer
from .shading import SH_CONSTANTS, face_normals, frontal_light, sh_basis, sh_shading, vertex_normals
from .silhouette import face_adjacency, silhouette_faces, soft_silhouette
from .texture import extract_texture, rasterize_uv, sample_texture

__all__ = [
    "PerspectiveCameras",
    "WeakPerspectiveCameras",
    "intrinsics_from_fov",
    "look_at_opencv",
    "frame_cameras",
    "Fragments",
    "rasterize",
    "interpolate",
    "interpolate_face_attributes",
    "interpolate_packed",
    "interpolate_face_attributes_packed",
    "signed_areas",
    "soft_silhouette",
    "silhouette_faces",
    "face_adjacency",
    "face_normals",
    "vertex_normals",
    "sh_basis",
    "sh_shading",
    "SH_CONSTANTS",
    "frontal_light",
    "sample_texture",
    "rasterize_uv",
    "extract_texture",
    "Renderer",
    "RenderOutput",
]
