"""Test support: a head model written in FLAME's own file formats (a faithful FLAME stand-in).

The licensed FLAME files are not available here; these writers lay out the open head model (or any
:class:`~mfnet.headmodel.data.HeadModelData`) exactly as the real files are laid out (formats in
``../shared/reference/flame-format.md``, checked against the public readers: smplx's FLAME layer,
DECA's ``FLAME.py``, FLAME_PyTorch), so that every FLAME path of mfnet runs on real geometry:

* ``generic_model.pkl``: Python 2 pickle (protocol 2, ``__builtin__``/``copy_reg`` names) with
  ``v_template`` (V, 3) f8, ``f`` (F, 3) u4, ``shapedirs`` a ``chumpy.ch.Ch`` holding (V, 3, 400) f8
  ([:300] shape, [300:] expression, as FLAME 2020; directions the source model lacks are zero),
  ``posedirs`` (V, 3, 36), ``J_regressor`` a ``scipy.sparse.csc_matrix`` (5, V), ``weights`` (V, 5),
  ``kintree_table`` (2, 5), ``J`` (5, 3), ``bs_style``, ``bs_type``; ``flame2023.pkl`` the same,
  ``flame2023_Open.pkl`` a plain Python 3 pickle with ``supr_expression_metadata``;
* ``landmark_embedding.npy`` (DECA): static 51 + the dynamic jaw-contour table (79, 17) as torch
  tensors + ``full_lmk_*`` (68); rows of the table follow the smplx / FLAME_PyTorch yaw convention
  mfnet reads (:func:`mfnet.headmodel.landmarks.contour_rows_from_rotation`);
* ``FLAME_masks.pkl`` (FLAME's region names) and ``head_template.obj`` (v, vt, ``f v/vt``).

Mapping of the open ICT-FaceKit model: identity modes -> shape directions, expression blendshapes
-> expression directions, its 5-joint skeleton (global, neck, jaw, eyes; joints regressed from
vertex groups) -> FLAME's, no pose correctives (zeros).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.sparse as sp

import fixtures_flame as ff
from mfnet.headmodel.data import HeadModelData
from mfnet.headmodel.landmarks import contour_rows_from_rotation

FLAME_SHAPE, FLAME_EXPR = 300, 100
KINTREE = np.array([[4294967295, 0, 1, 1, 1], [0, 1, 2, 3, 4]], dtype=np.int64)
MODEL_FILES = {"2020": "generic_model.pkl", "2023": "flame2023.pkl", "open": "flame2023_Open.pkl"}


def flame_arrays(data: HeadModelData) -> dict:
    """The raw dict of a FLAME 2020 model pickle for ``data`` (float64, as the real files)."""
    S, E, V = data.num_shape, data.num_expression, data.num_vertices
    if S > FLAME_SHAPE or E > FLAME_EXPR:
        raise ValueError(f"FLAME holds at most {FLAME_SHAPE} shape and {FLAME_EXPR} expression directions")
    dirs = np.zeros((V, 3, FLAME_SHAPE + FLAME_EXPR))
    dirs[:, :, :S] = data.shapedirs
    dirs[:, :, FLAME_SHAPE:FLAME_SHAPE + E] = data.exprdirs
    posedirs = np.zeros((V, 3, 36)) if data.posedirs is None else \
        np.asarray(data.posedirs, np.float64).T.reshape(V, 3, 36)
    v = data.v_template.astype(np.float64)
    jreg = data.J_regressor.astype(np.float64)
    return {"v_template": v, "f": data.faces.astype(np.uint32), "shapedirs": dirs, "posedirs": posedirs,
            "J_regressor": sp.csc_matrix(jreg), "weights": data.weights.astype(np.float64),
            "kintree_table": KINTREE.copy(), "J": jreg @ v, "bs_style": "lbs", "bs_type": "lrotmin"}


# ------------------------------------------------------------------ landmarks
def _landmarks(data: HeadModelData, faces_idx, bary) -> np.ndarray:
    P = data.v_template.astype(np.float64)
    return (P[data.faces[faces_idx]] * np.asarray(bary, np.float64)[..., None]).sum(-2)


def _row_yaw(row: int) -> float:
    """Yaw (degrees, mfnet's convention) that selects ``row`` of the table; checked against mfnet."""
    yaw = -float(row) if row < 40 else float(row - 39)
    import torch

    c, s = np.cos(np.radians(yaw)), np.sin(np.radians(yaw))
    R = torch.tensor([[[c, 0, s], [0, 1, 0], [-s, 0, c]]], dtype=torch.float64)
    assert int(contour_rows_from_rotation(R)[0]) == row
    return yaw


def contour_table(data: HeadModelData, blend_deg: float = 20.0) -> tuple[np.ndarray, np.ndarray]:
    """(79, 17) faces and (79, 17, 3) barycentrics of a dynamic jaw contour for ``data``.

    Row 0 (frontal) is the model's own static contour. For a head turned by yaw, the contour
    points on the side turning away (not the chin) slide towards the occluding outline of the
    jaw at their height, fully at ``blend_deg`` degrees: where a 2-D detector puts them."""
    import trimesh

    P = data.v_template.astype(np.float64)
    static = _landmarks(data, data.lmk_faces_idx[:17], data.lmk_bary_coords[:17])
    skin = np.union1d(data.masks.get("face", np.arange(len(P))), data.masks.get("head_neck", []))
    skin = np.setdiff1d(skin, data.masks.get("eyeballs", [])).astype(np.int64)
    mesh = trimesh.Trimesh(P, data.faces, process=False)
    faces = np.repeat(data.lmk_faces_idx[None, :17], 79, 0).astype(np.int64)
    bary = np.repeat(np.asarray(data.lmk_bary_coords[None, :17], np.float64), 79, 0)
    todo = []
    for row in range(1, 79):
        yaw = np.radians(_row_yaw(row))
        side = np.sign(yaw)
        rot_x = np.cos(yaw) * P[:, 0] + np.sin(yaw) * P[:, 2]  # x after the yaw rotation
        t = min(abs(np.degrees(yaw)) / blend_deg, 1.0)
        for i in range(17):
            c = static[i]
            if i == 8 or np.sign(c[0]) != side or abs(c[0]) < 0.01:
                continue
            cand = skin[(np.abs(P[skin, 1] - c[1]) < 0.004) & (np.sign(P[skin, 0]) == side)]
            if not cand.size:
                continue
            outline = P[cand[np.argmax(side * rot_x[cand])]]
            todo.append((row, i, (1 - t) * c + t * outline))
    if todo:
        closest, _, tri = trimesh.proximity.closest_point(mesh, np.array([p for _, _, p in todo]))
        b = trimesh.triangles.points_to_barycentric(P[data.faces[tri]], closest)
        b = np.clip(b, 0, None)
        b /= b.sum(1, keepdims=True)
        for k, (row, i, _) in enumerate(todo):
            faces[row, i], bary[row, i] = tri[k], b[k]
    return faces, bary


def embedding_dict(data: HeadModelData, dynamic: bool = True) -> dict:
    """The parts of a DECA embedding (see :func:`fixtures_flame.write_deca_landmark_embedding`)."""
    dyn_f, dyn_b = contour_table(data) if dynamic else (
        np.repeat(data.lmk_faces_idx[None, :17], 79, 0), np.repeat(data.lmk_bary_coords[None, :17], 79, 0))
    return {"static_faces": data.lmk_faces_idx[17:].astype(np.int64),
            "static_bary": data.lmk_bary_coords[17:].astype(np.float64),
            "dyn_faces": dyn_f.astype(np.int64), "dyn_bary": np.asarray(dyn_b, np.float64)}


# ------------------------------------------------------------------ masks
def boundary_vertices(faces: np.ndarray) -> np.ndarray:
    e = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), axis=1)
    uniq, count = np.unique(e, axis=0, return_counts=True)
    return np.unique(uniq[count == 1]).astype(np.int64)


def flame_masks(data: HeadModelData) -> dict[str, np.ndarray]:
    """The regions of ``FLAME_masks.pkl`` (FLAME's names) from the model's own masks; FLAME regions the
    model has no mask for (forehead, ears) are cut from the geometry."""
    m, P = data.masks, data.v_template
    lmk = _landmarks(data, data.lmk_faces_idx, data.lmk_bary_coords)
    eyeballs = m.get("eyeballs", np.zeros(0, np.int64))
    face = m["face"]
    head = m.get("head_neck", face)
    xmax = np.abs(P[head, 0]).max()
    ear_band = (P[head, 1] > lmk[33, 1] - 0.01) & (P[head, 1] < lmk[27, 1] + 0.01) & (np.abs(P[head, 0]) > 0.85 * xmax)
    out = {"face": face, "forehead": face[P[face, 1] > lmk[17:27, 1].max()], "nose": m["nose"], "lips": m["lips"],
           "eye_region": m["eyes"], "left_eye_region": m["eye_left"], "right_eye_region": m["eye_right"],
           "left_eyeball": eyeballs[P[eyeballs, 0] >= 0], "right_eyeball": eyeballs[P[eyeballs, 0] < 0],
           "left_ear": head[ear_band & (P[head, 0] > 0)], "right_ear": head[ear_band & (P[head, 0] < 0)],
           "scalp": m.get("scalp", head), "neck": m["neck"], "boundary": boundary_vertices(data.faces)}
    return {k: np.asarray(v, np.int64) for k, v in out.items()}


# ------------------------------------------------------------------ folder
def write_flame_folder(data: HeadModelData, folder, *, variant: str = "2020", model_name: str | None = None,
                       embedding: bool = True, dynamic: bool = True, masks: bool = True, uvs: bool = True,
                       protocol: int = 2) -> Path:
    """Write ``data`` as a folder of FLAME files (see the module doc); returns the model pickle's path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model = folder / (model_name or MODEL_FILES[variant])
    ff.write_flame_pickle(model, flame_arrays(data), protocol=protocol, variant="open" if variant == "open" else "2020")
    if embedding:
        ff.write_deca_landmark_embedding(folder / "landmark_embedding.npy", embedding_dict(data, dynamic))
    if masks:
        (folder / "FLAME_masks.pkl").write_bytes(ff.py2_dumps(flame_masks(data), 2))
    if uvs and data.vt is not None:
        ff.write_head_template_obj(folder / "head_template.obj", data.v_template, data.faces, data.vt, data.ft)
    return model
