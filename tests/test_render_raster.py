"""Rasteriser: occlusion, coverage, agreement with a naive reference, gradients."""
from __future__ import annotations

import math

import pytest
import torch

from mfnet.render import (
    PerspectiveCameras,
    WeakPerspectiveCameras,
    interpolate,
    interpolate_face_attributes,
    intrinsics_from_fov,
    look_at_opencv,
    rasterize,
)
from mfnet.render.reference import reference_rasterize

DTYPES = [torch.float32, torch.float64]


@pytest.fixture(scope="module")
def sphere_mesh():
    import trimesh

    m = trimesh.creation.icosphere(subdivisions=2, radius=0.1)
    return torch.tensor(m.vertices, dtype=torch.float32)[None], torch.tensor(m.faces)


def _two_triangles(near_first: bool, dtype=torch.float32):
    """Two overlapping screen-space triangles: 'near' at depth 1, 'far' at depth 2."""
    near = [[4.2, 3.1, 1.0], [27.7, 6.3, 1.0], [10.4, 26.9, 1.0]]
    far = [[2.3, 12.2, 2.0], [29.1, 14.6, 2.0], [20.6, 30.2, 2.0]]
    verts = torch.tensor([near + far] if near_first else [far + near], dtype=dtype)
    faces = torch.tensor([[0, 1, 2], [3, 4, 5]])
    return verts, faces, (0 if near_first else 1)


@pytest.mark.parametrize("near_first", [True, False])
@pytest.mark.parametrize("dtype", DTYPES)
def test_occlusion_screen_space(near_first, dtype):
    verts, faces, near_idx = _two_triangles(near_first, dtype)
    frags = rasterize(verts, faces, (32, 32))
    alone = [rasterize(verts, faces[k : k + 1], (32, 32)).mask[0] for k in range(2)]
    both = alone[0] & alone[1]
    assert both.sum() > 20
    assert (frags.pix_to_face[0][both] == near_idx).all()
    torch.testing.assert_close(frags.zbuf[0][both], torch.ones_like(frags.zbuf[0][both]))
    # elsewhere: whichever triangle covers the pixel
    only_far = alone[1 - near_idx] & ~alone[near_idx]
    assert only_far.sum() > 20
    assert (frags.pix_to_face[0][only_far] == 1 - near_idx).all()
    assert (frags.mask[0] == (alone[0] | alone[1])).all()
    assert torch.isinf(frags.zbuf[0][~frags.mask[0]]).all()


@pytest.mark.parametrize("near_first", [True, False])
def test_occlusion_perspective_camera(near_first):
    """Two world-space quads, one 0.5 m in front of the other, seen by a perspective camera."""
    def quad(z, s):
        return [[-s, -s, z], [s, -s, z], [s, s, z], [-s, s, z]]

    near, far = quad(0.3, 0.2), quad(-0.2, 0.4)
    pts = torch.tensor([near + far] if near_first else [far + near])
    q = torch.tensor([[0, 1, 2], [0, 2, 3]])
    faces = torch.cat([q, q + 4])
    near_faces = {0, 1} if near_first else {2, 3}
    R, t = look_at_opencv(torch.tensor([0.1, 0.05, 2.0]))
    cams = PerspectiveCameras(intrinsics_from_fov(40.0, 48), R, t)
    sv = cams.project(pts, 48)
    frags = rasterize(sv, faces, 48, perspective_correct=True)
    near_cov = rasterize(sv, faces[sorted(near_faces)], 48, perspective_correct=True).mask[0]
    assert near_cov.sum() > 100
    p2f = frags.pix_to_face[0]
    assert all(int(f) in near_faces for f in p2f[near_cov].unique())
    assert (frags.mask[0] & ~near_cov).sum() > 100  # the far quad shows around it
    # depth of the near quad: the distance along the optical axis, ~1.7 m
    z = frags.zbuf[0][near_cov]
    assert (z > 1.6).all() and (z < 1.8).all()


@pytest.mark.parametrize("size", [(17, 23), (32, 32)])
def test_full_screen_quad_covers_every_pixel_exactly_once(size):
    H, W = size
    verts = torch.tensor([[[0.0, 0.0, 1.0], [W, 0.0, 1.0], [W, H, 1.0], [0.0, H, 1.0]]])
    faces = torch.tensor([[0, 1, 2], [0, 2, 3]])
    masks = [rasterize(verts, faces[k : k + 1], size).mask[0].int() for k in range(2)]
    assert ((masks[0] + masks[1]) == 1).all()
    frags = rasterize(verts, faces, size)
    assert frags.mask.all()
    # a quad whose diagonal passes exactly through pixel centres (square image)
    if H == W:
        assert masks[0].sum() + masks[1].sum() == H * W


def test_shared_edges_are_watertight_random_fan():
    """A fan of triangles around an interior vertex: union covered once, no cracks."""
    torch.manual_seed(0)
    n = 13
    ang = torch.sort(torch.rand(n) * 2 * math.pi).values
    rad = 10 + 5 * torch.rand(n)
    ring = torch.stack((32 + rad * torch.cos(ang), 32 + rad * torch.sin(ang), torch.ones(n)), 1)
    centre = torch.tensor([[32.37, 31.81, 1.0]])
    verts = torch.cat([centre, ring])[None]
    faces = torch.tensor([[0, 1 + k, 1 + (k + 1) % n] for k in range(n)])
    count = sum(rasterize(verts, faces[k : k + 1], 64).mask[0].int() for k in range(n))
    assert count.max() == 1
    # every pixel centre strictly inside the polygon (by the full-mesh test) is covered once
    assert (count == rasterize(verts, faces, 64).mask[0].int()).all()


def test_triangle_pixel_count_matches_area():
    torch.manual_seed(1)
    for _ in range(5):
        p = torch.rand(3, 2) * 90 + 5
        area = 0.5 * abs(float((p[1, 0] - p[0, 0]) * (p[2, 1] - p[0, 1]) - (p[1, 1] - p[0, 1]) * (p[2, 0] - p[0, 0])))
        perim = float((p - p.roll(1, 0)).norm(dim=1).sum())
        verts = torch.cat([p, torch.ones(3, 1)], 1)[None]
        n = int(rasterize(verts, torch.tensor([[0, 1, 2]]), 100).mask.sum())
        assert abs(n - area) <= 0.5 * perim + 2


def test_degenerate_offscreen_and_culled_faces():
    verts = torch.tensor(
        [[[2.0, 2.0, 1.0], [20.0, 2.0, 1.0], [2.0, 20.0, 1.0],  # front? (see below)
          [5.0, 5.0, 1.0], [10.0, 10.0, 1.0], [15.0, 15.0, 1.0],  # collinear
          [-50.0, -50.0, 1.0], [-40.0, -50.0, 1.0], [-50.0, -40.0, 1.0]]]  # off-screen
    )
    faces = torch.tensor([[0, 1, 2], [3, 4, 5], [6, 7, 8], [0, 2, 1]])
    frags = rasterize(verts, faces[:3], 24)
    assert set(frags.pix_to_face.unique().tolist()) == {-1, 0}
    # face 0 has positive signed area in y-down screen space -> back-facing
    assert rasterize(verts, faces[:1], 24, cull_backfaces=True).mask.sum() == 0
    assert rasterize(verts, faces[3:], 24, cull_backfaces=True).mask.sum() > 100


@pytest.mark.parametrize("persp", [False, True])
def test_matches_naive_reference(persp, sphere_mesh):
    verts, faces = sphere_mesh
    if persp:
        R, t = look_at_opencv(torch.tensor([[0.2, 0.1, 0.6], [-0.3, 0.0, 0.5]]))
        cams = PerspectiveCameras(intrinsics_from_fov(35.0, 40, batch=2), R, t)
    else:
        cams = WeakPerspectiveCameras(torch.tensor([7.0, 5.0]), torch.tensor([[0.01, 0.0], [0.0, -0.02]]))
    sv = cams.project(verts.expand(2, -1, -1), 40)
    frags = rasterize(sv, faces, 40, perspective_correct=persp)
    p2f, zbuf = reference_rasterize(sv, faces, 40, perspective_correct=persp)
    assert (frags.mask == (p2f >= 0)).float().mean() > 0.999
    both = frags.mask & (p2f >= 0)
    # the visible surface depth agrees (face ids may differ on shared edges)
    torch.testing.assert_close(frags.zbuf[both], zbuf[both], atol=1e-4, rtol=1e-4)
    assert (frags.pix_to_face[both] == p2f[both]).float().mean() > 0.98
    # chunked enumeration gives the same answer
    small = rasterize(sv, faces, 40, perspective_correct=persp, max_candidates=50)
    assert torch.equal(small.pix_to_face, frags.pix_to_face)


def test_barycentrics_reproduce_pixel_centres():
    """Interpolating screen x, y with the barycentrics returns the pixel centre."""
    torch.manual_seed(2)
    verts = torch.cat([torch.rand(1, 30, 2) * 40 - 4, torch.rand(1, 30, 1) + 1], -1).double()
    faces = torch.randint(0, 30, (40, 3))
    faces = faces[(faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 0] != faces[:, 2])]
    frags = rasterize(verts, faces, (32, 36))
    xy = interpolate(frags, verts[..., :2], faces)[0]
    ii, jj = torch.meshgrid(torch.arange(32.0), torch.arange(36.0), indexing="ij")
    m = frags.mask[0]
    torch.testing.assert_close(xy[m], torch.stack((jj + 0.5, ii + 0.5), -1).double()[m])
    assert (xy[~m] == 0).all()
    torch.testing.assert_close(frags.bary.sum(-1)[frags.mask], torch.ones(int(m.sum()), dtype=torch.float64))


def test_perspective_correct_barycentrics_hit_the_pixel_ray():
    """Perspective-correct barycentrics interpolate world points onto the pixel's ray."""
    verts = torch.tensor([[[-0.3, -0.2, 0.1], [0.4, -0.1, -0.3], [0.0, 0.35, 0.2], [0.3, 0.3, -0.1]]], dtype=torch.float64)
    faces = torch.tensor([[0, 1, 2], [1, 3, 2]])
    R, t = look_at_opencv(torch.tensor([0.3, 0.2, 1.2], dtype=torch.float64))
    cams = PerspectiveCameras(intrinsics_from_fov(50.0, 32, dtype=torch.float64), R, t)
    frags = rasterize(cams.project(verts, 32), faces, 32, perspective_correct=True)
    world = interpolate(frags, verts, faces)[0]
    m = frags.mask[0]
    assert m.sum() > 100
    p = cams.project(world[m][None], 32)[0]
    ii, jj = torch.nonzero(m, as_tuple=True)
    torch.testing.assert_close(p[:, 0], jj.double() + 0.5)
    torch.testing.assert_close(p[:, 1], ii.double() + 0.5)
    torch.testing.assert_close(p[:, 2], frags.zbuf[0][m])


def test_interpolate_gradcheck():
    """gradcheck of rasterize+interpolate w.r.t. screen vertices and vertex / corner attributes."""
    verts = torch.tensor(
        [[[1.13, 1.31, 1.0], [7.71, 0.87, 1.5], [4.37, 7.62, 2.0], [8.83, 6.91, 1.2]]], dtype=torch.float64, requires_grad=True
    )
    faces = torch.tensor([[0, 1, 2], [1, 3, 2]])
    attrs = torch.randn(1, 4, 2, dtype=torch.float64, requires_grad=True)
    corner = torch.randn(1, 2, 3, 2, dtype=torch.float64, requires_grad=True)

    def fn(v, a, c):
        fr = rasterize(v, faces, (9, 10), perspective_correct=True)
        return interpolate(fr, a, faces), interpolate_face_attributes(fr, c), fr.zbuf[fr.mask]

    assert torch.autograd.gradcheck(fn, (verts, attrs, corner), eps=1e-6, atol=1e-6)

    def fn2(v, a):
        return interpolate(rasterize(v, faces, (9, 10)), a, faces)

    assert torch.autograd.gradcheck(fn2, (verts, attrs), eps=1e-6, atol=1e-6)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA not available")
def test_cuda_matches_cpu(sphere_mesh):
    verts, faces = sphere_mesh
    cams = WeakPerspectiveCameras(torch.tensor([7.0]), torch.zeros(1, 2))
    sv = cams.project(verts, 48)
    a = rasterize(sv, faces, 48)
    b = rasterize(sv.cuda(), faces.cuda(), 48)
    assert torch.equal(a.pix_to_face, b.pix_to_face.cpu())


@pytest.mark.parametrize("persp", [False, True])
def test_fused_autograd_functions_gradcheck(persp):
    """The hand-written backward passes match finite differences."""
    from mfnet.render._autograd import blend, pixel_barycentrics

    torch.manual_seed(3)
    verts = torch.cat([torch.rand(6, 2) * 10, torch.rand(6, 1) + 0.5], 1).double().requires_grad_(True)
    vidx = torch.tensor([[0, 1, 2], [3, 4, 5], [1, 4, 2], [0, 1, 2]]).t()  # (3, M)
    p = torch.rand(4, 2, dtype=torch.float64) * 10
    assert torch.autograd.gradcheck(lambda v: pixel_barycentrics(v, vidx, p, persp), (verts,))
    assert torch.autograd.gradcheck(lambda v: pixel_barycentrics(v, vidx, p, persp)[0], (verts,))  # depth unused
    assert torch.autograd.gradcheck(lambda v: pixel_barycentrics(v, vidx, p, persp)[1], (verts,))  # bary unused
    bary = torch.rand(4, 3, dtype=torch.float64, requires_grad=True)
    flat = torch.randn(6, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda b, f: blend(b, f, vidx), (bary, flat))
    from mfnet.render._autograd import blend_cm

    flat2 = torch.randn(2, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda b, f1, f2: blend_cm(b, vidx, f1, f2), (bary, flat.t().detach().requires_grad_(True), flat2))
    assert torch.autograd.gradcheck(lambda b, f1, f2: blend_cm(b, vidx, f1, f2)[1], (bary, flat.t().detach().requires_grad_(True), flat2))


def test_fused_normal_shading_gradcheck():
    from mfnet.render._autograd import normal_shade
    from mfnet.render.shading import SH_CONSTANTS, sh_basis

    torch.manual_seed(4)
    n = torch.randn(3, 7, dtype=torch.float64, requires_grad=True)
    L = torch.randn(2, 9, 3, dtype=torch.float64, requires_grad=True)
    spans = [(0, 3), (3, 7)]
    assert torch.autograd.gradcheck(lambda a, b: normal_shade(a, b, spans, SH_CONSTANTS), (n, L))
    # matches the unfused formulation
    nh, sh = normal_shade(n, L, spans, SH_CONSTANTS)
    ref_n = n / n.norm(dim=0, keepdim=True)
    torch.testing.assert_close(nh, ref_n)
    H = sh_basis(ref_n.t())  # (M, 9)
    ref = torch.cat([H[0:3] @ L[0], H[3:7] @ L[1]]).t()
    torch.testing.assert_close(sh, ref)
