"""What mfnet adds to, checks in and refuses of FLAME files when it builds a model (used by
:func:`mfnet.headmodel.flame.build_flame_model`).

* **Variants.** ``flame2023_no_jaw.pkl`` (FLAME 2023 without jaw rotation: its expression space opens
  the mouth) is refused: mfnet fits the jaw as a rotation. The FLAME 2017 gendered models
  (``male_model.pkl`` / ``female_model.pkl``) are valid FLAME files but their shape codes are not
  interchangeable with ``generic_model.pkl``'s, which most FLAME tools load: they install with a
  warning, ``meta['gender']`` set; a folder holding only the two gendered models is ambiguous and
  refused (:func:`pick_model_file`).
* **Unused directions.** Trailing shape or expression directions that are exactly zero cannot move
  a vertex; they are dropped (``meta['zero_directions_dropped']``), and all-zero pose correctives
  become "no correctives". The file's own counts stay in ``meta['file_components']`` so that
  exported codes (``flame_params.npz``) have the file's length.
* **Mask names.** ``FLAME_masks.pkl`` regions keep their names; the names mfnet's stages look up
  are added as aliases: ``eyeballs`` (both eyeballs), ``eye_left`` / ``eye_right`` / ``eyes``.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from .data import HeadModelError

log = logging.getLogger(__name__)

JAW = 2  # FLAME joint order: global, neck, jaw, eye_left, eye_right
GENDERED = {"male_model": "male", "female_model": "female"}
MASK_ALIASES = {"eyeballs": ("left_eyeball", "right_eyeball"), "eye_left": ("left_eye_region",),
                "eye_right": ("right_eye_region",), "eyes": ("eye_region",)}


def check_variant(raw: dict, path) -> dict:
    """Refuse variants mfnet cannot fit; returns extra metadata (``gender``) for the others."""
    stem = Path(path).stem.lower()
    jaw_weight = float(np.asarray(raw["weights"])[:, JAW].max()) if raw["weights"].shape[1] > JAW else 0.0
    if "no_jaw" in stem or jaw_weight < 1e-6:
        why = "the FLAME 2023 variant without jaw rotation" if "no_jaw" in stem else "its jaw joint moves no vertex"
        raise HeadModelError(
            f"{path}: {why}. mfnet fits the jaw as a rotation of FLAME's jaw joint; use flame2023.pkl from the "
            "same FLAME 2023 download (or generic_model.pkl of FLAME 2020, or flame2023_Open.pkl)")
    if stem in GENDERED:
        log.warning("%s: a gendered FLAME model; its shape codes are not those of generic_model.pkl, which most "
                    "FLAME tools (DECA, NoW, trackers) load: give them this file too", path)
        return {"gender": GENDERED[stem]}
    return {}


def pick_model_file(found: dict[str, Path], folder) -> Path | None:
    """The model pickle of a folder from ``{file name: path}`` of the usual names present
    (first of ``order``), refusing a folder that holds only both gendered models."""
    order = ("generic_model.pkl", "flame2023.pkl", "flame2023_Open.pkl", "flame2023_no_jaw.pkl",
             "male_model.pkl", "female_model.pkl")
    for name in order[:4]:
        if name in found:
            return found[name]
    if "male_model.pkl" in found and "female_model.pkl" in found:
        raise HeadModelError(f"{folder}: holds male_model.pkl and female_model.pkl but no generic_model.pkl; "
                             "pass the one you want (mfnet models add NAME FOLDER/female_model.pkl)")
    return found.get("male_model.pkl") or found.get("female_model.pkl")


def used_directions(dirs: np.ndarray) -> int:
    """Number of leading directions of ``dirs`` (V, 3, K) up to the last one that is not all zero."""
    for k in range(dirs.shape[-1] - 1, -1, -1):  # from the end: a real FLAME file stops at the first look
        if np.any(dirs[:, :, k]):
            return k + 1
    return 0


def trim_directions(shape_all: np.ndarray, expr_all: np.ndarray, n_shape: int, n_expr: int,
                    meta: dict) -> tuple[np.ndarray, np.ndarray]:
    """The first ``n_shape`` / ``n_expr`` directions without trailing all-zero ones (recorded in ``meta``)."""
    meta["file_components"] = {"shape": int(shape_all.shape[2]), "expression": int(expr_all.shape[2])}
    out, dropped = [], {}
    for what, dirs, n in (("shape", shape_all, n_shape), ("expression", expr_all, n_expr)):
        used = min(n, used_directions(dirs[:, :, :n]))
        if used < n:
            dropped[what] = n - used
        out.append(np.ascontiguousarray(dirs[:, :, :used], dtype=np.float32))
    if dropped:
        meta["zero_directions_dropped"] = dropped
    meta["n_shape"], meta["n_expr"] = out[0].shape[2], out[1].shape[2]
    return out[0], out[1]


def pose_correctives(posedirs: np.ndarray) -> np.ndarray | None:
    """FLAME posedirs (V, 3, P) -> mfnet's (P, 3V) layout, or None when they are all zero."""
    if not np.abs(posedirs).max(initial=0.0) > 0:
        return None
    return np.ascontiguousarray(posedirs.reshape(-1, posedirs.shape[2]).T, dtype=np.float32)


def add_mask_aliases(masks: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``masks`` plus mfnet's names for FLAME regions (an existing name is never replaced)."""
    out = dict(masks)
    for alias, parts in MASK_ALIASES.items():
        if alias not in out and all(p in masks for p in parts):
            out[alias] = np.unique(np.concatenate([masks[p] for p in parts])).astype(np.int64)
    return out


def check_uvs(ft: np.ndarray, n_faces: int, source, model_pkl) -> None:
    if ft.shape[0] != n_faces:
        raise HeadModelError(f"{source}: {ft.shape[0]} textured faces but {Path(model_pkl).name} has {n_faces}: "
                             "the UV template belongs to another mesh (FLAME 2020/2023: DECA's "
                             "data/head_template.obj, 9976 faces)")
