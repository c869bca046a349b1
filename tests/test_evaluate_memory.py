"""A broken prediction (a few huge triangles among small ones) must not blow up the closest-point
index: search pieces stay bounded, answers stay exact."""
from __future__ import annotations

import numpy as np

from mfnet.evaluate.geometry import TriangleIndex, point_triangle_closest


def test_huge_triangles_keep_the_index_small_and_exact():
    rng = np.random.default_rng(0)
    n = 2000
    base = rng.random((n, 3)) * 0.01
    v = np.concatenate([base, base + rng.normal(size=(n, 3)) * 0.001, base + rng.normal(size=(n, 3)) * 0.001])
    f = np.stack([np.arange(n), np.arange(n) + n, np.arange(n) + 2 * n], 1)
    v[f[:20, 1]] += rng.normal(size=(20, 3)) * 5.0  # 20 triangles ~5000x larger than the rest
    index = TriangleIndex(v, f)
    assert len(index.parent) <= TriangleIndex.max_pieces_per_face * n + (1 << 16)
    q = rng.random((300, 3)) * 0.02
    got = index.query(q)
    tri = v[f]
    def brute_distance(p):  # closest point on every triangle (barycentrics -> points), keep the nearest
        bary = point_triangle_closest(np.repeat(p[None], n, 0), tri[:, 0], tri[:, 1], tri[:, 2])
        return np.linalg.norm((tri * bary[..., None]).sum(1) - p, axis=1).min()

    brute = np.array([brute_distance(p) for p in q])
    np.testing.assert_allclose(got.distance, brute, atol=1e-12)


def test_chunked_ray_casting_and_ball_queries_give_the_same_answers():
    from mfnet.evaluate.cylinder import cylinder_raycast

    rng = np.random.default_rng(1)
    # a noisy closed-ish blob around the cylinder axis (mm)
    p = rng.normal(size=(400, 3))
    p /= np.linalg.norm(p, axis=1, keepdims=True)
    from scipy.spatial import ConvexHull

    f = ConvexHull(p).simplices
    v = p * np.array([80.0, 110.0, 90.0]) + rng.normal(size=p.shape) * 8.0
    r_big, f_big = cylinder_raycast(v, f, 64, 64)
    r_small, f_small = cylinder_raycast(v, f, 64, 64, max_pairs=500)
    np.testing.assert_array_equal(r_big, r_small)
    np.testing.assert_array_equal(f_big, f_small)
    index = TriangleIndex(v, f)
    q = rng.normal(size=(500, 3)) * 60
    a, b = index.query(q), index.query(q, pair_budget=50)
    np.testing.assert_array_equal(a.distance, b.distance)
