"""UV textures: sampling convention, UV rasterisation, extraction and re-rendering."""
from __future__ import annotations

import math

import pytest
import torch

from mfnet.render import (
    PerspectiveCameras,
    Renderer,
    WeakPerspectiveCameras,
    extract_texture,
    interpolate_face_attributes,
    intrinsics_from_fov,
    look_at_opencv,
    rasterize_uv,
    sample_texture,
)


def _bump_patch(n=33, dtype=torch.float64):
    """Height-field patch facing +z with a bump; UVs = normalised (x, y)."""
    t = torch.linspace(-0.1, 0.1, n, dtype=dtype)
    y, x = torch.meshgrid(t, t, indexing="ij")
    z = 0.04 * torch.exp(-(x * x + y * y) / 0.002)
    verts = torch.stack((x, y, z), -1).reshape(1, -1, 3)
    idx = torch.arange(n * n).reshape(n, n)
    a, b, c, d = idx[:-1, :-1], idx[:-1, 1:], idx[1:, 1:], idx[1:, :-1]
    faces = torch.cat([torch.stack((a, b, c), -1).reshape(-1, 3), torch.stack((a, c, d), -1).reshape(-1, 3)])
    vt = ((verts[0, :, :2] + 0.1) / 0.2).to(dtype)
    return verts, faces, vt, faces.clone()


def _smooth_texture(T=64, dtype=torch.float64):
    c = (torch.arange(T, dtype=dtype) + 0.5) / T
    v, u = torch.meshgrid(1 - c, c, indexing="ij")  # row 0 = top = v near 1
    r = 0.5 + 0.4 * torch.sin(2 * math.pi * u)
    g = 0.5 + 0.4 * torch.cos(2 * math.pi * v)
    b = 0.3 + 0.5 * u * v
    return torch.stack((r, g, b))[None]


def _yaw_cams(deg, dtype=torch.float64):
    return deg, WeakPerspectiveCameras(torch.tensor([8.0], dtype=dtype), torch.zeros(1, 2, dtype=dtype))


def _rot(verts, deg):
    a = math.radians(deg)
    Ry = torch.tensor([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]], dtype=verts.dtype)
    return verts @ Ry.T


def test_sample_texture_convention():
    tex = torch.arange(2 * 3 * 4, dtype=torch.float64).reshape(1, 2, 3, 4)
    rows, cols = torch.meshgrid(torch.arange(3.0, dtype=torch.float64), torch.arange(4.0, dtype=torch.float64), indexing="ij")
    uv = torch.stack(((cols + 0.5) / 4, 1 - (rows + 0.5) / 3), -1)[None]
    out = sample_texture(tex, uv)
    torch.testing.assert_close(out, tex.permute(0, 2, 3, 1))
    # v up: v = 1 - eps is the top row
    top = sample_texture(tex, torch.tensor([[[[0.125, 0.99]]]], dtype=torch.float64))
    torch.testing.assert_close(top[0, 0, 0], tex[0, :, 0, 0])


def test_rasterize_uv_covers_the_layout():
    verts, faces, vt, ft = _bump_patch(9)
    frags = rasterize_uv(vt, ft, 32)
    assert frags.mask.all()  # the patch UVs fill [0, 1]^2
    assert rasterize_uv(vt, ft, 32) is frags  # cached
    # barycentric UV interpolation returns the texel centre
    uv = interpolate_face_attributes(frags, vt[ft][None])[0]
    c = (torch.arange(32, dtype=torch.float64) + 0.5) / 32
    torch.testing.assert_close(uv[..., 0], c.expand(32, 32))
    torch.testing.assert_close(uv[..., 1], (1 - c)[:, None].expand(32, 32))


@pytest.mark.parametrize("yaw", [0.0, 25.0])
def test_extract_then_rerender_is_consistent(yaw):
    verts, faces, vt, ft = _bump_patch()
    verts = _rot(verts, yaw)
    _, cams = _yaw_cams(yaw)
    T0 = _smooth_texture()
    R = Renderer(96)
    out = R.render(verts, faces, cams, texture=T0, vt=vt, ft=ft)
    T1, vis = extract_texture(out.image, verts, faces, vt, ft, cams, 64)
    assert T1.shape == (1, 3, 64, 64) and vis.shape == (1, 1, 64, 64)
    seen = vis[0, 0] > 0
    assert seen.float().mean() > 0.95
    # extracted texels reproduce the original texture (up to resampling blur)
    diff = (T1[0] - T0[0]).abs()[:, seen]
    assert diff.mean() < 0.005 and diff.max() < 0.03
    # re-render with the extracted texture: equal where its bilinear footprint is visible
    again = R.render(verts, faces, cams, texture=T1, vt=vt, ft=ft)
    uv = interpolate_face_attributes(out.fragments, vt[ft][None])
    ok = sample_texture((vis > 0).double(), uv)[0, ..., 0] > 0.999
    ok &= out.mask[0, 0].bool()
    assert ok.sum() > 0.9 * out.mask.sum()
    err = (again.image[0] - out.image[0]).abs()[:, ok]
    assert err.mean() < 0.005 and err.max() < 0.03


def test_extract_visibility_back_and_occlusion():
    verts, faces, vt, ft = _bump_patch()
    # seen from behind: nothing is visible
    _, cams = _yaw_cams(180.0)
    vb = _rot(verts, 180.0)
    img = torch.rand(1, 3, 64, 64, dtype=torch.float64)
    tex, vis = extract_texture(img, vb, faces, vt, ft, cams, 32)
    assert vis.max() == 0 and tex.abs().max() == 0
    # grazing view: the bump hides texels behind it although they face the camera
    R, t = look_at_opencv(torch.tensor([0.6, 0.0, 0.12], dtype=torch.float64), target=(0.0, 0.0, 0.0), up=(0.0, 1.0, 0.0))
    pc = PerspectiveCameras(intrinsics_from_fov(30.0, 96, dtype=torch.float64), R, t)
    tex, vis = extract_texture(torch.rand(1, 3, 96, 96, dtype=torch.float64), verts, faces, vt, ft, pc, 64)
    c = (torch.arange(64, dtype=torch.float64) + 0.5) / 64 * 0.2 - 0.1
    yy, xx = torch.meshgrid(c.flip(0), c, indexing="ij")
    behind = (xx < -0.04) & (xx > -0.07) & (yy.abs() < 0.005)  # flat ground behind the bump (from +x)
    front = (xx > 0.06) & (yy.abs() < 0.01)
    assert (vis[0, 0][front] > 0).all()
    assert (vis[0, 0][behind] == 0).all()


def test_extract_texture_gradients():
    verts, faces, vt, ft = _bump_patch(9)
    _, cams = _yaw_cams(0.0)
    img = torch.rand(1, 3, 48, 48, dtype=torch.float64, requires_grad=True)
    v = verts.clone().requires_grad_(True)
    tex, vis = extract_texture(img, v, faces, vt, ft, cams, 16)
    (tex.sum() + vis.sum()).backward()
    assert img.grad.abs().sum() > 0
    assert torch.isfinite(v.grad).all() and v.grad.abs().sum() > 0
