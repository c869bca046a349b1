"""Test support: a head model resampled to about FLAME's size (5,023 vertices) by half-edge collapses.

Shortest edges first, an edge (u, v) collapses by removing v into u, so every remaining vertex is an
original one: the bases (shape, expression), skinning weights and masks are the original rows of the
kept vertices, each removed vertex hands its joint-regressor weight to the vertex it went into (rows
keep summing to 1), landmarks are re-embedded at their old surface positions. Collapses that would
break the surface are refused: a vertex on a boundary or a UV seam is never removed, the link
condition keeps the mesh manifold, and no triangle may flip or become a sliver.
"""
from __future__ import annotations

import heapq

import numpy as np

from mfnet.headmodel.data import HeadModelData


class _Mesh:
    def __init__(self, P: np.ndarray, faces: np.ndarray, ft: np.ndarray | None):
        self.P, self.F = P, faces.copy()
        self.ft = None if ft is None else ft.copy()
        self.alive_f = np.ones(len(faces), bool)
        self.alive_v = np.zeros(len(P), bool)
        self.alive_v[np.unique(faces)] = True
        self.vf: list[set] = [set() for _ in range(len(P))]
        for f, tri in enumerate(faces):
            for v in tri:
                self.vf[v].add(f)
        self.locked = np.zeros(len(P), bool)
        e = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), axis=1)
        uniq, count = np.unique(e, axis=0, return_counts=True)
        self.locked[uniq[count != 2].ravel()] = True  # boundary (or non-manifold) vertices stay
        if ft is not None:  # UV seams: a vertex with several texture coordinates stays
            first = np.full(len(P), -1)
            for fv, tv in zip(faces.ravel(), ft.ravel()):
                if first[fv] < 0:
                    first[fv] = tv
                elif first[fv] != tv:
                    self.locked[fv] = True
        self.owner = np.arange(len(P))  # removed vertex -> the vertex it went into

    def ring(self, v) -> set:
        return {int(w) for f in self.vf[v] for w in self.F[f]} - {v}

    def _normal(self, tri) -> np.ndarray:
        a, b, c = self.P[tri]
        return np.cross(b - a, c - a)

    def can_collapse(self, v, u, min_cos: float = 0.3) -> bool:
        if self.locked[v] or not (self.alive_v[u] and self.alive_v[v]):
            return False
        shared = self.vf[u] & self.vf[v]
        if len(shared) != 2 or len(self.ring(u) & self.ring(v)) != 2:  # link condition
            return False
        for f in self.vf[v] - shared:
            old = self.F[f]
            new = np.where(old == v, u, old)
            n0, n1 = self._normal(old), self._normal(new)
            a0, a1 = np.linalg.norm(n0), np.linalg.norm(n1)
            if a1 < 1e-12 or n0 @ n1 < min_cos * a0 * a1:
                return False
            edges = np.linalg.norm(self.P[new] - self.P[np.roll(new, 1)], axis=1)
            if a1 / max(edges.max() ** 2, 1e-18) < 0.05:  # sliver
                return False
        return True

    def collapse(self, v, u) -> None:
        shared = self.vf[u] & self.vf[v]
        if self.ft is not None:  # u's texture coordinate in v's chart: from a triangle holding both
            f0 = next(iter(shared))
            tu = self.ft[f0][list(self.F[f0]).index(u)]
        for f in shared:
            self.alive_f[f] = False
            for w in self.F[f]:
                self.vf[w].discard(f)
        for f in list(self.vf[v]):
            k = list(self.F[f]).index(v)
            self.F[f, k] = u
            if self.ft is not None:
                self.ft[f, k] = tu
            self.vf[u].add(f)
        self.vf[v].clear()
        self.alive_v[v] = False
        self.owner[v] = u


def _collapse_to(mesh: _Mesh, target: int) -> None:
    heap = []

    def push(a, b):
        heapq.heappush(heap, (float(np.linalg.norm(mesh.P[a] - mesh.P[b])), int(a), int(b)))

    for a, b in {tuple(sorted((int(x), int(y)))) for tri in mesh.F for x, y in zip(tri, np.roll(tri, 1))}:
        push(a, b)
    n = int(mesh.alive_v.sum())
    while n > target and heap:
        _, a, b = heapq.heappop(heap)
        if not (mesh.alive_v[a] and mesh.alive_v[b]) or not mesh.vf[a] & mesh.vf[b]:
            continue
        for v, u in ((a, b), (b, a)):
            if mesh.can_collapse(v, u):
                mesh.collapse(v, u)
                n -= 1
                for w in mesh.ring(u):
                    push(u, w)
                break


def _reembed(P_old, F_old, faces_idx, bary, P_new, F_new):
    import trimesh

    pts = (P_old[F_old[faces_idx]] * np.asarray(bary, np.float64)[..., None]).sum(-2)
    closest, _, tri = trimesh.proximity.closest_point(trimesh.Trimesh(P_new, F_new, process=False), pts)
    b = np.clip(trimesh.triangles.points_to_barycentric(P_new[F_new[tri]], closest), 0, None)
    return tri.astype(np.int64), (b / b.sum(1, keepdims=True)).astype(np.float32)


def resample_head(data: HeadModelData, target: int = 5023, name: str = "resampled") -> HeadModelData:
    """``data`` with about ``target`` vertices (see the module doc); the dynamic contour is dropped."""
    P = data.v_template.astype(np.float64)
    mesh = _Mesh(P, data.faces, data.ft)
    _collapse_to(mesh, target)
    owner = mesh.owner.copy()
    for _ in range(64):  # removed -> final kept vertex
        nxt = owner[owner]
        if np.array_equal(nxt, owner):
            break
        owner = nxt
    keep = np.flatnonzero(mesh.alive_v)
    remap = np.full(len(P), -1)
    remap[keep] = np.arange(len(keep))
    faces = remap[mesh.F[mesh.alive_f]]
    J = np.zeros((data.num_joints, len(keep)))
    np.add.at(J.T, remap[owner], data.J_regressor.T.astype(np.float64))
    lf, lb = _reembed(P, data.faces, data.lmk_faces_idx, data.lmk_bary_coords, P[keep], faces)
    vt = ft = None
    if data.ft is not None:
        used, ft = np.unique(mesh.ft[mesh.alive_f], return_inverse=True)
        vt, ft = data.vt[used], ft.reshape(-1, 3)
    masks = {k: remap[v][remap[v] >= 0] for k, v in data.masks.items()}
    meta = {**data.meta, "name": name, "resampled_from": data.name, "counts": {"vertices": len(keep),
                                                                             "faces": len(faces)}}
    out = HeadModelData(
        v_template=data.v_template[keep], faces=faces.astype(np.int64), shapedirs=data.shapedirs[keep],
        exprdirs=data.exprdirs[keep], J_regressor=J.astype(np.float32), weights=data.weights[keep],
        parents=data.parents.copy(), lmk_faces_idx=lf, lmk_bary_coords=lb,
        posedirs=None if data.posedirs is None else data.posedirs.reshape(-1, len(P), 3)[:, keep].reshape(len(
            data.posedirs), -1), vt=vt, ft=ft, masks=masks, meta=meta)
    return out.validate(name)
