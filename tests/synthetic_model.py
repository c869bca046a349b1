"""A small random FLAME-structured head model for tests that need no real data."""
from __future__ import annotations

import numpy as np

from mfnet.headmodel.data import FLAME_PARENTS, HeadModelData


def make_synthetic_model(n_verts: int = 60, n_shape: int = 4, n_expr: int = 3, seed: int = 0,
                         posedirs: bool = True, dynamic: bool = True) -> HeadModelData:
    rng = np.random.default_rng(seed)
    # points on an ellipsoid (a head-sized blob), triangulated by their convex hull
    from scipy.spatial import ConvexHull

    p = rng.normal(size=(n_verts, 3))
    p /= np.linalg.norm(p, axis=1, keepdims=True)
    v = p * np.array([0.08, 0.11, 0.09])
    hull = ConvexHull(v)
    faces = hull.simplices.astype(np.int64)
    # orient outward
    centers = v[faces].mean(1)
    normals = np.cross(v[faces[:, 1]] - v[faces[:, 0]], v[faces[:, 2]] - v[faces[:, 0]])
    flip = (normals * centers).sum(1) < 0
    faces[flip] = faces[flip][:, [0, 2, 1]]
    V, F = n_verts, faces.shape[0]
    J = 5
    Jreg = rng.random((J, V)) ** 4
    Jreg /= Jreg.sum(1, keepdims=True)
    w = rng.random((V, J)) ** 3
    w /= w.sum(1, keepdims=True)
    lmk_faces = rng.integers(0, F, size=68)
    bary = rng.random((68, 3))
    bary /= bary.sum(1, keepdims=True)
    data = HeadModelData(
        v_template=v.astype(np.float32), faces=faces,
        shapedirs=(rng.normal(size=(V, 3, n_shape)) * 0.01).astype(np.float32),
        exprdirs=(rng.normal(size=(V, 3, n_expr)) * 0.005).astype(np.float32),
        J_regressor=Jreg.astype(np.float32), weights=w.astype(np.float32), parents=FLAME_PARENTS.copy(),
        lmk_faces_idx=lmk_faces, lmk_bary_coords=bary.astype(np.float32),
        posedirs=(rng.normal(size=(36, 3 * V)) * 0.001).astype(np.float32) if posedirs else None,
        meta={"name": "synthetic", "units": "m"},
    )
    if dynamic:
        data.dyn_lmk_faces_idx = rng.integers(0, F, size=(79, 17))
        b = rng.random((79, 17, 3))
        data.dyn_lmk_bary_coords = (b / b.sum(-1, keepdims=True)).astype(np.float32)
    return data.validate()
