"""Point-triangle kernels of :mod:`mfnet.evaluate.geometry`, vectorised over (point, triangle) pairs.

* :func:`point_triangle_closest` / :func:`pair_distances2` -- exact closest point on one triangle per query
  (Ericson's region test); :func:`pack_triangles` prepares the per-triangle rows once.
* :func:`segment_best` -- the nearest of each query's candidate triangles.
* :func:`face_normals` -- unit face normals.
"""
from __future__ import annotations

import numpy as np


def face_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(F, 3) unit normals (right-hand rule; zero for degenerate faces)."""
    tri = vertices[faces]
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    norm = np.linalg.norm(n, axis=1, keepdims=True)
    return np.divide(n, norm, out=np.zeros_like(n), where=norm > 0)


def _div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.divide(a, b, out=np.zeros_like(a), where=b != 0)


def _closest_vw(ap, ab, ac, s_aa, s_ac, s_cc):
    """Barycentric (v, w) of the closest triangle point and the squared distance.

    Inputs per pair: ``ap = p - a``, edge vectors ``ab``, ``ac`` (N, 3) and the
    per-triangle scalars ab.ab, ab.ac, ac.ac.  Ericson's region test
    (*Real-Time Collision Detection* 5.1.5) needs only the two dot products
    ab.ap and ac.ap: the other four follow from the scalars.  Regions are
    applied from the interior up to vertex a, so the earlier (Ericson) test
    wins; zero-length edges never claim a point.
    """
    d1 = np.einsum("ij,ij->i", ab, ap)
    d2 = np.einsum("ij,ij->i", ac, ap)
    d3, d4 = d1 - s_aa, d2 - s_ac
    d5, d6 = d1 - s_ac, d2 - s_cc
    vc = d1 * d4 - d3 * d2
    vb = d5 * d2 - d1 * d6
    va = d3 * d6 - d5 * d4
    with np.errstate(divide="ignore", invalid="ignore"):
        den = va + vb + vc
        v, w = vb / den, vc / den                                           # interior
        e43, e56 = d4 - d3, d5 - d6
        m = (va <= 0) & (e43 >= 0) & (e56 >= 0) & (e43 + e56 > 0)           # edge bc
        wb = e43 / (e43 + e56)
        v, w = np.where(m, 1 - wb, v), np.where(m, wb, w)
        m = (vb <= 0) & (d2 >= 0) & (d6 <= 0) & (s_cc > 0)                  # edge ac
        v, w = np.where(m, 0.0, v), np.where(m, d2 / (d2 - d6), w)
        m = (d6 >= 0) & (d5 <= d6)                                          # vertex c
        v, w = np.where(m, 0.0, v), np.where(m, 1.0, w)
        m = (vc <= 0) & (d1 >= 0) & (d3 <= 0) & (s_aa > 0)                  # edge ab
        v, w = np.where(m, d1 / (d1 - d3), v), np.where(m, 0.0, w)
        m = (d3 >= 0) & (d4 <= d3)                                          # vertex b
        v, w = np.where(m, 1.0, v), np.where(m, 0.0, w)
        m = ((d1 <= 0) & (d2 <= 0)) | ~np.isfinite(v) | ~np.isfinite(w)     # vertex a
        v, w = np.where(m, 0.0, v), np.where(m, 0.0, w)
        deg = np.flatnonzero(s_aa * s_cc - s_ac * s_ac <= 1e-12 * s_aa * s_cc)
        if deg.size:  # (near-)collinear triangles: the best of the three edges
            v[deg], w[deg] = _degenerate_vw(d1[deg], d2[deg], s_aa[deg], s_ac[deg], s_cc[deg])
    dist2 = np.einsum("ij,ij->i", ap, ap) - 2 * (v * d1 + w * d2) + v * v * s_aa + 2 * v * w * s_ac + w * w * s_cc
    return v, w, np.maximum(dist2, 0.0)


def _degenerate_vw(d1, d2, s_aa, s_ac, s_cc):
    """(v, w) of the closest point on the three edge segments (for degenerate triangles)."""
    s_bc = s_aa - 2 * s_ac + s_cc
    with np.errstate(divide="ignore", invalid="ignore"):
        t_ab = np.clip(np.where(s_aa > 0, d1 / s_aa, 0.0), 0, 1)
        t_ac = np.clip(np.where(s_cc > 0, d2 / s_cc, 0.0), 0, 1)
        # on bc: point = a + ab + t (ac - ab); ap.(ac - ab) = d2 - d1, ab.(ac - ab) = s_ac - s_aa
        t_bc = np.clip(np.where(s_bc > 0, (d2 - d1 - s_ac + s_aa) / s_bc, 0.0), 0, 1)
    cand_v = np.stack([t_ab, np.zeros_like(t_ac), 1 - t_bc], 1)
    cand_w = np.stack([np.zeros_like(t_ab), t_ac, t_bc], 1)
    # |ap - v ab - w ac|^2 - |ap|^2, per candidate
    cost = -2 * (cand_v * d1[:, None] + cand_w * d2[:, None]) + cand_v ** 2 * s_aa[:, None] \
        + 2 * cand_v * cand_w * s_ac[:, None] + cand_w ** 2 * s_cc[:, None]
    k = cost.argmin(1)
    r = np.arange(k.size)
    return cand_v[r, k], cand_w[r, k]


def point_triangle_closest(p: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Barycentrics (N, 3) of the closest point on triangle (a, b, c) to p, all (N, 3).

    Exact (vertex, edge or face region); degenerate triangles fall back to an
    edge or a vertex.
    """
    ab, ac = b - a, c - a
    v, w, _ = _closest_vw(p - a, ab, ac, (ab * ab).sum(1), (ab * ac).sum(1), (ac * ac).sum(1))
    return np.stack([1 - v - w, v, w], axis=1)


def _bounding_balls(tri: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Smallest enclosing ball (centre (F, 3), radius (F,)) of each triangle (F, 3, 3).

    Right/obtuse (or degenerate) triangles: the longest edge's midpoint; acute
    ones: the circumcentre.
    """
    a, b, c = tri[:, 0], tri[:, 1], tri[:, 2]
    ab, ac, bc = b - a, c - a, c - b
    ab2, ac2, bc2 = (ab * ab).sum(1), (ac * ac).sum(1), (bc * bc).sum(1)
    obtuse = ((ab * ac).sum(1) <= 0) | ((-ab * bc).sum(1) <= 0) | ((ac * bc).sum(1) <= 0)
    longest = np.argmax(np.stack([bc2, ac2, ab2], 1), axis=1)  # the edge opposite a, b, c
    mid = np.choose(longest[:, None], [(b + c) / 2, (a + c) / 2, (a + b) / 2])
    n = np.cross(ab, ac)
    n2 = (n * n).sum(1)
    circ = a + _div(np.cross(ab2[:, None] * ac - ac2[:, None] * ab, n), 2 * n2[:, None])
    centre = np.where((obtuse | (n2 <= 0))[:, None], mid, circ)
    radius = np.linalg.norm(tri - centre[:, None], axis=2).max(1)
    return centre, radius


def pack_triangles(vertices: np.ndarray, faces: np.ndarray, balls: bool = True):
    """Per-triangle rows for :func:`pair_distances2` (and bounding balls).

    Returns ``packed (F, 12)`` = (a, b - a, c - a, |ab|^2, ab.ac, |ac|^2) and,
    if ``balls``, ``(F, 4)`` = (centre, radius) of each smallest enclosing ball.
    """
    tri = np.asarray(vertices, np.float64)[np.asarray(faces, np.int64).reshape(-1, 3)]
    ab, ac = tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]
    packed = np.concatenate([tri[:, 0], ab, ac, np.einsum("ij,ij->i", ab, ab)[:, None],
                             np.einsum("ij,ij->i", ab, ac)[:, None], np.einsum("ij,ij->i", ac, ac)[:, None]], axis=1)
    if not balls:
        return packed
    centre, rho = _bounding_balls(tri)
    return packed, np.concatenate([centre, rho[:, None]], axis=1)


def pair_distances2(q: np.ndarray, rows: np.ndarray):
    """(v, w, squared distance) of points q (N, 3) to the packed triangles ``rows (N, 12)``."""
    return _closest_vw(q - rows[:, 0:3], rows[:, 3:6], rows[:, 6:9], rows[:, 9], rows[:, 10], rows[:, 11])


def segment_best(qi: np.ndarray, d2: np.ndarray) -> np.ndarray:
    """Positions of the smallest ``d2`` of each run of equal, ascending ``qi`` (first one on ties)."""
    start = np.flatnonzero(np.r_[True, qi[1:] != qi[:-1]])
    seg_min = np.minimum.reduceat(d2, start)
    hit = np.flatnonzero(d2 == np.repeat(seg_min, np.diff(np.r_[start, qi.size])))
    return hit[np.r_[True, qi[hit][1:] != qi[hit][:-1]]]


def _split_triangles(tri: np.ndarray, parts: np.ndarray):
    """Split triangle f into parts[f]^2 similar sub-triangles; returns (sub (P, 3, 3), parent (P,))."""
    subs, parents = [], []
    for n in np.unique(parts):  # a few distinct split counts, not a loop over faces
        faces = np.flatnonzero(parts == n)
        i, j = np.meshgrid(np.arange(n + 1), np.arange(n + 1), indexing="ij")
        up = (i + j <= n - 1)
        down = (i + j <= n - 2)
        corners = np.concatenate([
            np.stack([np.stack([i, j], -1)[up], np.stack([i + 1, j], -1)[up], np.stack([i, j + 1], -1)[up]], 1),
            np.stack([np.stack([i + 1, j], -1)[down], np.stack([i + 1, j + 1], -1)[down],
                      np.stack([i, j + 1], -1)[down]], 1),
        ]) / float(n)                                                     # (n^2, 3, 2) barycentric (v, w)
        t = tri[faces]
        a, ab, ac = t[:, 0], t[:, 1] - t[:, 0], t[:, 2] - t[:, 0]
        sub = (a[:, None, None] + corners[None, :, :, :1] * ab[:, None, None] + corners[None, :, :, 1:] * ac[:, None, None])
        subs.append(sub.reshape(-1, 3, 3))
        parents.append(np.repeat(faces, corners.shape[0]))
    return np.concatenate(subs), np.concatenate(parents)
