"""A small, fast Wavefront OBJ reader for head-model conversion.

Two entry points:

* :func:`read_obj` reads positions, UVs and polygon faces (triangles, quads
  or n-gons, ``v``, ``v/vt``, ``v//vn`` or ``v/vt/vn`` corners, negative
  indices) together with the ``usemtl`` material name of every face.
* :func:`read_obj_vertices` reads only the ``v`` lines of a file with numpy's C
  parser; it is meant for the many blendshape OBJs of a model that share one
  topology (about 10-20 ms for a 27k-vertex file).

Everything is returned 0-indexed.  :meth:`ObjMesh.triangulate` fans every
polygon from its first corner, which keeps the winding (orientation) of the
polygon for each triangle.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np


@dataclass
class ObjMesh:
    """Polygon mesh as read from an OBJ file (all indices 0-based).

    ``poly_start``/``poly_size`` index into the flat corner arrays
    ``corner_v``/``corner_vt`` (``corner_vt`` is -1 where a corner has no UV).
    ``poly_material`` indexes ``materials`` (-1: no ``usemtl`` before the face).
    """

    vertices: np.ndarray                      # (V, 3) float64
    uvs: np.ndarray                           # (T, 2) float64
    corner_v: np.ndarray                      # (C,) int64
    corner_vt: np.ndarray                     # (C,) int64
    poly_start: np.ndarray                    # (P,) int64
    poly_size: np.ndarray                     # (P,) int64
    poly_material: np.ndarray                 # (P,) int64
    materials: list[str] = field(default_factory=list)

    @property
    def num_polygons(self) -> int:
        return int(self.poly_size.shape[0])

    def triangulate(self, polygons: np.ndarray | None = None):
        """Fan-triangulate (a subset of) the polygons, keeping their winding.

        Returns ``(tri_v (F, 3), tri_vt (F, 3), tri_poly (F,))`` where
        ``tri_poly`` is the source polygon of each triangle.  Polygon ``p`` with
        corners ``c0..c(n-1)`` gives triangles ``(c0, ci, ci+1)``; for a quad this
        splits along the diagonal c0-c2.
        """
        polys = np.arange(self.num_polygons) if polygons is None else np.asarray(polygons, np.int64)
        n_tri = self.poly_size[polys] - 2
        if np.any(n_tri < 1):
            raise ValueError("OBJ polygon with fewer than 3 corners")
        tri_poly = np.repeat(polys, n_tri)
        # index of each triangle within its polygon: 0 .. n_tri-1
        first = np.repeat(np.cumsum(n_tri) - n_tri, n_tri)
        k = np.arange(tri_poly.shape[0]) - first
        start = self.poly_start[tri_poly]
        corners = np.stack([start, start + k + 1, start + k + 2], axis=1)
        return self.corner_v[corners], self.corner_vt[corners], tri_poly


def _resolve(idx: np.ndarray, count: int) -> np.ndarray:
    """OBJ 1-based (or negative, relative) indices -> 0-based."""
    return np.where(idx < 0, idx + count, idx - 1)


def read_obj(path: str | os.PathLike) -> ObjMesh:
    """Read positions, UVs, polygons and per-face material names of an OBJ."""
    with open(path, "rb") as fh:
        text = fh.read().decode("utf-8", errors="replace")
    v_lines: list[str] = []
    vt_lines: list[str] = []
    cv: list[int] = []
    ct: list[int] = []
    sizes: list[int] = []
    face_mat: list[int] = []
    materials: list[str] = []
    mat_index: dict[str, int] = {}
    current = -1
    for line in text.splitlines():
        if line.startswith("v "):
            v_lines.append(line[2:])
        elif line.startswith("vt "):
            vt_lines.append(line[3:])
        elif line.startswith("f "):
            corners = line[2:].split()
            for c in corners:
                parts = c.split("/")
                cv.append(int(parts[0]))
                ct.append(int(parts[1]) if len(parts) > 1 and parts[1] else 0)
            sizes.append(len(corners))
            face_mat.append(current)
        elif line.startswith("usemtl"):
            name = line[6:].strip()
            current = mat_index.setdefault(name, len(materials))
            if current == len(materials):
                materials.append(name)
    vertices = _parse_floats(v_lines, 3)
    uvs = _parse_floats(vt_lines, 2)
    corner_v = _resolve(np.asarray(cv, np.int64), len(vertices))
    raw_vt = np.asarray(ct, np.int64)
    corner_vt = np.where(raw_vt == 0, -1, _resolve(raw_vt, len(uvs)))
    size = np.asarray(sizes, np.int64)
    start = np.cumsum(size) - size
    if corner_v.size and (corner_v.min() < 0 or corner_v.max() >= len(vertices)):
        raise ValueError(f"{path}: face indexes a vertex out of range")
    return ObjMesh(vertices, uvs, corner_v, corner_vt, start, size,
                   np.asarray(face_mat, np.int64), materials)


def _parse_floats(lines: list[str], ncols: int) -> np.ndarray:
    if not lines:
        return np.zeros((0, ncols))
    return np.loadtxt(lines, dtype=np.float64, usecols=tuple(range(ncols)), ndmin=2, comments=None)


def read_obj_vertices(path: str | os.PathLike) -> np.ndarray:
    """Only the vertex positions ``(V, 3)`` (float64) of an OBJ file, fast.

    Extra columns (vertex colours) are ignored; every other line is skipped.
    """
    with open(path, "rb") as fh:
        data = fh.read()
    lines = [ln[2:] for ln in data.split(b"\n") if ln.startswith(b"v ")]
    if not lines:
        raise ValueError(f"{path}: no vertices ('v' lines) found")
    return np.loadtxt(lines, dtype=np.float64, usecols=(0, 1, 2), ndmin=2, comments=None)
