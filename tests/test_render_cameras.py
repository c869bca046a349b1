"""Camera projection conventions (hand-computed pixel coordinates)."""
from __future__ import annotations

import math

import pytest
import torch

from mfnet.render import PerspectiveCameras, WeakPerspectiveCameras, intrinsics_from_fov, look_at_opencv


def test_weak_perspective_known_points():
    cams = WeakPerspectiveCameras(torch.tensor([2.0]), torch.tensor([[0.1, -0.2]]))
    X = torch.tensor([[[0.0, 0.0, 0.3], [0.5, 0.25, -0.1]]])
    H, W = 100, 200  # S = min(H, W) / 2 = 50
    p = cams.project(X, (H, W))
    # point 0: ndc = 2 * (0.1, -0.2) = (0.2, -0.4) -> x = 100 + 10, y = 50 + 20
    # point 1: ndc = 2 * (0.6, 0.05) = (1.2, 0.1) -> x = 100 + 60, y = 50 - 5
    expected = torch.tensor([[[110.0, 70.0, -0.3], [160.0, 45.0, 0.1]]])
    torch.testing.assert_close(p, expected)
    assert len(cams) == 1 and not cams.perspective_correct


def test_perspective_known_points():
    K = torch.tensor([[[100.0, 0.0, 64.0], [0.0, 120.0, 32.0], [0.0, 0.0, 1.0]]])
    R = torch.diag(torch.tensor([1.0, -1.0, -1.0]))[None]
    t = torch.tensor([[0.0, 0.0, 2.0]])
    cams = PerspectiveCameras(K, R, t)
    X = torch.tensor([[[0.0, 0.0, 0.0], [0.2, 0.1, 0.0], [0.2, 0.1, 1.0]]])
    p = cams.project(X, (64, 128))
    # Xc = (x, -y, 2 - z)
    expected = torch.tensor(
        [[[64.0, 32.0, 2.0], [64.0 + 100 * 0.2 / 2, 32.0 - 120 * 0.1 / 2, 2.0], [64.0 + 100 * 0.2, 32.0 - 120 * 0.1, 1.0]]]
    )
    torch.testing.assert_close(p, expected)
    assert cams.perspective_correct
    torch.testing.assert_close(cams.centers(), torch.tensor([[0.0, 0.0, 2.0]]))


def test_look_at_front_camera():
    R, t = look_at_opencv(torch.tensor([0.0, 0.0, 1.5]))
    torch.testing.assert_close(R[0], torch.diag(torch.tensor([1.0, -1.0, -1.0])))
    torch.testing.assert_close(t[0], torch.tensor([0.0, 0.0, 1.5]))


@pytest.mark.parametrize("yaw_deg", [-40.0, 25.0, 90.0])
def test_look_at_orbit_matches_rotated_mesh(yaw_deg):
    """A camera orbiting by +yaw sees the same image as the mesh rotated by -yaw."""
    a = math.radians(yaw_deg)
    Ry = torch.tensor([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])
    X = torch.randn(1, 20, 3) * 0.1
    K = intrinsics_from_fov(30.0, 64)
    R0, t0 = look_at_opencv(torch.tensor([0.0, 0.0, 1.0]))
    R1, t1 = look_at_opencv(Ry @ torch.tensor([0.0, 0.0, 1.0]))
    p_orbit = PerspectiveCameras(K, R1, t1).project(X, 64)
    p_rot = PerspectiveCameras(K, R0, t0).project(X @ Ry, 64)  # rows: Ry^T x
    torch.testing.assert_close(p_orbit, p_rot, atol=1e-4, rtol=1e-4)
    R, t = look_at_opencv(Ry @ torch.tensor([0.0, 0.0, 1.0]))
    torch.testing.assert_close(R @ R.transpose(1, 2), torch.eye(3)[None], atol=1e-6, rtol=0)
    assert torch.det(R).item() == pytest.approx(1.0, abs=1e-6)


def test_rotation_moves_points_as_expected():
    """Yawing a mesh by +90 deg about y sends +x to -z: with the front camera a
    point on +x (right of the image) moves to the image centre and gets farther."""
    cams = WeakPerspectiveCameras(torch.tensor([4.0]), torch.zeros(1, 2))
    X = torch.tensor([[[0.1, 0.0, 0.0], [0.0, 0.1, 0.0]]])
    a = math.radians(90.0)
    Ry = torch.tensor([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])
    p0 = cams.project(X, 64)
    p1 = cams.project(X @ Ry.T, 64)
    assert p0[0, 0, 0] > 32 + 10  # right of centre
    torch.testing.assert_close(p1[0, 0], torch.tensor([32.0, 32.0, 0.1]), atol=1e-5, rtol=0)
    torch.testing.assert_close(p1[0, 1], p0[0, 1])  # on the axis: unchanged
    # y up in the world -> smaller row index on screen
    assert p0[0, 1, 1] < 32


def test_perspective_view_dirs_and_to():
    R, t = look_at_opencv(torch.tensor([[0.0, 0.0, 2.0], [2.0, 0.0, 0.0]]))
    cams = PerspectiveCameras(intrinsics_from_fov(40, 32, batch=2), R, t).to("cpu", torch.float64)
    assert len(cams) == 2 and cams.K.dtype == torch.float64
    d = cams.view_dirs(torch.zeros(2, 1, 3, dtype=torch.float64))
    torch.testing.assert_close(d[:, 0], torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]], dtype=torch.float64))


def test_projection_is_differentiable():
    X = torch.randn(2, 5, 3, dtype=torch.float64, requires_grad=True)
    wp = WeakPerspectiveCameras(torch.tensor([1.5, 2.0], dtype=torch.float64), torch.zeros(2, 2, dtype=torch.float64))
    assert torch.autograd.gradcheck(lambda x: wp.project(x, 32), (X,))
    R, t = look_at_opencv(torch.tensor([[0.0, 0.0, 5.0], [1.0, 1.0, 5.0]], dtype=torch.float64))
    pc = PerspectiveCameras(intrinsics_from_fov(30, 32, batch=2, dtype=torch.float64), R, t)
    assert torch.autograd.gradcheck(lambda x: pc.project(x, 32), (X,))


def test_weak_perspective_at_a_finite_distance_is_a_pinhole():
    """inv_distance k: the same projection as an OpenCV pinhole at 1/k on the +z axis (through
    -trans) with focal length scale * S / k; k = 0 is the orthographic camera; the view directions
    point at that pinhole."""
    g = torch.Generator().manual_seed(0)
    X = (torch.rand(2, 50, 3, generator=g, dtype=torch.float64) - 0.5) * 0.2
    scale = torch.tensor([7.0, 9.0], dtype=torch.float64)
    trans = torch.tensor([[0.01, -0.02], [0.0, 0.03]], dtype=torch.float64)
    k = torch.tensor([1.5, 2.5], dtype=torch.float64)
    H, W = 120, 160
    S = min(H, W) / 2
    got = WeakPerspectiveCameras(scale, trans, k).project(X, (H, W))
    f = scale * S / k
    K = torch.zeros(2, 3, 3, dtype=torch.float64)
    K[:, 0, 0], K[:, 1, 1], K[:, 0, 2], K[:, 1, 2], K[:, 2, 2] = f, f, W / 2, H / 2, 1.0
    R = torch.diag(torch.tensor([1.0, -1.0, -1.0], dtype=torch.float64)).expand(2, 3, 3)
    t = torch.stack([trans[:, 0], -trans[:, 1], 1.0 / k], 1)
    want = PerspectiveCameras(K, R, t).project(X, (H, W))
    torch.testing.assert_close(got[..., :2], want[..., :2])
    ortho = WeakPerspectiveCameras(scale, trans, torch.zeros(2, dtype=torch.float64)).project(X, (H, W))
    torch.testing.assert_close(ortho, WeakPerspectiveCameras(scale, trans).project(X, (H, W)))
    assert (ortho[..., :2] - got[..., :2]).abs().max() > 1.0  # the perspective is visible
    centre = torch.cat([-trans, (1.0 / k)[:, None]], 1)[:, None]
    d = WeakPerspectiveCameras(scale, trans, k).view_dirs(X)
    torch.testing.assert_close(d, (centre - X) / (centre - X).norm(dim=-1, keepdim=True))
    one = WeakPerspectiveCameras(scale, trans, torch.tensor([2.0], dtype=torch.float64))
    assert one.inv_distance.shape == (2,) and one.to(dtype=torch.float32).inv_distance.dtype == torch.float32
