"""Normals and spherical-harmonics (SH) lighting.

SH basis (real, orthonormal on the unit sphere, no Condon-Shortley sign), in
the order used by DECA/MFNet, for a unit normal n = (x, y, z)::

    H0 = c0                      c0 = 1 / sqrt(4 pi)
    H1 = c1 * y                  c1 = sqrt(3 / (4 pi))
    H2 = c1 * z
    H3 = c1 * x
    H4 = c2 * x y                c2 = 3 sqrt(5 / (12 pi))   (= sqrt(15 / (4 pi)))
    H5 = c2 * y z
    H6 = c3 * (3 z^2 - 1)        c3 = sqrt(5 / (16 pi))
    H7 = c2 * x z
    H8 = c4 * (x^2 - y^2)        c4 = 3/2 sqrt(5 / (12 pi)) (= sqrt(15 / (16 pi)))

Shading (MFNet eq. 2, ``B = A ⊙ Σ_k l_k H_k(N)``) is ``Σ_k l_k H_k(n)`` per
colour channel, with coefficients ``l`` of shape (B, 9, 3).  By default the
basis above is used as is.  ``lambertian=True`` additionally multiplies band
l by the clamped-cosine convolution factors (pi, 2pi/3, pi/4), i.e. it turns
radiance SH coefficients into irradiance (Ramamoorthi & Hanrahan 2001).
Note that DECA orders its basis differently (1, x, y, z, xy, xz, yz,
x^2-y^2, 3z^2-1) and folds part of these factors into its constants, so its
coefficients must be reordered/rescaled before use here.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["face_normals", "vertex_normals", "vertex_normals_cm", "sh_basis", "sh_shading", "SH_CONSTANTS"]

_C0 = 1.0 / math.sqrt(4 * math.pi)
_C1 = math.sqrt(3.0 / (4 * math.pi))
_C2 = 3.0 * math.sqrt(5.0 / (12 * math.pi))
_C3 = math.sqrt(5.0 / (16 * math.pi))
_C4 = 1.5 * math.sqrt(5.0 / (12 * math.pi))
#: per-basis-function constants, in basis order
SH_CONSTANTS = (_C0, _C1, _C1, _C1, _C2, _C2, _C3, _C2, _C4)
_LAMBERT = (math.pi,) + (2 * math.pi / 3,) * 3 + (math.pi / 4,) * 5


def face_normals(verts: Tensor, faces: Tensor, normalize: bool = True) -> Tensor:
    """(B, V, 3) -> (B, F, 3) face normals ``(v1-v0) x (v2-v0)``.

    Unnormalised, the length is twice the face area (used for area weights).
    Counter-clockwise faces (right-hand rule) get outward normals.
    """
    faces = faces.to(device=verts.device, dtype=torch.long)
    v0, v1, v2 = (verts.index_select(1, faces[:, k]) for k in range(3))
    n = torch.linalg.cross(v1 - v0, v2 - v0, dim=-1)
    if normalize:
        n = n / n.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return n


def vertex_normals(verts: Tensor, faces: Tensor) -> Tensor:
    """(B, V, 3) unit vertex normals: area-weighted sum of incident face normals.

    Vertices not used by any face get a zero normal.
    """
    B, V, _ = verts.shape
    return vertex_normals_cm(verts, faces).view(3, B, V).permute(1, 2, 0)


class VertexNormals:
    """:func:`vertex_normals` for one fixed triangle list, as two fixed sparse maps (face edges from
    vertices, face normals onto vertices): for a fitter that evaluates the normals of the same faces
    at every step, forward and backward are a few sparse products instead of gathers and
    scatter-adds. ``VertexNormals(faces, V, dtype)(verts (B, V, 3)) -> (B, V, 3)`` unit normals."""

    def __init__(self, faces: Tensor, num_vertices: int, dtype: torch.dtype = torch.float32):
        from ..utils.sparse import FixedSparse

        f = faces.long()
        F, dev = f.shape[0], f.device
        r = torch.arange(F, device=dev)
        one = torch.ones(F, dtype=dtype, device=dev)
        self.num_faces, self.num_vertices = F, int(num_vertices)
        self.edges = FixedSparse(torch.cat([r, r, r + F, r + F]), torch.cat([f[:, 1], f[:, 0], f[:, 2], f[:, 0]]),
                                 torch.cat([one, -one, one, -one]), (2 * F, self.num_vertices))
        self.gather = FixedSparse(f.T.reshape(-1), r.repeat(3), one.repeat(3), (self.num_vertices, F))

    def __call__(self, verts: Tensor) -> Tensor:
        B, V, _ = verts.shape
        e = self.edges(verts.permute(1, 0, 2).reshape(V, B * 3)).view(2, self.num_faces, B, 3)
        fn = torch.linalg.cross(e[0], e[1], dim=-1)  # (F, B, 3), |fn| = 2 * area
        acc = self.gather(fn.reshape(self.num_faces, B * 3)).view(V, B, 3)
        n = acc / torch.linalg.vector_norm(acc, dim=-1, keepdim=True).clamp_min(1e-12)
        return n.permute(1, 0, 2)


def vertex_normals_cm(verts: Tensor, faces: Tensor) -> Tensor:
    """Unit vertex normals in a coordinate-major (3, B*V) layout.

    Accumulation uses ``index_add`` along dim 1 of a (3, B*V) tensor, which is
    the fast path on CPU.
    """
    B, V, _ = verts.shape
    faces = faces.to(device=verts.device, dtype=torch.long)
    F = faces.shape[0]
    fn = face_normals(verts, faces, normalize=False)  # (B,F,3), |fn| = 2*area
    fnT = fn.permute(2, 0, 1).reshape(3, B * F)
    off = (torch.arange(B, device=verts.device) * V)[:, None]
    acc = verts.new_zeros(3, B * V)
    for k in range(3):
        acc = acc.index_add(1, (faces[:, k][None] + off).reshape(-1), fnT)
    # written out: Tensor.norm(dim=0) of a (3, N) tensor is a slow strided reduction on CPU
    return acc / torch.sqrt(acc[0] * acc[0] + acc[1] * acc[1] + acc[2] * acc[2]).clamp_min(1e-12)[None]


def sh_basis(normals: Tensor, lambertian: bool = False, dim: int = -1) -> Tensor:
    """Unit normals with x, y, z along ``dim`` (default: last, (..., 3)) ->
    the 9 SH basis values along the same dim ((..., 9); see module docstring)."""
    c = SH_CONSTANTS
    if lambertian:
        c = tuple(a * b for a, b in zip(c, _LAMBERT))
    x, y, z = normals.unbind(dim)
    cx, cy, cz = c[3] * x, c[1] * y, c[2] * z
    h = (
        torch.full_like(x, c[0]), cy, cz, cx,
        (c[4] * x) * y, (c[5] * y) * z, (3.0 * c[6]) * (z * z) - c[6], (c[7] * x) * z, c[8] * (x * x - y * y),
    )
    return torch.stack(h, dim=dim)


def sh_shading(normals: Tensor, coeffs: Tensor, lambertian: bool = False) -> Tensor:
    """Per-channel SH shading ``Σ_k l_k H_k(n)``.

    Args:
        normals: (B, ..., 3) unit normals.
        coeffs: (B, 9, 3) SH coefficients (one column per colour channel).
    Returns:
        (B, ..., 3) shading (multiply by the albedo to get the image).
    """
    B = normals.shape[0]
    h = sh_basis(normals, lambertian=lambertian)
    out = torch.bmm(h.reshape(B, -1, 9), coeffs.to(h))
    return out.reshape(*normals.shape[:-1], coeffs.shape[-1])


def frontal_light(strength: float = 1.0, ambient: float = 0.65, top: float = 0.15, side: float = 0.0,
                  n: int = 1, dtype=torch.float32) -> torch.Tensor:
    """SH coefficients (n, 9, 3) of a soft light from the front: ambient + directional terms."""
    c = torch.zeros(n, 9, 3, dtype=dtype)
    c[:, 0] = strength * ambient / _C0
    c[:, 1] = strength * top / _C1  # y (from above)
    c[:, 2] = strength * (1 - ambient) / _C1  # z (from the camera side)
    c[:, 3] = strength * side / _C1  # x
    return c
