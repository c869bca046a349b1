"""Geometry kernels of mfnet.evaluate: exact closest points, ray casting, grid distances, Umeyama."""
from __future__ import annotations

import numpy as np
import pytest
import trimesh
from scipy.spatial.transform import Rotation

from mfnet.evaluate.cylinder import cylinder_raycast, cylinder_rays, grid_distances, radius_map_mesh
from mfnet.evaluate.geometry import TriangleIndex, closest_points, point_triangle_closest, umeyama


def ellipsoid(subdivisions: int = 3, axes=(75.0, 100.0, 95.0)):
    m = trimesh.creation.icosphere(subdivisions=subdivisions)
    return np.asarray(m.vertices) * np.asarray(axes), np.asarray(m.faces)


def brute_triangle_distance(p, a, b, c, n: int = 120):
    """Distance to densely sampled triangles (upper bound of the exact one, close to it)."""
    u = np.linspace(0, 1, n + 1)
    U, V = np.meshgrid(u, u)
    keep = U + V <= 1
    U, V = U[keep], V[keep]
    pts = a[:, None] + U[None, :, None] * (b - a)[:, None] + V[None, :, None] * (c - a)[:, None]
    return np.linalg.norm(pts - p[:, None], axis=2).min(1)


def test_point_triangle_matches_trimesh_and_handles_degenerate():
    rng = np.random.default_rng(0)
    a, b, c = (rng.normal(size=(3000, 3)) for _ in range(3))
    p = rng.normal(size=(3000, 3)) * 2
    bc = point_triangle_closest(p, a, b, c)
    x = bc[:, :1] * a + bc[:, 1:2] * b + bc[:, 2:] * c
    ref = trimesh.triangles.closest_point(np.stack([a, b, c], 1), p)
    assert np.abs(x - ref).max() < 1e-9
    assert (bc >= -1e-12).all() and np.allclose(bc.sum(1), 1)
    # degenerate: repeated vertex, collinear with the middle corner inside or outside
    n = 300
    a, b = rng.normal(size=(n, 3)), rng.normal(size=(n, 3))
    cases = [a.copy(), b.copy(), a + 0.5 * (b - a), a + 2.0 * (b - a)]
    for c in cases:
        p = rng.normal(size=(n, 3)) * 2
        bc = point_triangle_closest(p, a, b, c)
        assert np.isfinite(bc).all()
        d = np.linalg.norm(bc[:, :1] * a + bc[:, 1:2] * b + bc[:, 2:] * c - p, axis=1)
        assert (d <= brute_triangle_distance(p, a, b, c) + 1e-9).all()


@pytest.mark.parametrize("spread", [2.0, 40.0])
def test_triangle_index_is_exact(spread):
    v, f = ellipsoid(3)
    # add a few huge triangles so the pieces/certification logic is exercised
    v = np.concatenate([v, [[300, 0, 0], [300, 250, 0], [300, 0, 250]]])
    f = np.concatenate([f, [[len(v) - 3, len(v) - 2, len(v) - 1]]])
    rng = np.random.default_rng(1)
    surf, _ = trimesh.sample.sample_surface(trimesh.Trimesh(v, f, process=False), 1500, seed=2)
    q = surf + rng.normal(0, spread, surf.shape)
    cp = closest_points(q, v, f)
    ref_p, ref_d, _ = trimesh.proximity.closest_point(trimesh.Trimesh(v, f, process=False), q)
    assert np.abs(cp.distance - ref_d).max() < 1e-9
    assert np.abs(np.linalg.norm(cp.point - q, axis=1) - cp.distance).max() < 1e-9
    # the point is on the reported face, with valid barycentrics
    rebuilt = np.einsum("nk,nkd->nd", cp.bary, v[f[cp.face]])
    assert np.abs(rebuilt - cp.point).max() < 1e-9


def test_triangle_index_hint_and_candidate_cache():
    v, f = ellipsoid(3)
    rng = np.random.default_rng(3)
    q = v[rng.integers(0, len(v), 800)] + rng.normal(0, 1.5, (800, 3))
    index = TriangleIndex(v, f)
    base = index.query(q)
    hinted = index.query(q, hint=rng.integers(0, len(f), len(q)))
    assert np.array_equal(base.distance, hinted.distance)
    qi, fi, cp = index.candidates(q, slack=1.0)
    assert np.array_equal(cp.distance, base.distance)
    moved = q + rng.uniform(-1, 1, q.shape) * (0.5 / np.sqrt(3))  # every point moves <= 0.5
    assert np.abs(index.query_pairs(moved, qi, fi).distance - index.query(moved).distance).max() < 1e-12


def test_empty_mesh_gives_nan():
    cp = closest_points(np.zeros((3, 3)), np.zeros((0, 3)), np.zeros((0, 3), np.int64))
    assert np.isnan(cp.distance).all()


def test_cylinder_raycast_matches_trimesh_last_hit():
    v, f = ellipsoid(3)
    v = v + np.array([5.0, 0.0, -8.0])  # off-centre: some rays start outside the surface
    radius, face = cylinder_raycast(v, f)
    ys, phis = cylinder_rays()
    Y, P = np.meshgrid(ys, phis, indexing="ij")
    sel = np.arange(Y.size)[::5]
    org = np.stack([np.zeros(sel.size), Y.ravel()[sel], np.zeros(sel.size)], 1)
    dirs = np.stack([-np.sin(P.ravel()[sel]), np.zeros(sel.size), -np.cos(P.ravel()[sel])], 1)
    from trimesh.ray.ray_triangle import RayMeshIntersector

    loc, ri, _ = RayMeshIntersector(trimesh.Trimesh(v, f, process=False)).intersects_location(org, dirs, multiple_hits=True)
    ref = np.zeros(sel.size)
    np.maximum.at(ref, ri, np.linalg.norm(loc - org[ri], axis=1))
    assert np.abs(ref - radius.ravel()[sel]).max() < 1e-9
    assert np.array_equal(face.ravel()[sel] >= 0, ref > 0)
    hit = np.flatnonzero(ref > 0)[:50]
    pt = org[hit] + dirs[hit] * ref[hit, None]
    assert np.allclose(np.hypot(pt[:, 0], pt[:, 2]), ref[hit])  # radius = sqrt(x^2 + z^2)
    assert np.array_equal(radius[:, -1], radius[:, 0])  # phi = 2 pi repeats phi = 0


def test_radius_map_mesh_jump_rule():
    r = np.full((6, 6), 50.0)
    r[2, 3] = 70.0  # a 20 mm spike: cells using it as a forward/diagonal neighbour or corner go
    r[5, 0] = 0.0
    v, faces = radius_map_mesh(r)
    assert v.shape == (36, 3)
    cells = {tuple(sorted(t)) for t in faces}
    kept = {(i, j) for i in range(5) for j in range(5)
            if any(set(t) <= {i * 6 + j, i * 6 + j + 1, (i + 1) * 6 + j, (i + 1) * 6 + j + 1} for t in cells)}
    assert (2, 3) not in kept and (1, 2) not in kept and (2, 2) not in kept and (1, 3) not in kept
    assert (4, 0) not in kept  # corner radius 0
    assert (0, 0) in kept and len(faces) == 2 * len(kept)


def test_grid_distances_match_generic_search():
    v, f = ellipsoid(4)
    n = trimesh.Trimesh(v, f, process=False).vertex_normals
    bump = 3.0 * np.sin(v[:, 0] / 20.0) * np.cos(v[:, 1] / 25.0)
    r_a, _ = cylinder_raycast(v, f)
    r_b, _ = cylinder_raycast(v + n * bump[:, None] + [0, 0, 2.0], f)
    both = (r_a > 0) & (r_b > 0)
    a, b = np.where(both, r_a, 0), np.where(both, r_b, 0)
    d = grid_distances(a, b)
    va, fa = radius_map_mesh(a)
    vb, fb = radius_map_mesh(b)
    used = np.zeros(len(va), bool)
    used[fa] = True
    ref = TriangleIndex(vb, fb).query(va[used]).distance
    assert d.shape == ref.shape and np.abs(d - ref).max() < 1e-9
    assert 0.5 < d.mean() < 4.0


def test_umeyama_recovers_similarity():
    rng = np.random.default_rng(4)
    R = Rotation.random(random_state=5).as_matrix()
    src = rng.normal(size=(7, 3))
    dst = 1.7 * src @ R.T + [1.0, -2.0, 3.0]
    s, R2, t = umeyama(src, dst)
    assert s == pytest.approx(1.7) and np.allclose(R2, R) and np.allclose(t, [1, -2, 3])
    s, R3, _ = umeyama(src, src @ R.T, with_scale=False)
    assert s == 1.0 and np.allclose(R3, R) and np.linalg.det(R3) == pytest.approx(1.0)
