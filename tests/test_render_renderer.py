"""High-level Renderer: outputs, compositing, culling equivalence, batching, gradients."""
from __future__ import annotations

import math

import pytest
import torch

from mfnet.render import (
    PerspectiveCameras,
    Renderer,
    WeakPerspectiveCameras,
    interpolate,
    intrinsics_from_fov,
    look_at_opencv,
)


def _sphere(dtype=torch.float32, subdiv=3):
    import trimesh

    m = trimesh.creation.icosphere(subdivisions=subdiv, radius=0.1)
    return torch.tensor(m.vertices, dtype=dtype)[None], torch.tensor(m.faces)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_outputs_and_background(dtype):
    v, f = _sphere(dtype)
    v = v.expand(2, -1, -1)
    cams = WeakPerspectiveCameras(torch.tensor([6.0, 4.0], dtype=dtype), torch.tensor([[0.0, 0.0], [0.05, 0.0]], dtype=dtype))
    col = torch.rand(2, v.shape[1], 3, dtype=dtype)
    bg = torch.rand(2, 3, 40, 48, dtype=dtype)
    out = Renderer((40, 48)).render(v, f, cams, vertex_colors=col, background=bg, soft_mask=True)
    assert out.image.shape == (2, 3, 40, 48) and out.image.dtype == dtype
    assert out.mask.shape == (2, 1, 40, 48) and out.depth.shape == (2, 1, 40, 48)
    assert out.normals.shape == (2, 3, 40, 48) and out.soft_mask.shape == (2, 1, 40, 48)
    m = out.mask.bool()
    assert torch.equal(m[:, 0], out.fragments.mask)
    torch.testing.assert_close(out.image.masked_select(~m.expand_as(bg)), bg.masked_select(~m.expand_as(bg)))
    # without lighting the image is the interpolated vertex colour
    ref = interpolate(out.fragments, col, f).permute(0, 3, 1, 2)
    torch.testing.assert_close(out.image.masked_select(m.expand_as(bg)), ref.masked_select(m.expand_as(bg)))
    assert (out.soft_mask >= out.mask).all()
    torch.testing.assert_close(out.normals.norm(dim=1)[m[:, 0]], torch.ones(int(m.sum()), dtype=dtype))
    assert (out.depth[~m] == 0).all()


def test_cull_backfaces_is_invisible_on_closed_mesh():
    v, f = _sphere()
    R, t = look_at_opencv(torch.tensor([[0.1, 0.2, 0.5], [-0.4, 0.0, 0.2]]))
    cams = PerspectiveCameras(intrinsics_from_fov(40.0, 48, batch=2), R, t)
    L = torch.zeros(2, 9, 3)
    L[:, 0] = 2.0
    L[:, 3] = 0.7
    a = Renderer(48).render(v.expand(2, -1, -1), f, cams, sh_coeffs=L, soft_mask=True)
    b = Renderer(48, cull_backfaces=True).render(v.expand(2, -1, -1), f, cams, sh_coeffs=L, soft_mask=True)
    assert torch.equal(a.fragments.pix_to_face, b.fragments.pix_to_face)
    torch.testing.assert_close(a.image, b.image)
    torch.testing.assert_close(a.soft_mask, b.soft_mask)


def test_batch_equals_individual_renders():
    v, f = _sphere()
    a = math.radians(30)
    Ry = torch.tensor([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])
    V = torch.cat([v, v @ Ry.T * 1.1])
    cams = WeakPerspectiveCameras(torch.tensor([5.0, 6.0]), torch.tensor([[0.01, 0.0], [0.0, 0.02]]))
    col = torch.rand(2, v.shape[1], 3)
    L = torch.randn(2, 9, 3) * 0.3
    L[:, 0] += 3
    r = Renderer(32)
    both = r.render(V, f, cams, vertex_colors=col, sh_coeffs=L, soft_mask=True)
    for k in range(2):
        ck = WeakPerspectiveCameras(cams.scale[k : k + 1], cams.trans[k : k + 1])
        one = r.render(V[k : k + 1], f, ck, vertex_colors=col[k : k + 1], sh_coeffs=L[k : k + 1], soft_mask=True)
        torch.testing.assert_close(one.image[0], both.image[k])
        torch.testing.assert_close(one.soft_mask[0], both.soft_mask[k])


def test_gradients_reach_all_inputs():
    v, f = _sphere()
    v = v.clone().requires_grad_(True)
    cams = WeakPerspectiveCameras(torch.tensor([6.0]), torch.zeros(1, 2))
    col = torch.full((1, v.shape[1], 3), 0.5, requires_grad=True)
    L = torch.zeros(1, 9, 3)
    L[0, 0] = 3.0
    L[0, 2] = 1.0
    L.requires_grad_(True)
    out = Renderer(32).render(v, f, cams, vertex_colors=col, sh_coeffs=L, soft_mask=True)
    (out.image.sum() + out.soft_mask.sum()).backward()
    for g in (v.grad, col.grad, L.grad):
        assert torch.isfinite(g).all() and g.abs().sum() > 0


def test_texture_render_and_gradients():
    v, f = _sphere()
    # planar UV projection (front view); enough to exercise the path
    vt = (v[0, :, :2] / 0.2 + 0.5).clamp(0, 1)
    tex = torch.rand(1, 3, 16, 16, requires_grad=True)
    cams = WeakPerspectiveCameras(torch.tensor([6.0]), torch.zeros(1, 2))
    out = Renderer(32).render(v, f, cams, texture=tex, vt=vt, ft=f, extras=True)
    assert out.albedo is not None and out.shading is None
    out.image.sum().backward()
    assert tex.grad.abs().sum() > 0
    assert (out.image[:, :, ~out.mask[0, 0].bool()] == 0).all()


def test_ict_head_renders_with_open_boundaries(ict_dir):
    """The open ICT-FaceKit head (neck cut, eye and mouth holes) renders and gives a soft mask."""
    obj = ict_dir / "generic_neutral_mesh.obj"
    if not obj.exists():
        pytest.skip("generic_neutral_mesh.obj not available")
    verts, faces = [], []
    for line in obj.read_text().splitlines():
        if line.startswith("v "):
            verts.append([float(x) for x in line.split()[1:4]])
        elif line.startswith("f "):
            idx = [int(t.split("/")[0]) - 1 for t in line.split()[1:]]
            if max(idx) < 11248:
                faces.extend([idx[0], idx[k], idx[k + 1]] for k in range(1, len(idx) - 1))
    v = torch.tensor(verts[:11248]) * 0.01
    v = (v - (v.amax(0) + v.amin(0)) / 2)[None]
    f = torch.tensor(faces)
    cams = WeakPerspectiveCameras(torch.tensor([5.0]), torch.zeros(1, 2))
    v.requires_grad_(True)
    out = Renderer(64).render(v, f, cams, sh_coeffs=torch.tensor([[3.0, 0, 1.0] + [0.0] * 6]).T[None].expand(1, 9, 3), soft_mask=True)
    m = out.mask[0, 0].bool()
    assert 0.2 < m.float().mean() < 0.8
    assert (out.image[0][:, m] > 0).all()  # lit from the front: all visible pixels are bright
    s = out.soft_mask[0, 0]
    assert ((s > 0.05) & ~m).sum() > 0.5 * (m.sum() ** 0.5)  # a soft rim all around the head
    (out.image.sum() + out.soft_mask.sum()).backward()
    assert torch.isfinite(v.grad).all() and v.grad.abs().sum() > 0


@pytest.mark.parametrize("persp", [False, True])
def test_render_gradcheck_small_scene(persp):
    """Finite-difference check of the whole renderer (image and soft mask)."""
    import trimesh

    m = trimesh.creation.icosphere(subdivisions=1, radius=0.1)
    torch.manual_seed(0)
    v = (torch.tensor(m.vertices) * (1 + 0.05 * torch.rand(len(m.vertices), 1))).double()[None]
    f = torch.tensor(m.faces)
    if persp:
        R, t = look_at_opencv(torch.tensor([0.05, 0.03, 0.45], dtype=torch.float64))
        cams = PerspectiveCameras(intrinsics_from_fov(40.0, 12, dtype=torch.float64), R, t)
    else:
        cams = WeakPerspectiveCameras(torch.tensor([7.3], dtype=torch.float64), torch.tensor([[0.003, -0.002]], dtype=torch.float64))
    col = torch.rand(1, v.shape[1], 3, dtype=torch.float64, requires_grad=True)
    L = (torch.randn(1, 9, 3, dtype=torch.float64) * 0.3 + torch.tensor([2.0] + [0.0] * 8, dtype=torch.float64)[:, None]).requires_grad_(True)
    r = Renderer(12)

    def fn(verts, colors, sh):
        out = r.render(verts, f, cams, vertex_colors=colors, sh_coeffs=sh, soft_mask=True)
        return out.image, out.soft_mask, out.normals, out.depth

    assert torch.autograd.gradcheck(fn, (v.clone().requires_grad_(True), col, L), eps=1e-7, atol=1e-5, fast_mode=True)
