"""Mesh exports: OBJ (+ MTL + texture PNG), PLY and GLB; and an OBJ reader for round-trips.

All writers are atomic (temporary file, then rename).
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from ..utils.io import atomic_path


def _fmt_rows(prefix: str, a: np.ndarray, fmt: str) -> str:
    if len(a) == 0:
        return ""
    lines = np.char.add(prefix, np.array([fmt % tuple(r) for r in a.tolist()]))  # numpy-vectorised strings
    return "\n".join(lines.tolist()) + "\n"


def write_obj(path: str | Path, vertices: np.ndarray, faces: np.ndarray, vt: np.ndarray | None = None,
              ft: np.ndarray | None = None, texture: np.ndarray | None = None,
              vertex_colors: np.ndarray | None = None) -> Path:
    """Write a triangle mesh as OBJ. With ``vt``/``ft`` the faces carry UV indices; with
    ``texture`` (H, W, 3) uint8 an ``.mtl`` and ``<stem>.png`` are written beside it.
    UVs follow the OBJ convention (v up)."""
    path = Path(path)
    vertices = np.asarray(vertices, dtype=np.float64)
    faces = np.asarray(faces, dtype=np.int64)
    buf = io.StringIO()
    buf.write("# written by mfnet\n")
    if texture is not None:
        buf.write(f"mtllib {path.stem}.mtl\nusemtl material0\n")
    if vertex_colors is not None:
        vc = np.concatenate([vertices, np.asarray(vertex_colors, dtype=np.float64)], axis=1)
        buf.write(_fmt_rows("v ", vc, "%.6f %.6f %.6f %.4f %.4f %.4f"))
    else:
        buf.write(_fmt_rows("v ", vertices, "%.6f %.6f %.6f"))
    if vt is not None and ft is not None:
        buf.write(_fmt_rows("vt ", np.asarray(vt, dtype=np.float64), "%.6f %.6f"))
        idx = np.stack([faces + 1, np.asarray(ft, dtype=np.int64) + 1], axis=2).reshape(-1, 6)
        buf.write(_fmt_rows("f ", idx, "%d/%d %d/%d %d/%d"))
    else:
        buf.write(_fmt_rows("f ", faces + 1, "%d %d %d"))
    if texture is not None:
        from PIL import Image

        with atomic_path(path.with_suffix(".png")) as tmp:
            Image.fromarray(np.asarray(texture, dtype=np.uint8)).save(tmp, format="PNG")
        with atomic_path(path.with_suffix(".mtl")) as tmp:
            tmp.write_text(f"newmtl material0\nKa 1 1 1\nKd 1 1 1\nKs 0 0 0\nillum 1\nmap_Kd {path.stem}.png\n")
    with atomic_path(path) as tmp:
        tmp.write_text(buf.getvalue())
    return path


def read_obj(path: str | Path):
    """Read vertices, triangle faces and (if present) vt/ft from an OBJ. Returns a dict."""
    v, vt, f, ft = [], [], [], []
    for line in Path(path).read_text().splitlines():
        if line.startswith("v "):
            v.append([float(x) for x in line.split()[1:4]])
        elif line.startswith("vt "):
            vt.append([float(x) for x in line.split()[1:3]])
        elif line.startswith("f "):
            corners = [c.split("/") for c in line.split()[1:]]
            for k in range(1, len(corners) - 1):  # fan-triangulate polygons
                tri = [corners[0], corners[k], corners[k + 1]]
                f.append([int(c[0]) - 1 for c in tri])
                if len(tri[0]) > 1 and tri[0][1]:
                    ft.append([int(c[1]) - 1 for c in tri])
    out = {"vertices": np.array(v, dtype=np.float64).reshape(-1, 3), "faces": np.array(f, dtype=np.int64).reshape(-1, 3)}
    if vt:
        out["vt"] = np.array(vt, dtype=np.float64)
        out["ft"] = np.array(ft, dtype=np.int64)
    return out


def _trimesh(vertices, faces, vertex_colors=None):
    import trimesh

    mesh = trimesh.Trimesh(np.asarray(vertices, dtype=np.float64), np.asarray(faces, dtype=np.int64), process=False)
    if vertex_colors is not None:
        vc = np.clip(np.asarray(vertex_colors) * 255, 0, 255).astype(np.uint8)
        mesh.visual.vertex_colors = np.concatenate([vc, np.full((len(vc), 1), 255, np.uint8)], 1)
    return mesh


def write_ply(path: str | Path, vertices, faces, vertex_colors=None) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_bytes(_trimesh(vertices, faces, vertex_colors).export(file_type="ply"))
    return path


def write_glb(path: str | Path, vertices, faces, vt=None, ft=None, texture=None, vertex_colors=None) -> Path:
    """Binary glTF. With UVs and a texture, vertices are split per UV seam (glTF has one UV per vertex)."""
    import trimesh

    path = Path(path)
    if vt is not None and ft is not None and texture is not None:
        from PIL import Image

        faces = np.asarray(faces)
        ft = np.asarray(ft)
        # one glTF vertex per unique (vertex, uv) pair
        pairs = np.stack([faces.reshape(-1), ft.reshape(-1)], 1)
        uniq, inverse = np.unique(pairs, axis=0, return_inverse=True)
        mesh = trimesh.Trimesh(np.asarray(vertices)[uniq[:, 0]], inverse.reshape(-1, 3), process=False)
        material = trimesh.visual.material.PBRMaterial(baseColorTexture=Image.fromarray(np.asarray(texture, np.uint8)),
                                                       metallicFactor=0.0, roughnessFactor=1.0)
        mesh.visual = trimesh.visual.TextureVisuals(uv=np.asarray(vt)[uniq[:, 1]], material=material)
    else:
        mesh = _trimesh(vertices, faces, vertex_colors)
    with atomic_path(path) as tmp:
        tmp.write_bytes(mesh.export(file_type="glb"))
    return path
