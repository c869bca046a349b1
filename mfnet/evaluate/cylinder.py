"""FaceScape cylindrical sampling: ray casting, radius-map meshes and exact grid-mesh distances.

* :func:`cylinder_raycast` -- 256x256 horizontal rays from the y axis;
  candidate (triangle, ray) pairs come from each triangle's (height, angle)
  bounding box, Moeller-Trumbore decides, and the farthest hit per ray wins.
* :func:`radius_map_mesh` -- a radius map back to a grid mesh (15 mm jump rule).
* :func:`grid_distances` -- exact distances from the vertices of one radius
  map to the grid mesh of another, using the grid itself as the search
  structure (see its docstring for the bound that makes it exact).

No Python loop runs over rays, vertices or faces.
"""
from __future__ import annotations

import numpy as np

from scipy.spatial import cKDTree

from .geometry import TriangleIndex
from .triangles import _div, pack_triangles, pair_distances2, segment_best

__all__ = ["JUMP_MM", "cylinder_rays", "cylinder_raycast", "radius_map_mesh", "grid_distances"]

JUMP_MM = 15.0


def cylinder_rays(n_rows: int = 256, n_cols: int = 256, y_top: float = 150.0, y_bottom: float = -150.0):
    """Ray heights ``y (H,)`` and angles ``phi (W,)`` of the FaceScape cylindrical sampling.

    Ray (i, j) starts at (0, y_i, 0) with direction (-sin phi_j, 0, -cos phi_j),
    y = linspace(y_top, y_bottom, H), phi_j = j * 2 pi / (W - 1) (the last
    column repeats the first direction).
    """
    return np.linspace(y_top, y_bottom, n_rows), np.arange(n_cols) * (2 * np.pi / (n_cols - 1))


def _expand(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Owner index and 0-based rank for ``counts`` consecutive items each."""
    owner = np.repeat(np.arange(counts.shape[0]), counts)
    start = np.cumsum(counts) - counts
    return owner, np.arange(owner.shape[0]) - start[owner]


def _cast(v, f, tris, counts, r0, c0, nc, ys, phis, W, period):
    """Moeller-Trumbore on the candidate rays of triangles ``tris``: (ray index, t, triangle) of the hits."""
    owner, k = _expand(counts)
    tri_id = tris[owner]
    ri = r0[tri_id] + k // nc[tri_id]
    ci = np.mod(c0[tri_id] + k % nc[tri_id], period)
    a, b, c = (v[f[tri_id, m]] for m in range(3))
    o = np.zeros_like(a)
    o[:, 1] = ys[ri]
    d = np.zeros_like(a)
    d[:, 0], d[:, 2] = -np.sin(phis[ci]), -np.cos(phis[ci])
    e1, e2 = b - a, c - a
    pvec = np.cross(d, e2)
    det = (e1 * pvec).sum(1)
    ok = np.abs(det) > 1e-12 * np.maximum((e1 * e1).sum(1) * (e2 * e2).sum(1), 1e-300) ** 0.5
    inv = _div(np.ones_like(det), np.where(ok, det, 0.0))
    tvec = o - a
    u = (tvec * pvec).sum(1) * inv
    qvec = np.cross(tvec, e1)
    w = (d * qvec).sum(1) * inv
    t = (e2 * qvec).sum(1) * inv
    eps = 1e-10
    hit = ok & (u >= -eps) & (w >= -eps) & (u + w <= 1 + eps) & (t > 0)
    return (ri * W + ci)[hit], t[hit], tri_id[hit]


def cylinder_raycast(vertices: np.ndarray, faces: np.ndarray, n_rows: int = 256, n_cols: int = 256,
                     y_top: float = 150.0, y_bottom: float = -150.0, pad: float = 0.5, max_pairs: int = 1 << 21):
    """Cast the cylindrical rays of :func:`cylinder_rays` at a mesh; the farthest hit wins.

    Returns ``radius (H, W)`` -- the hit distance t along the ray, equal to the
    hit's sqrt(x^2 + z^2) since rays are horizontal unit vectors from the axis,
    0 where nothing is hit -- and ``face (H, W)`` (-1 where nothing is hit).

    A triangle is only tested against rays inside its (row, column) box: the
    rows span its vertices' heights, the columns the shortest angular arc
    holding its vertices' angles (a triangle whose projection contains the
    axis gets every column); ``pad`` extra rows/columns guard rounding.  The
    exact Moeller-Trumbore test then decides.
    """
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    H, W = n_rows, n_cols
    period = W - 1  # columns 0..W-2 are distinct directions, column W-1 == column 0
    ys, phis = cylinder_rays(H, W, y_top, y_bottom)
    radius = np.zeros((H, W))
    hit_face = np.full((H, W), -1, dtype=np.int64)
    if f.shape[0] == 0:
        return radius, hit_face
    row = (y_top - v[:, 1]) * ((H - 1) / (y_top - y_bottom))
    col = np.mod(np.arctan2(-v[:, 0], -v[:, 2]), 2 * np.pi) * (period / (2 * np.pi))
    near_axis = np.hypot(v[:, 0], v[:, 2]) < 1e-9
    r_t, c_t = row[f], np.sort(col[f], axis=1)
    r0 = np.clip(np.ceil(r_t.min(1) - pad), 0, H - 1).astype(np.int64)
    r1 = np.clip(np.floor(r_t.max(1) + pad), -1, H - 1).astype(np.int64)
    gaps = np.stack([c_t[:, 1] - c_t[:, 0], c_t[:, 2] - c_t[:, 1], c_t[:, 0] + period - c_t[:, 2]], 1)
    g = gaps.argmax(1)
    start = np.choose(g, [c_t[:, 1], c_t[:, 2], c_t[:, 0]])
    span = period - gaps.max(1)
    full = (span > period / 2) | near_axis[f].any(1)
    c0 = np.where(full, 0, np.ceil(start - pad)).astype(np.int64)
    c1 = np.where(full, period - 1, np.floor(start + span + pad)).astype(np.int64)
    nr = np.maximum(r1 - r0 + 1, 0)
    nc = np.maximum(c1 - c0 + 1, 0)
    nc = np.minimum(nc, period)
    counts = nr * nc
    # candidate (triangle, ray) pairs in chunks of about ``max_pairs``: a broken prediction with huge
    # triangles would otherwise need tens of millions at once
    group = np.cumsum(counts) // max_pairs
    flat_r, flat_f = radius.ravel(), hit_face.ravel()
    for gi in np.unique(group):  # a handful of chunks, not a loop over faces
        sel_f = np.flatnonzero(group == gi)
        ray, t, tri_hit = _cast(v, f, sel_f, counts[sel_f], r0, c0, nc, ys, phis, W, period)
        if not ray.size:
            continue
        order = np.lexsort((t, ray))
        last = np.ones(order.shape[0], bool)
        last[:-1] = ray[order][1:] != ray[order][:-1]
        sel = order[last]  # the farthest hit of each ray in this chunk
        better = t[sel] > flat_r[ray[sel]]
        flat_r[ray[sel][better]] = t[sel][better]
        flat_f[ray[sel][better]] = tri_hit[sel][better]
    radius[:, W - 1] = radius[:, 0]
    hit_face[:, W - 1] = hit_face[:, 0]
    return radius, hit_face


def _grid(radius: np.ndarray, jump: float):
    """Grid vertices (H, W, 3) of a radius map and the kept cells (H-1, W-1)."""
    H, W = radius.shape
    ys, phis = cylinder_rays(H, W)
    verts = np.stack([-radius * np.sin(phis)[None], np.broadcast_to(ys[:, None], (H, W)),
                      -radius * np.cos(phis)[None]], axis=-1)
    ra, rb, rc, rd = radius[:-1, :-1], radius[:-1, 1:], radius[1:, :-1], radius[1:, 1:]
    keep = ((ra > 0) & (rb > 0) & (rc > 0) & (rd > 0)
            & (np.abs(ra - rb) < jump) & (np.abs(ra - rc) < jump) & (np.abs(ra - rd) < jump))
    return verts, keep


def _cell_faces(H: int, W: int) -> np.ndarray:
    """(2 (H-1)(W-1), 3) triangles of every grid cell: cell (i, j) -> rows 2c, 2c+1, c = i (W-1) + j."""
    idx = np.arange(H * W).reshape(H, W)
    a, b, c, d = (x.ravel() for x in (idx[:-1, :-1], idx[:-1, 1:], idx[1:, :-1], idx[1:, 1:]))
    return np.stack([np.stack([a, c, d], 1), np.stack([a, d, b], 1)], 1).reshape(-1, 3)


def _used_vertices(keep: np.ndarray, H: int, W: int) -> np.ndarray:
    """(H, W) bool: grid vertices that a kept cell (H-1, W-1) uses."""
    used = np.zeros((H, W), bool)
    used[:-1, :-1] |= keep
    used[:-1, 1:] |= keep
    used[1:, :-1] |= keep
    used[1:, 1:] |= keep
    return used


def radius_map_mesh(radius: np.ndarray, jump: float = JUMP_MM) -> tuple[np.ndarray, np.ndarray]:
    """Grid mesh of a cylindrical radius map (0 = no sample).

    Vertex (i, j) = (-r sin phi_j, y_i, -r cos phi_j) (all H*W of them, row
    major); cell (i, j) gives triangles (a, c, d), (a, d, b) with a=(i,j),
    b=(i,j+1), c=(i+1,j), d=(i+1,j+1), unless a corner radius is 0 or
    |r_a - r_b|, |r_a - r_c| or |r_a - r_d| >= ``jump``.
    """
    H, W = radius.shape
    verts, keep = _grid(radius, jump)
    faces = _cell_faces(H, W).reshape(-1, 2, 3)[keep.ravel()].reshape(-1, 3)
    return verts.reshape(-1, 3), faces


def grid_distances(query_radius: np.ndarray, target_radius: np.ndarray, jump: float = JUMP_MM,
                   max_pairs: int = 1 << 21, max_cells: int = 1 << 25) -> np.ndarray:
    """Exact distance from every vertex of ``radius_map_mesh(query_radius, jump)`` that a face
    uses (row-major order) to the surface of ``radius_map_mesh(target_radius, jump)``; NaN
    if the target mesh is empty.

    The grid is the search structure.  Every point of a triangle of target
    cell (i', j') lies in the cylindrical box: height in [y_(i'+1), y_i'],
    angle in the cell's wedge [phi_j', phi_(j'+1)] and radius in
    [min corner radius * cos(dphi / 2), max corner radius] (a convex
    combination of the corners, projected on the wedge's bisector).  The
    distance from a query point to that box is a lower bound for its
    triangles.  Steps: (1) exact distances to the 4 cells around the vertex
    give an upper bound ``best``; (2) all cells whose height/angle gap alone
    could beat ``best`` (an elliptic window of rows and columns) are
    enumerated, cells whose box distance exceeds ``best`` dropped, and the
    rest tested exactly.  Queries with no target cell nearby start from the
    nearest target vertex instead.  If the windows together exceed
    ``max_cells`` cells (a prediction far from the truth), the queries with
    the largest windows use :class:`~mfnet.evaluate.geometry.TriangleIndex`.
    """
    H, W = query_radius.shape
    qv, qkeep = _grid(query_radius, jump)
    qi, qj = np.nonzero(_used_vertices(qkeep, H, W))
    tv, keep = _grid(target_radius, jump)
    if not keep.any() or qi.size == 0:
        return np.full(qi.size, np.nan)
    g = _GridSearch(qv[qi, qj], query_radius[qi, qj], qi, qj, tv, keep, target_radius)
    g.seed()
    near = g.windows(max_cells)
    g.scan_windows(near, max_pairs)
    g.search_far(np.setdiff1d(np.arange(qi.size), near))
    return np.sqrt(g.best)


class _GridSearch:
    """The state of :func:`grid_distances`: the queries ``q`` (n, 3) at grid rows/columns ``qi``/``qj`` with
    radius ``r_q``, the target grid (vertices ``tv`` (H, W, 3), kept cells ``keep``, radius map), and
    ``best`` (n,): the smallest squared distance found so far for each query."""

    def __init__(self, q, r_q, qi, qj, tv, keep, target_radius):
        H, W = target_radius.shape
        self.H, self.C = H, W - 1  # cells per ring (column W-1 repeats column 0)
        ys, phis = cylinder_rays(H, W)
        self.dy, self.dphi = ys[0] - ys[1], phis[1]
        self.q, self.r_q, self.qi, self.qj = q, r_q, qi, qj % self.C
        self.tv, self.keep2d, self.keep = tv, keep, keep.ravel()
        self.packed = pack_triangles(tv.reshape(-1, 3), _cell_faces(H, W), balls=False)
        corners = np.stack([target_radius[:-1, :-1], target_radius[:-1, 1:], target_radius[1:, :-1],
                            target_radius[1:, 1:]], -1).reshape(-1, 4)
        self.radii = np.stack([corners.min(1) * np.cos(self.dphi / 2), corners.max(1)], 1)  # cell radius bounds
        self.best = np.full(q.shape[0], np.inf)

    def exact(self, who, cell) -> None:
        """Update ``best`` with both triangles of each (query ``who`` ascending, cell) pair."""
        if who.size:
            who = np.repeat(who, 2)
            fi = np.stack([2 * cell, 2 * cell + 1], 1).ravel()
            _, _, d2 = pair_distances2(self.q[who], self.packed[fi])
            hit = segment_best(who, d2)
            self.best[who[hit]] = np.minimum(self.best[who[hit]], d2[hit])

    def seed(self) -> None:
        """(1) The 4 cells around each vertex (rows qi-1, qi and columns qj-1, qj); queries with none kept
        start from the nearest vertex of a kept cell."""
        H, C, qi, qj, n = self.H, self.C, self.qi, self.qj, self.q.shape[0]
        rows = qi[:, None] + np.array([-1, -1, 0, 0])
        cells = np.clip(rows, 0, H - 2) * C + (qj[:, None] + np.array([-1, 0, -1, 0])) % C
        ok = (rows >= 0) & (rows <= H - 2) & self.keep[cells]
        self.exact(np.repeat(np.arange(n), 4)[ok.ravel()], cells[ok])
        lost = np.flatnonzero(~np.isfinite(self.best))
        if lost.size:  # no target cell around: the nearest vertex of a kept cell bounds the distance
            used = _used_vertices(self.keep2d, H, C + 1).ravel()
            d, _ = cKDTree(self.tv.reshape(-1, 3)[used]).query(self.q[lost])
            self.best[lost] = d * d

    def windows(self, max_cells: int) -> np.ndarray:
        """(2) Each query's elliptic window (per row offset, the columns whose angular gap leaves room under
        ``best``), kept in ``self.win``; returns the queries whose windows fit ``max_cells`` together."""
        H, C, dy, dphi, qi, r_q = self.H, self.C, self.dy, self.dphi, self.qi, self.r_q
        bd = np.sqrt(self.best) * (1 + 1e-9) + 1e-9
        m = np.ceil(bd / dy).astype(np.int64)
        span = np.minimum(2 * m, H - 1) * np.minimum(2 * np.ceil(bd / np.maximum(r_q * dphi, 1e-12)) + 2, C)
        order = np.argsort(span, kind="stable")
        near = np.sort(order[np.cumsum(span[order]) <= max_cells])
        r0 = np.maximum(qi[near] - m[near], 0)
        nr = np.maximum(np.minimum(qi[near] + m[near] - 1, H - 2) - r0 + 1, 0)
        o_r = near[np.repeat(np.arange(near.size), nr)]                 # (query, row) pairs
        row = np.repeat(r0, nr) + np.arange(o_r.size) - np.repeat(np.cumsum(nr) - nr, nr)
        dy_min = np.maximum(np.maximum(row - qi[o_r], qi[o_r] - row - 1), 0) * dy
        h2 = bd[o_r] ** 2 - dy_min ** 2
        ratio = np.sqrt(np.maximum(h2, 0.0)) / r_q[o_r]
        half = np.where(ratio < 1, np.ceil(np.arcsin(np.minimum(ratio, 1.0)) / dphi), C)
        half = np.where(h2 > 0, np.maximum(half, 1), 0).astype(np.int64)
        full = 2 * half >= C
        # per (query, row) pair: the query, its column count, first column relative to the query's, row
        # base, height gap squared, radius, and whether the row is one of the step (1) cells'
        self.win = dict(o_r=o_r, nc=np.where(full, C, 2 * half), rel0=np.where(full, -self.qj[o_r], -half),
                        row_base=row * C, dy2=dy_min ** 2, rq=r_q[o_r],
                        own_row=(row >= qi[o_r] - 1) & (row <= qi[o_r]))
        return near

    def scan_windows(self, near: np.ndarray, max_pairs: int) -> None:
        """Test the windows' cells whose box distance could beat ``best``, in chunks of (query, row) pairs
        (the chunks bound memory only)."""
        nc, n_pairs = self.win["nc"], self.win["o_r"].size
        total = np.cumsum(nc)
        stops = np.searchsorted(total, np.arange(1, int(total[-1]) // max_pairs + 1) * max_pairs) if total.size else []
        lo = 0
        for hi in list(np.minimum(np.asarray(stops, np.int64) + 1, n_pairs)) + [n_pairs]:
            if hi > lo:
                self._scan_chunk(lo, hi)
            lo = max(lo, hi)

    def _scan_chunk(self, lo: int, hi: int) -> None:
        w, C = self.win, self.C
        c = w["nc"][lo:hi]
        k = np.repeat(np.arange(lo, hi), c)
        rel = w["rel0"][k] + np.arange(k.size) - np.repeat(np.cumsum(c) - c, c)   # column - query column
        cell = w["row_base"][k] + (self.qj[w["o_r"][k]] + rel) % C
        f = self.keep[cell]
        cell, k, rel = cell[f], k[f], rel[f]
        # distance to the cell's cylindrical box (lower bound for its triangles)
        gap = np.maximum(np.maximum(rel, -rel - 1), 0)
        cos_gap = np.cos(np.minimum(np.arange(C + 1) * self.dphi, np.pi))
        cosg = cos_gap[np.minimum(gap, np.maximum(C - 1 - gap, 0))]      # circular gap, for full rings
        r = w["rq"][k]
        rr = self.radii[cell]
        rs = np.clip(r * cosg, rr[:, 0], rr[:, 1])
        lb2 = w["dy2"][k] + r * r + rs * (rs - 2 * r * cosg)
        who = w["o_r"][k]
        f = (lb2 <= self.best[who] * (1 + 1e-9) + 1e-12) & ~(w["own_row"][k] & (rel >= -1) & (rel <= 0))
        who, cell, lb2 = who[f], cell[f], lb2[f]
        if who.size:  # probe each query's most promising cell first: a lower best prunes the rest
            first = segment_best(who, lb2)
            self.exact(who[first], cell[first])
            rest = np.ones(who.size, bool)
            rest[first] = False
            rest &= lb2 <= self.best[who] * (1 + 1e-9) + 1e-12
            self.exact(who[rest], cell[rest])

    def search_far(self, far: np.ndarray) -> None:
        """Queries whose windows did not fit (very far from the target): generic exact search."""
        if far.size:
            H, W = self.H, self.C + 1
            faces = _cell_faces(H, W).reshape(-1, 2, 3)[self.keep].reshape(-1, 3)
            d = TriangleIndex(self.tv.reshape(-1, 3), faces).query(self.q[far]).distance
            self.best[far] = np.minimum(self.best[far], d ** 2)
