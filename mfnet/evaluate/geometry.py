"""Vectorised geometry kernels shared by the FaceScape and NoW evaluators (numpy + scipy).

* :class:`TriangleIndex` / :func:`closest_points` -- exact closest point on a
  triangle mesh for many query points (cKDTree candidates over triangle centroids, exact
  point-triangle distances, and a certified fallback so that the answer is the
  true closest point, not an approximation).
* :func:`point_triangle_closest`, :func:`pack_triangles`, :func:`pair_distances2`, :func:`segment_best`,
  :func:`face_normals` -- the point-triangle kernels, from :mod:`mfnet.evaluate.triangles` (re-exported).
* :func:`umeyama` -- least-squares similarity (or rigid) transform.

No Python loop runs over points, rays, vertices or faces.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from .triangles import (_bounding_balls, _split_triangles, face_normals, pack_triangles,  # noqa: F401 (re-exported)
                        pair_distances2, point_triangle_closest, segment_best)

__all__ = [
    "ClosestPoints",
    "TriangleIndex",
    "closest_points",
    "point_triangle_closest",
    "pack_triangles",
    "pair_distances2",
    "segment_best",
    "umeyama",
    "face_normals",
]


@dataclass
class ClosestPoints:
    """Result of :meth:`TriangleIndex.query` for N queries."""

    distance: np.ndarray   # (N,) unsigned distance to the surface
    point: np.ndarray      # (N, 3) closest surface point
    face: np.ndarray       # (N,) triangle holding it
    bary: np.ndarray       # (N, 3) its barycentric coordinates in that triangle


class TriangleIndex:
    """Exact closest-point queries against one triangle mesh (build once, query many times).

    Every triangle is summarised by its smallest enclosing ball (centre c,
    radius rho; c lies in the triangle's plane), so ``dist(q, T) >= |q - c| - rho``
    and, tighter, ``dist(q, T) >= dist(q, disc(c, rho, plane))``.  Large
    triangles are split (for the search only) into similar pieces so that
    every piece's radius is at most ``piece_radius`` (default: the median
    rho); one KD-tree holds the piece centres.

    1. The ``k_far`` nearest pieces are fetched; the parents of the ``k``
       nearest (plus an optional hint face per query) are tested exactly,
       giving an upper bound ``best``; the other parents only if their piece
       reaches under ``best``.  If the ``k_far``-th piece is farther than
       ``best + piece_radius``, nothing else can be closer.
    2. Otherwise every piece within ``best + piece_radius`` is fetched (ball
       query), its parent filtered by the disc bound and tested exactly.

    The result is the true closest point (no approximation).
    """

    max_pieces_per_face = 8  # search pieces per triangle on average, at most

    def __init__(self, vertices: np.ndarray, faces: np.ndarray, k: int = 4, k_far: int = 16,
                 piece_radius: float | None = None):
        self.vertices = np.asarray(vertices, dtype=np.float64)
        self.faces = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
        self.k, self.k_far = k, max(k, k_far)
        self.packed, balls = pack_triangles(self.vertices, self.faces)
        normals = face_normals(self.vertices, self.faces)
        self.discs = np.concatenate([balls, normals], axis=1)  # centre, rho, unit normal
        self.tree = None
        if self.faces.shape[0] == 0:
            return
        rho = balls[:, 3]
        r_t = float(piece_radius) if piece_radius else max(float(np.median(rho)), 1e-12)
        parts = np.maximum(np.ceil(rho / r_t - 1e-9), 1).astype(np.int64)
        budget = max(self.max_pieces_per_face * rho.shape[0], 1 << 16)
        while int((parts ** 2).sum()) > budget:  # a few huge triangles (a broken prediction): coarser
            r_t *= 2.0                            # pieces keep memory bounded; results stay exact
            parts = np.maximum(np.ceil(rho / r_t - 1e-9), 1).astype(np.int64)
        if (parts > 1).any():
            sub, self.parent = _split_triangles(self.vertices[self.faces], parts)
            centre, prho = _bounding_balls(sub)
        else:
            self.parent, centre, prho = np.arange(rho.shape[0]), balls[:, :3], rho
        self.piece_rho = prho
        self.rho_max = float(prho.max())
        self.tree = cKDTree(centre)

    def _update(self, q, qi, fi, best_d2, best_f, best_vw):
        """Exact distances of (query qi ascending, face fi) pairs; keep each query's best."""
        v, w, d2 = pair_distances2(q[qi], self.packed[fi])
        hit = segment_best(qi, d2)
        who = qi[hit]
        better = d2[hit] < best_d2[who]
        who, hit = who[better], hit[better]
        best_d2[who], best_f[who] = d2[hit], fi[hit]
        best_vw[who] = np.stack([v[hit], w[hit]], 1)

    def query(self, points: np.ndarray, hint: np.ndarray | None = None, chunk: int = 1 << 16,
              pair_budget: int = 1 << 21) -> ClosestPoints:
        """Closest surface points for ``points (N, 3)``; NaN distances if the mesh has no faces.

        ``hint (N,)``: optional face index per query believed to be close (for
        example the previous answer in an iterative alignment); it only
        speeds the search up.
        """
        q = np.ascontiguousarray(points, dtype=np.float64).reshape(-1, 3)
        n = q.shape[0]
        if self.tree is None or n == 0:
            return ClosestPoints(np.full(n, np.nan), np.full((n, 3), np.nan), np.full(n, -1), np.zeros((n, 3)))
        best_d2, best_f, best_vw, bound = self._nearest_pieces(q, hint, chunk)
        self._refine_in_balls(q, best_d2, best_f, best_vw, bound, pair_budget)
        bary = np.concatenate([1 - best_vw.sum(1, keepdims=True), best_vw], axis=1)
        t = self.packed[best_f]
        point = t[:, 0:3] + best_vw[:, :1] * t[:, 3:6] + best_vw[:, 1:] * t[:, 6:9]
        return ClosestPoints(np.sqrt(best_d2), point, best_f, bary)

    def candidates(self, points: np.ndarray, slack: float, chunk: int = 1 << 15):
        """Pairs ``(qi ascending, fi)`` listing, for every point, each triangle whose disc lower
        bound is within ``best + slack`` of it (``best`` its exact distance), and the exact result.

        Any point moved by at most ``slack / 2`` still has its closest triangle
        among its pairs (see :meth:`query_pairs`).
        """
        q = np.ascontiguousarray(points, dtype=np.float64).reshape(-1, 3)
        cp = self.query(q)
        F = self.faces.shape[0]
        qi_l, fi_l = [], []
        for s in range(0, q.shape[0], chunk):  # chunks of queries bound memory only
            t = np.arange(s, min(s + chunk, q.shape[0]))
            reach = cp.distance[t] + slack
            lists = self.tree.query_ball_point(q[t], reach * (1 + 1e-9) + self.rho_max + 1e-12, return_sorted=False)
            counts = np.fromiter(map(len, lists), np.int64, t.size)
            key = np.sort(np.repeat(t, counts) * F + self.parent[np.concatenate(list(lists)).astype(np.int64)])
            key = key[np.r_[True, key[1:] != key[:-1]]]
            qi, fi = key // F, key % F
            dc = self.discs[fi]
            diff = q[qi] - dc[:, :3]
            h = np.einsum("ij,ij->i", diff, dc[:, 4:7])
            lat = np.sqrt(np.maximum(np.einsum("ij,ij->i", diff, diff) - h * h, 0.0))
            lb2 = h * h + np.maximum(lat - dc[:, 3], 0.0) ** 2
            keep = lb2 <= (cp.distance[qi] + slack) ** 2 * (1 + 1e-9) + 1e-18
            qi_l.append(qi[keep])
            fi_l.append(fi[keep])
        qi = np.concatenate(qi_l)
        fi = np.concatenate(fi_l)
        # the exact best triangle is always a candidate (its bound is <= best)
        return qi, fi, cp

    def _nearest_pieces(self, q: np.ndarray, hint, chunk: int):
        """First answers: the faces of each query's ``k`` nearest pieces (+ the hint), then farther pieces
        whose ball still reaches under the distance found. Returns (best squared distance (n,), face (n,),
        barycentric (v, w) (n, 2), lower bound (n,) on the distance to any piece beyond the ``k_far`` nearest)."""
        n = q.shape[0]
        best_d2, best_f = np.full(n, np.inf), np.zeros(n, np.int64)
        best_vw = np.zeros((n, 2))
        bound = np.full(n, np.inf)
        npieces = self.parent.shape[0]
        kk = min(self.k_far, npieces)
        k0 = min(self.k, kk)
        for s in range(0, n, chunk):  # chunks of queries bound memory only
            qs = q[s:s + chunk]
            m = qs.shape[0]
            dk, ik = self.tree.query(qs, kk)
            dk, ik = dk.reshape(m, kk), ik.reshape(m, kk)
            fi = self.parent[ik[:, :k0]]
            if hint is not None:
                fi = np.concatenate([np.asarray(hint, np.int64)[s:s + chunk, None], fi], axis=1)
            K = fi.shape[1]
            v, w, d2 = pair_distances2(np.repeat(qs, K, axis=0), self.packed[fi.ravel()])
            pick = np.arange(m) * K + d2.reshape(m, K).argmin(1)
            best_d2[s:s + m], best_f[s:s + m] = d2[pick], fi.ravel()[pick]
            best_vw[s:s + m] = np.stack([v[pick], w[pick]], 1)
            if kk > k0:  # farther pieces whose own ball still reaches under the best distance
                reach = dk[:, k0:] - self.piece_rho[ik[:, k0:]]
                qi, j = np.nonzero(reach <= np.sqrt(best_d2[s:s + m, None]) * (1 + 1e-9) + 1e-12)
                if qi.size:
                    self._update(qs, qi, self.parent[ik[qi, k0 + j]], best_d2[s:s + m], best_f[s:s + m],
                                 best_vw[s:s + m])
            if npieces > kk:
                bound[s:s + m] = dk[:, -1] - self.rho_max
        return best_d2, best_f, best_vw, bound

    def _refine_in_balls(self, q, best_d2, best_f, best_vw, bound, pair_budget: int) -> None:
        """Exact for the queries the first answers cannot vouch for: every piece within the best distance
        (+ the largest piece radius), pruned by each piece's disc bound; updates the best arrays in place."""
        best_d = np.sqrt(best_d2)
        with np.errstate(invalid="ignore"):
            thr = np.where(np.isfinite(bound), bound - 1e-9 * (1.0 + np.abs(bound)), np.inf)
        todo = np.flatnonzero(best_d > thr)
        radii = best_d * (1 + 1e-9) + self.rho_max + 1e-12
        sizes = (self.tree.query_ball_point(q[todo], radii[todo], return_length=True) if todo.size
                 else np.zeros(0, np.int64))
        group = np.cumsum(sizes) // pair_budget  # bounded memory even when balls hold many pieces
        for gi in np.unique(group):  # a few groups of queries
            t = todo[group == gi]
            lists = self.tree.query_ball_point(q[t], radii[t], return_sorted=False)
            counts = np.fromiter(map(len, lists), np.int64, t.size)
            if not counts.any():
                continue
            qi = np.repeat(t, counts)  # ascending
            fi = self.parent[np.concatenate(list(lists[counts > 0])).astype(np.int64)]
            # disc bound: plane offset h and in-plane distance beyond the disc
            dc = self.discs[fi]
            diff = q[qi] - dc[:, :3]
            h = np.einsum("ij,ij->i", diff, dc[:, 4:7])
            lat = np.sqrt(np.maximum(np.einsum("ij,ij->i", diff, diff) - h * h, 0.0))
            lb2 = h * h + np.maximum(lat - dc[:, 3], 0.0) ** 2
            keep = lb2 <= best_d2[qi] * (1 + 1e-9) + 1e-18
            if keep.any():
                self._update(q, qi[keep], fi[keep], best_d2, best_f, best_vw)

    def query_pairs(self, points: np.ndarray, qi: np.ndarray, fi: np.ndarray) -> ClosestPoints:
        """Closest points restricted to the candidate pairs ``(qi ascending, fi)``; every point needs one."""
        q = np.ascontiguousarray(points, dtype=np.float64).reshape(-1, 3)
        v, w, d2 = pair_distances2(q[qi], self.packed[fi])
        hit = segment_best(qi, d2)
        if hit.size != q.shape[0]:
            raise ValueError("query_pairs: every point needs at least one candidate triangle")
        f, vw = fi[hit], np.stack([v[hit], w[hit]], 1)
        t = self.packed[f]
        point = t[:, 0:3] + vw[:, :1] * t[:, 3:6] + vw[:, 1:] * t[:, 6:9]
        bary = np.concatenate([1 - vw.sum(1, keepdims=True), vw], axis=1)
        return ClosestPoints(np.sqrt(d2[hit]), point, f, bary)


def closest_points(query: np.ndarray, vertices: np.ndarray, faces: np.ndarray, k: int = 4) -> ClosestPoints:
    """Exact closest points on the mesh (vertices, faces) for ``query (N, 3)``; see :class:`TriangleIndex`."""
    return TriangleIndex(vertices, faces, k).query(query)


def umeyama(src: np.ndarray, dst: np.ndarray, with_scale: bool = True, weights: np.ndarray | None = None):
    """Least-squares ``s, R, t`` minimising sum w_i |s R src_i + t - dst_i|^2 (Umeyama 1991).

    ``R`` is a proper rotation (det +1).  With ``with_scale=False``, ``s = 1``.
    Returns ``(s, R (3, 3), t (3,))``; apply as ``s * x @ R.T + t``.
    """
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    w = np.ones(src.shape[0]) if weights is None else np.asarray(weights, np.float64)
    w = w / w.sum()
    mu_s, mu_d = w @ src, w @ dst
    xs, xd = src - mu_s, dst - mu_d
    cov = (xd * w[:, None]).T @ xs
    U, S, Vt = np.linalg.svd(cov)
    D = np.ones(3)
    if np.linalg.det(U) * np.linalg.det(Vt) < 0:
        D[2] = -1.0
    R = (U * D) @ Vt
    var_s = (w * (xs * xs).sum(1)).sum()
    s = float((S * D).sum() / var_s) if with_scale and var_s > 0 else 1.0
    t = mu_d - s * R @ mu_s
    return s, R, t
