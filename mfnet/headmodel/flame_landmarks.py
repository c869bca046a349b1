"""FLAME landmark embeddings (which face and barycentrics each landmark sits at), read without chumpy:
DECA's ``landmark_embedding.npy``, RingNet / FLAME_PyTorch's static (+ dynamic contour) embedding,
TF_FLAME's 68-point one, and metrical-tracker's MediaPipe embedding. Format detected from the content;
every problem is one :class:`~mfnet.headmodel.data.HeadModelError` naming the file and where to get it."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .data import HeadModelError
from .safe_pickle import safe_load, safe_load_npy

PathLike = str | os.PathLike
LMK_HINT = ("Expected DECA's data/landmark_embedding.npy (https://github.com/yfeng95/DECA, "
            "fetch_data.sh) or FLAME_PyTorch's model/flame_static_embedding.pkl + "
            "flame_dynamic_embedding.npy (https://github.com/soubhiksanyal/FLAME_PyTorch).")


def _err(path, problem: str, hint: str = LMK_HINT) -> HeadModelError:
    return HeadModelError(f"{path}: {problem}. {hint}")


@dataclass
class LandmarkEmbedding:
    """iBUG-68 static embedding (17 contour + 51 inner points) and optional dynamic contour."""

    faces_idx: np.ndarray                     # (68,) int64 face indices
    bary_coords: np.ndarray                   # (68, 3) float64
    dyn_faces_idx: np.ndarray | None = None   # (79, 17) int64, rows by yaw
    dyn_bary_coords: np.ndarray | None = None  # (79, 17, 3)
    source: str = ""
    files: list[str] = field(default_factory=list)


def _embedding_pair(path, faces, bary, n=None, what="static"):
    faces, bary = np.asarray(faces), np.asarray(bary, dtype=np.float64)
    if not np.issubdtype(faces.dtype, np.integer) or bary.shape != faces.shape + (3,) or (n and faces.shape != n):
        raise _err(path, f"{what} embedding must be faces {n or '(...)'} + barycentrics (..., 3), got "
                         f"{faces.shape} {faces.dtype} and {bary.shape}", LMK_HINT)
    if faces.size and int(faces.min()) < 0:
        raise _err(path, f"{what} embedding has negative face indices", LMK_HINT)
    if bary.size and (not np.isfinite(bary).all() or np.abs(bary.sum(-1) - 1).max() > 1e-2):
        raise _err(path, f"{what} barycentric coordinates do not sum to 1", LMK_HINT)
    return faces.astype(np.int64), bary


def _load_dynamic(path) -> tuple[np.ndarray, np.ndarray]:
    d = safe_load_npy(path, hint=LMK_HINT)
    if not (isinstance(d, dict) and "lmk_face_idx" in d and "lmk_b_coords" in d):
        raise _err(path, "not a FLAME dynamic embedding (expected keys lmk_face_idx, lmk_b_coords)", LMK_HINT)
    try:
        faces, bary = np.stack([np.asarray(r) for r in d["lmk_face_idx"]]), np.stack([np.asarray(r) for r in d["lmk_b_coords"]])
    except ValueError as exc:
        raise _err(path, f"dynamic embedding rows differ in size ({exc})", LMK_HINT) from None
    return _embedding_pair(path, faces, bary, (79, 17), "dynamic")


def load_landmark_embedding(path: PathLike, dynamic_path: PathLike | None = None) -> LandmarkEmbedding:
    """Read a FLAME landmark embedding (format detected from the content).

    * DECA ``landmark_embedding.npy``: static 68 from ``full_lmk_*`` (or dynamic row 0 +
      static 51), dynamic (79, 17) from the torch tensors;
    * RingNet ``flame_static_embedding.pkl`` (51 points): the 17 contour points are row 0
      (frontal) of ``dynamic_path`` or of ``flame_dynamic_embedding.npy`` beside it;
    * TF_FLAME ``flame_static_embedding_68.pkl`` (68 points), dynamic optional.
    """
    path = Path(path)
    if not path.is_file():
        raise _err(path, "no such file", LMK_HINT)
    with open(path, "rb") as fh:
        is_npy = fh.read(6) == b"\x93NUMPY"
    d = safe_load_npy(path, hint=LMK_HINT) if is_npy else safe_load(path, hint=LMK_HINT)
    if not isinstance(d, dict):
        raise _err(path, f"holds a {type(d).__name__}, not a landmark-embedding dict", LMK_HINT)
    files = [path.name]
    if "dynamic_lmk_faces_idx" in d or "full_lmk_faces_idx" in d:  # DECA
        dyn = None
        if "dynamic_lmk_faces_idx" in d:
            dyn = _embedding_pair(path, d["dynamic_lmk_faces_idx"], d.get("dynamic_lmk_bary_coords"), (79, 17), "dynamic")
        if "full_lmk_faces_idx" in d:
            faces, bary = np.asarray(d["full_lmk_faces_idx"]).reshape(-1), np.asarray(d.get("full_lmk_bary_coords")).reshape(-1, 3)
        elif dyn is not None and "static_lmk_faces_idx" in d:
            faces = np.concatenate([dyn[0][0], np.asarray(d["static_lmk_faces_idx"])])
            bary = np.concatenate([dyn[1][0], np.asarray(d["static_lmk_bary_coords"])])
        else:
            raise _err(path, "DECA embedding without full_lmk_* or dynamic+static parts", LMK_HINT)
        faces, bary = _embedding_pair(path, faces, bary, (68,))
        return LandmarkEmbedding(faces, bary, *(dyn or (None, None)), "DECA landmark_embedding.npy", files)
    if "lmk_face_idx" not in d or "lmk_b_coords" not in d:
        raise _err(path, f"unknown landmark file (keys: {', '.join(sorted(map(str, d)))})", LMK_HINT)
    if isinstance(d["lmk_face_idx"], list):
        raise _err(path, "this is a dynamic (contour) embedding; pass flame_static_embedding.pkl as the "
                         "embedding and this file as dynamic_path", LMK_HINT)
    faces, bary = _embedding_pair(path, d["lmk_face_idx"], d["lmk_b_coords"])
    sibling = path.with_name("flame_dynamic_embedding.npy")
    dynamic_path = dynamic_path or (sibling if sibling.is_file() else None)
    dyn = _load_dynamic(dynamic_path) if dynamic_path else None
    if dyn is not None:
        files.append(Path(dynamic_path).name)
    if faces.shape == (51,):
        if dyn is None:
            raise _err(path, "has only the 51 inner landmarks; the 17 contour points come from "
                             "flame_dynamic_embedding.npy (row 0), which was not found next to it "
                             "(pass dynamic_path=...)", LMK_HINT)
        faces, bary = np.concatenate([dyn[0][0], faces]), np.concatenate([dyn[1][0], bary])
        source = "RingNet flame_static_embedding.pkl + flame_dynamic_embedding.npy"
    elif faces.shape == (68,):
        source = "68-point static embedding (TF_FLAME)"
    else:
        raise _err(path, f"static embedding has {faces.shape[0]} points, expected 51 or 68", LMK_HINT)
    return LandmarkEmbedding(faces, bary, *(dyn or (None, None)), source, files)


@dataclass
class MediaPipeEmbedding:
    faces_idx: np.ndarray         # (M,) int64
    bary_coords: np.ndarray       # (M, 3)
    landmark_indices: np.ndarray  # (M,) int64 into the 478 MediaPipe points


def load_mediapipe_embedding(path: PathLike) -> MediaPipeEmbedding:
    """metrical-tracker ``mediapipe_landmark_embedding.npz`` (lmk_face_idx, lmk_b_coords, landmark_indices)."""
    hint = "Expected metrical-tracker's flame/mediapipe/mediapipe_landmark_embedding.npz."
    try:
        with np.load(path, allow_pickle=False) as z:
            d = {k: z[k] for k in ("lmk_face_idx", "lmk_b_coords", "landmark_indices")}
    except FileNotFoundError:
        raise _err(path, "no such file", hint) from None
    except KeyError as exc:
        raise _err(path, f"missing array {exc}", hint) from None
    except (ValueError, OSError, EOFError) as exc:
        raise _err(path, f"not a readable .npz ({exc})", hint) from None
    faces, bary = _embedding_pair(path, d["lmk_face_idx"], d["lmk_b_coords"], what="MediaPipe")
    idx = d["landmark_indices"]
    if idx.shape != faces.shape or not np.issubdtype(idx.dtype, np.integer) or (idx.size and (idx.min() < 0 or idx.max() >= 478)):
        raise _err(path, f"landmark_indices must be {faces.shape} integers in [0, 478)", hint)
    return MediaPipeEmbedding(faces, bary, idx.astype(np.int64))
