"""Co-visibility helper shared by the flow and photometric terms."""
import torch

from mfnet.render.visibility import land_in_view, subsample


def _one_triangle(depth: float, x0: float = 2.0):
    screen = torch.tensor([[x0, 2.0, depth], [x0 + 4.0, 2.0, depth], [x0, 6.0, depth]])
    return screen, torch.tensor([[0, 1, 2]])


def test_point_lands_at_its_barycentric_position():
    screen, faces = _one_triangle(1.0)
    bary = torch.tensor([[1.0, 0.0, 0.0], [0.25, 0.25, 0.5]])
    q, ok = land_in_view(screen, faces, torch.zeros(2, dtype=torch.long), bary, size=8)
    assert torch.allclose(q[0], screen[0])
    assert torch.allclose(q[1], 0.25 * screen[0] + 0.25 * screen[1] + 0.5 * screen[2])
    assert ok.all()


def test_depth_test_separates_nearest_surface_from_occluded():
    zbuf = torch.full((8, 8), 1.0)  # the nearest surface everywhere is at depth 1
    bary = torch.tensor([[1 / 3, 1 / 3, 1 / 3]])
    idx = torch.zeros(1, dtype=torch.long)
    front, faces = _one_triangle(1.0)
    back, _ = _one_triangle(1.5)
    assert land_in_view(front, faces, idx, bary, 8, zbuf, depth_tol=1e-2)[1].item()
    assert not land_in_view(back, faces, idx, bary, 8, zbuf, depth_tol=1e-2)[1].item()
    assert land_in_view(back, faces, idx, bary, 8, None)[1].item()  # frame test only


def test_points_outside_the_frame_are_not_visible():
    screen, faces = _one_triangle(1.0, x0=-10.0)  # whole triangle left of the image
    _, ok = land_in_view(screen, faces, torch.zeros(1, dtype=torch.long), torch.tensor([[0.3, 0.3, 0.4]]), 8,
                         torch.ones(8, 8))
    assert not ok.any()


def test_subsample_draws_distinct_entries_of_the_index():
    index = torch.arange(100, 200)
    g = torch.Generator().manual_seed(0)
    out = subsample(index, 30, g)
    assert out.numel() == 30 and out.unique().numel() == 30
    assert bool(((out >= 100) & (out < 200)).all())
    assert torch.equal(subsample(index, 500), index)
