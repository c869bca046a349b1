"""Co-visibility helper shared by the flow and photometric terms."""
import torch

from mfnet.render.visibility import land_in_view, pixel_priority, subsample


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


def test_subsample_keeps_the_lowest_priorities_in_index_order():
    index = torch.arange(100, 200)
    priority = torch.rand(100, generator=torch.Generator().manual_seed(0))
    out = subsample(index, 30, priority)
    assert out.numel() == 30 and out.unique().numel() == 30
    assert torch.equal(out, torch.sort(out).values)  # the index's order
    assert set(out.tolist()) == set((index[priority.argsort()[:30]]).tolist())
    assert torch.equal(subsample(index, 500, priority), index)


def test_pixel_priority_spreads_any_fraction_evenly_and_repeats_with_its_seed():
    p = pixel_priority(64, torch.Generator().manual_seed(3))
    assert p.shape == (64, 64) and float(p.min()) >= 0 and float(p.max()) < 1
    assert torch.equal(p, pixel_priority(64, torch.Generator().manual_seed(3)))
    assert not torch.equal(p, pixel_priority(64, torch.Generator().manual_seed(4)))
    for t in (0.05, 0.1, 0.3):  # the pixels kept below a threshold: the same count in every 16 x 16 tile, +-1
        per_tile = (p < t).reshape(4, 16, 4, 16).sum((1, 3))
        assert int(per_tile.max() - per_tile.min()) <= 1
        assert abs(float(per_tile.float().mean()) - t * 256) <= 1


def test_one_more_candidate_changes_the_kept_points_at_most_by_one():
    """The selection depends on each pixel's own priority: a candidate set grown by one pixel keeps the
    same points but at most one (a random permutation of the index would redraw them all)."""
    prio = pixel_priority(32, torch.Generator().manual_seed(0)).reshape(-1)
    cand = torch.arange(0, 1000, 2)  # every other pixel
    grown = torch.sort(torch.cat([cand, torch.tensor([501])])).values
    a, b = subsample(cand, 100, prio[cand]), subsample(grown, 100, prio[grown])
    assert len(set(a.tolist()) ^ set(b.tolist())) <= 2
