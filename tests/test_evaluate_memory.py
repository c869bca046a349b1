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
