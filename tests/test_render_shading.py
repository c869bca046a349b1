"""Normals and spherical-harmonics lighting."""
from __future__ import annotations

import math

import pytest
import torch

from mfnet.render import (
    SH_CONSTANTS,
    Renderer,
    WeakPerspectiveCameras,
    face_normals,
    sh_basis,
    sh_shading,
    vertex_normals,
)


def _sphere(subdiv=4, radius=0.1, dtype=torch.float64):
    import trimesh

    m = trimesh.creation.icosphere(subdivisions=subdiv, radius=radius)
    return torch.tensor(m.vertices, dtype=dtype)[None], torch.tensor(m.faces)


def _fibonacci(n, dtype=torch.float64):
    i = torch.arange(n, dtype=dtype) + 0.5
    z = 1 - 2 * i / n
    phi = math.pi * (1 + 5**0.5) * i
    r = torch.sqrt(1 - z * z)
    return torch.stack((r * torch.cos(phi), r * torch.sin(phi), z), -1)


def test_sh_constants_as_documented():
    pi = math.pi
    expected = [1 / math.sqrt(4 * pi)] + [math.sqrt(3 / (4 * pi))] * 3
    c2, c3, c4 = 3 * math.sqrt(5 / (12 * pi)), math.sqrt(5 / (16 * pi)), 1.5 * math.sqrt(5 / (12 * pi))
    expected += [c2, c2, c3, c2, c4]
    assert SH_CONSTANTS == pytest.approx(expected)
    n = torch.tensor([0.36, 0.48, 0.8], dtype=torch.float64)
    x, y, z = n.tolist()
    h = sh_basis(n)
    raw = [1, y, z, x, x * y, y * z, 3 * z * z - 1, x * z, x * x - y * y]
    torch.testing.assert_close(h, torch.tensor([c * r for c, r in zip(expected, raw)], dtype=torch.float64))


def test_sh_basis_is_orthonormal_on_the_sphere():
    n = _fibonacci(20000)
    h = sh_basis(n)
    gram = h.T @ h * (4 * math.pi / n.shape[0])
    torch.testing.assert_close(gram, torch.eye(9, dtype=torch.float64), atol=2e-3, rtol=0)


def test_lambertian_factors():
    n = _fibonacci(10)
    ratio = sh_basis(n, lambertian=True) / sh_basis(n)
    fac = torch.tensor([math.pi] + [2 * math.pi / 3] * 3 + [math.pi / 4] * 5, dtype=torch.float64)
    torch.testing.assert_close(ratio[0], fac)


def test_sh_shading_shapes_and_linearity():
    torch.manual_seed(0)
    n = torch.nn.functional.normalize(torch.randn(2, 5, 7, 3), dim=-1)
    L1, L2 = torch.randn(2, 9, 3), torch.randn(2, 9, 3)
    s = sh_shading(n, L1 + 2 * L2)
    assert s.shape == (2, 5, 7, 3)
    torch.testing.assert_close(s, sh_shading(n, L1) + 2 * sh_shading(n, L2), atol=1e-5, rtol=1e-5)
    # per-batch coefficients are used per batch element
    torch.testing.assert_close(s[1], sh_shading(n[1:], (L1 + 2 * L2)[1:])[0], atol=1e-5, rtol=1e-5)


def test_vertex_normals_of_sphere_are_radial():
    v, f = _sphere(3)
    vn = vertex_normals(v, f)
    torch.testing.assert_close(vn.norm(dim=-1), torch.ones(v.shape[:2], dtype=v.dtype))
    radial = v / v.norm(dim=-1, keepdim=True)
    assert (vn * radial).sum(-1).min() > 0.999
    fn = face_normals(v, f)
    centres = v[:, f].mean(2)
    assert ((fn * centres).sum(-1) > 0).all()  # outward


def test_vertex_normals_area_weighted():
    # vertex 0 shared by a big face in the z=0 plane and a small face in the x=0 plane
    v = torch.tensor([[[0.0, 0, 0], [10, 0, 0], [0, 10, 0], [0, 0, -1], [0, 1, 0]]], dtype=torch.float64)
    f = torch.tensor([[0, 1, 2], [0, 3, 4]])
    n = vertex_normals(v, f)[0, 0]
    # face normals (unnormalised, = 2 * area * unit normal): (0, 0, 100) and (1, 0, 0)
    expected = torch.tensor([1.0, 0.0, 100.0], dtype=torch.float64)
    torch.testing.assert_close(n, expected / expected.norm())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_sh_lit_sphere_matches_closed_form(dtype):
    """Constant + z-term lighting of a rendered sphere vs the analytic normal per pixel."""
    v, f = _sphere(4, radius=0.1, dtype=dtype)
    H = W = 64
    scale = 7.0
    cams = WeakPerspectiveCameras(torch.tensor([scale], dtype=dtype), torch.zeros(1, 2, dtype=dtype))
    L = torch.zeros(1, 9, 3, dtype=dtype)
    L[0, 0] = torch.tensor([2.0, 1.5, 1.0])
    L[0, 2] = torch.tensor([1.0, 0.5, -0.5])
    albedo = torch.tensor([0.8, 0.6, 0.4], dtype=dtype)
    out = Renderer((H, W)).render(v, f, cams, vertex_colors=albedo.expand(1, v.shape[1], 3), sh_coeffs=L)
    # analytic: pixel centre -> world (X, Y) on the orthographic ray -> sphere normal
    S = min(H, W) / 2
    jj, ii = torch.meshgrid(torch.arange(W, dtype=dtype) + 0.5, torch.arange(H, dtype=dtype) + 0.5, indexing="xy")
    X = (jj - W / 2) / S / scale
    Y = -(ii - H / 2) / S / scale
    r2 = (X * X + Y * Y) / 0.1**2
    inside = r2 < 0.8  # away from the polygonal rim
    nz = torch.sqrt((1 - r2).clamp(min=0))
    c0, c1 = SH_CONSTANTS[0], SH_CONSTANTS[2]
    expected = albedo[:, None, None] * (L[0, 0][:, None, None] * c0 + L[0, 2][:, None, None] * c1 * nz)
    img = out.image[0]
    assert out.mask[0, 0][inside].all()
    err = (img - expected)[:, inside].abs()
    assert err.max() < 0.02 * expected[:, inside].abs().max()
    # normals output agrees with the analytic normal too
    n = out.normals[0][:, inside]
    assert (n[2] - nz[inside]).abs().max() < 0.02
