"""Convert the licensed FLAME files into a :class:`~mfnet.headmodel.data.HeadModelData`.

The user downloads FLAME (https://flame.is.tue.mpg.de) and, for landmarks, DECA's
``data/`` folder; mfnet never ships them. Every pickle is read with
:mod:`mfnet.headmodel.safe_pickle` (allow-listed globals, no chumpy, no torch).

* :func:`load_flame_pickle` – raw arrays of ``generic_model.pkl`` (FLAME 2020),
  ``flame2023.pkl`` / ``flame2023_no_jaw.pkl`` or ``flame2023_Open.pkl``, validated;
  :func:`flame_variant` names the release.
* :func:`load_landmark_embedding` – DECA ``landmark_embedding.npy``, RingNet
  ``flame_static_embedding.pkl`` (+ ``flame_dynamic_embedding.npy``), TF_FLAME
  ``flame_static_embedding_68.pkl``; :func:`load_mediapipe_embedding`,
  :func:`load_flame_masks`, :func:`load_flame_uvs`.
* :func:`build_flame_model` assembles a validated ``HeadModelData``;
  :func:`find_flame_files` / :func:`build_flame_from_folder` pick the files by name.

Landmarks are required by the mfnet format: without an embedding the build fails
and says where to get one (DECA's ``data/landmark_embedding.npy``).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .data import HeadModelData, HeadModelError
from .flame_conventions import (
    add_mask_aliases, check_uvs, check_variant, pick_model_file, pose_correctives, trim_directions)
from .flame_landmarks import (LMK_HINT, LandmarkEmbedding, MediaPipeEmbedding, load_landmark_embedding,
                              load_mediapipe_embedding)
from .safe_pickle import safe_load

__all__ = ["load_flame_pickle", "flame_variant", "LandmarkEmbedding", "load_landmark_embedding",
           "MediaPipeEmbedding", "load_mediapipe_embedding", "load_flame_masks", "load_flame_uvs",
           "FlameFiles", "find_flame_files", "build_flame_model", "build_flame_from_folder"]

PathLike = str | os.PathLike
MODEL_HINT = ("Expected a FLAME model pickle (FLAME 2020 generic_model.pkl, flame2023.pkl or "
              "flame2023_Open.pkl) downloaded from https://flame.is.tue.mpg.de.")
REQUIRED_KEYS = ("v_template", "f", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table")
N_SHAPE_COMPONENTS = 300  # FLAME 2020/2023 shapedirs: [:300] identity, [300:] expression
LICENSE_FLAME = ("FLAME model license: non-commercial scientific research only "
                 "(https://flame.is.tue.mpg.de/modellicense.html); do not redistribute this file")
LICENSE_OPEN = "CC BY 4.0 (FLAME 2023 Open, commercial use allowed with attribution; flame.is.tue.mpg.de)"


def _err(path, problem: str, hint: str = MODEL_HINT) -> HeadModelError:
    return HeadModelError(f"{path}: {problem}. {hint}")


# -------------------------------------------------------------------- model
def load_flame_pickle(path: PathLike) -> dict:
    """Load and check a FLAME model pickle; returns its raw dict (``J_regressor`` may be sparse).

    Checked: the keys of :data:`REQUIRED_KEYS`, V/F/J consistency, face indices,
    posedirs (V, 3, 9(J-1)). ``raw['_globals']`` lists the pickle's globals.
    """
    seen: set[str] = set()
    raw = safe_load(path, hint=MODEL_HINT, globals_seen=seen)
    if not isinstance(raw, dict):
        raise _err(path, f"holds a {type(raw).__name__}, not a FLAME model dict")
    missing = [k for k in REQUIRED_KEYS if k not in raw]
    if missing:
        raise _err(path, f"missing key(s) {', '.join(missing)} (has: {', '.join(sorted(map(str, raw)))})")
    out = dict(raw)
    for key in REQUIRED_KEYS:
        if key != "J_regressor":
            out[key] = np.asarray(raw[key])
    jr = raw["J_regressor"]
    if not hasattr(jr, "toarray"):
        jr = np.asarray(jr)
    out["J_regressor"] = jr
    v, f, sd, pd, w, kt = (out[k] for k in ("v_template", "f", "shapedirs", "posedirs", "weights", "kintree_table"))
    V = v.shape[0] if v.ndim == 2 else -1
    J = kt.shape[1] if kt.ndim == 2 else -1
    checks = [
        (v.ndim == 2 and v.shape[1] == 3 and V > 0, f"v_template must be (V, 3), got {v.shape}"),
        (f.ndim == 2 and f.shape[1] == 3 and np.issubdtype(f.dtype, np.integer), f"f must be (F, 3) integers, got {f.shape} {f.dtype}"),
        (sd.ndim == 3 and sd.shape[:2] == (V, 3), f"shapedirs must be (V={V}, 3, K), got {sd.shape}"),
        (kt.ndim == 2 and kt.shape[0] == 2 and J >= 2, f"kintree_table must be (2, J), got {kt.shape}"),
        (pd.shape == (V, 3, 9 * (J - 1)), f"posedirs must be (V={V}, 3, {9 * (J - 1)}), got {pd.shape}"),
        (jr.shape == (J, V), f"J_regressor must be (J={J}, V={V}), got {jr.shape}"),
        (w.shape == (V, J), f"weights must be (V={V}, J={J}), got {w.shape}"),
    ]
    for ok, problem in checks:
        if not ok:
            raise _err(path, f"wrong shape: {problem}")
    if f.size and (int(f.min()) < 0 or int(f.max()) >= V):
        raise _err(path, f"face indices outside [0, {V})")
    for key in ("v_template", "shapedirs", "posedirs", "weights"):
        if not np.issubdtype(out[key].dtype, np.floating) or not np.isfinite(out[key]).all():
            raise _err(path, f"{key} must hold finite floats (dtype {out[key].dtype})")
    out["_globals"] = sorted(seen)
    return out


def flame_variant(raw: dict, path: PathLike) -> dict:
    """Name the FLAME release: ``{'variant', 'version', 'license', 'evidence'}``."""
    stem = Path(path).stem.lower()
    if "supr_expression_metadata" in raw:
        return {"variant": "FLAME 2023 Open", "version": "2023-open", "license": LICENSE_OPEN,
                "evidence": "supr_expression_metadata key"}
    chumpy = any(g.startswith("chumpy.") for g in raw.get("_globals", ()))
    base = {"license": LICENSE_FLAME}
    if "2023" in stem:
        jaw = " (no jaw)" if "no_jaw" in stem else ""
        return {**base, "variant": f"FLAME 2023{jaw}", "version": "2023", "evidence": "file name"}
    if stem in ("generic_model", "male_model", "female_model") or "2020" in stem:
        return {**base, "variant": "FLAME 2020", "version": "2020",
                "evidence": "file name (FLAME 2017/2019 used the same names)"}
    what = "chumpy pickle" if chumpy else "plain pickle"
    return {**base, "variant": "FLAME (release unknown)", "version": "unknown",
            "evidence": f"{what}, unrecognised file name"}


# ------------------------------------------------------------ masks and UVs
def load_flame_masks(path: PathLike) -> dict[str, np.ndarray]:
    """``FLAME_masks.pkl`` → {region name: int64 vertex indices}."""
    hint = "Expected FLAME_masks.pkl from https://flame.is.tue.mpg.de (FLAME vertex masks)."
    d = safe_load(path, hint=hint)
    if not isinstance(d, dict) or not d:
        raise _err(path, "not a dict of region name → vertex indices", hint)
    masks = {}
    for name, idx in d.items():
        idx = np.asarray(idx)
        if idx.ndim != 1 or not np.issubdtype(idx.dtype, np.integer) or (idx.size and idx.min() < 0):
            raise _err(path, f"mask {name!r} is not a 1-D array of vertex indices ({idx.shape} {idx.dtype})", hint)
        masks[str(name)] = idx.astype(np.int64)
    return masks


def load_flame_uvs(path: PathLike) -> tuple[np.ndarray, np.ndarray]:
    """UVs from DECA ``head_template.obj`` (1-based ``f v/vt``) or ``FLAME_texture.npz``.

    Returns ``(vt (T, 2) float64, ft (F, 3) int64)``, 0-based; v axis up (OBJ convention).
    """
    path = Path(path)
    hint = "Expected DECA's data/head_template.obj or FLAME_texture.npz (vt, ft)."
    if not path.is_file():
        raise _err(path, "no such file", hint)
    if path.suffix.lower() == ".npz":
        try:
            with np.load(path, allow_pickle=False) as z:
                vt, ft = z["vt"], z["ft"]
        except KeyError as exc:
            raise _err(path, f"missing array {exc}", hint) from None
        except (ValueError, OSError, EOFError) as exc:
            raise _err(path, f"not a readable .npz ({exc})", hint) from None
    else:
        vts, fts = [], []
        with open(path, encoding="utf-8", errors="replace") as fh:
            for n, line in enumerate(fh, 1):
                parts = line.split()
                if not parts:
                    continue
                if parts[0] == "f" and len(parts) != 4:
                    raise _err(path, f"line {n}: expected triangles, got {len(parts) - 1} corners", hint)
                try:
                    if parts[0] == "vt":
                        vts.append((float(parts[1]), float(parts[2])))
                    elif parts[0] == "f":
                        idx = [int(c.split("/")[1]) for c in parts[1:]]
                        fts.append([i - 1 if i > 0 else len(vts) + i for i in idx])
                except (IndexError, ValueError):
                    raise _err(path, f"line {n}: cannot parse {line.strip()[:60]!r} (faces need v/vt)", hint) from None
        vt, ft = np.array(vts, dtype=np.float64).reshape(-1, 2), np.array(fts, dtype=np.int64).reshape(-1, 3)
    vt, ft = np.asarray(vt, dtype=np.float64), np.asarray(ft)
    if vt.ndim != 2 or vt.shape[1] != 2 or ft.ndim != 2 or ft.shape[1] != 3 or not ft.size:
        raise _err(path, f"UVs must be vt (T, 2) and ft (F, 3), got {vt.shape} and {ft.shape}", hint)
    if not np.issubdtype(ft.dtype, np.integer) or ft.min() < 0 or ft.max() >= vt.shape[0]:
        raise _err(path, f"ft indexes vt outside [0, {vt.shape[0]})", hint)
    return vt, ft.astype(np.int64)


# ---------------------------------------------------------------- discovery
MODEL_NAMES = ("generic_model.pkl", "flame2023.pkl", "flame2023_Open.pkl", "flame2023_no_jaw.pkl",
               "male_model.pkl", "female_model.pkl")


@dataclass
class FlameFiles:
    model: Path
    landmark_embedding: Path | None = None
    dynamic_embedding: Path | None = None
    mediapipe_embedding: Path | None = None
    masks: Path | None = None
    uvs: Path | None = None


def find_flame_files(folder: PathLike, model: PathLike | None = None) -> FlameFiles:
    """Pick FLAME files by their usual names in ``folder`` or its direct sub-folders (DECA ``data/``);
    ``model``: the model pickle, when the user named it (only its companions are searched)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise HeadModelError(f"{folder}: not a folder")

    def find(*names):
        for name in names:
            for cand in [folder / name, *sorted(folder.glob(f"*/{name}"))]:
                if cand.is_file():
                    return cand
        return None

    if model is None:
        model = pick_model_file({n: p for n in MODEL_NAMES if (p := find(n)) is not None}, folder)
    if model is None:
        raise HeadModelError(f"{folder}: no FLAME model found (looked for {', '.join(MODEL_NAMES)}). {MODEL_HINT}")
    dyn = find("flame_dynamic_embedding.npy")
    lmk = find("landmark_embedding.npy") or (dyn and find("flame_static_embedding.pkl")) \
        or find("flame_static_embedding_68.pkl", "flame_static_embedding.pkl")
    return FlameFiles(Path(model), lmk, dyn, find("mediapipe_landmark_embedding.npz"), find("FLAME_masks.pkl"),
                      find("head_template.obj", "head_template_mesh.obj", "FLAME_texture.npz"))


# -------------------------------------------------------------------- build
def build_flame_model(model_pkl: PathLike, *, landmark_embedding: PathLike | LandmarkEmbedding | None = None,
                      mediapipe_embedding: PathLike | MediaPipeEmbedding | None = None,
                      masks: PathLike | dict | None = None, uvs: PathLike | tuple | None = None,
                      n_shape: int = 300, n_expr: int = 100, name: str | None = None,
                      dynamic_embedding: PathLike | None = None) -> HeadModelData:
    """Assemble a validated :class:`HeadModelData` from FLAME files (units: metres).

    shapedirs are split [:300] identity / [300:] expression (FLAME 2023 Open: the last
    ``supr_expression_metadata['n_expr']``), then truncated to ``n_shape``/``n_expr``
    (trailing all-zero directions dropped, :mod:`.flame_conventions`); posedirs (V, 3, 36) →
    (36, 3V) (smplx layout, column 3·v + k); J_regressor dense; parents = kintree_table[0] with
    parents[0] = -1; FLAME mask names get mfnet aliases. A landmark embedding is required;
    the no-jaw FLAME 2023 variant is refused.
    """
    raw = load_flame_pickle(model_pkl)
    info = flame_variant(raw, model_pkl)
    extra = check_variant(raw, model_pkl)
    if landmark_embedding is None:
        raise HeadModelError(f"{model_pkl}: a landmark embedding is required to build a head model "
                             f"(mfnet fits landmarks). {LMK_HINT}")
    if not isinstance(landmark_embedding, LandmarkEmbedding):
        landmark_embedding = load_landmark_embedding(landmark_embedding, dynamic_embedding)
    shape_all, expr_all = _split_directions(raw, model_pkl, n_shape, n_expr)
    jr = raw["J_regressor"]
    jr = jr.toarray() if hasattr(jr, "toarray") else np.asarray(jr)
    parents = np.asarray(raw["kintree_table"][0]).astype(np.int64)
    parents[0] = -1
    lm = landmark_embedding
    F = raw["f"].shape[0]
    _check_embedding_fits(lm, F, model_pkl)
    files = {"model": Path(model_pkl).name, "landmark_embedding": ", ".join(lm.files) or lm.source}
    kw, masks = _optional_parts(mediapipe_embedding, masks, uvs, F, model_pkl, files)
    if lm.dyn_faces_idx is not None:
        kw.update(dyn_lmk_faces_idx=lm.dyn_faces_idx, dyn_lmk_bary_coords=lm.dyn_bary_coords.astype(np.float32))
    meta = {"name": name or f"flame{info['version']}", "source": "FLAME", "variant": info["variant"],
            "version": info["version"], "variant_evidence": info["evidence"], "license": info["license"],
            "license_note": "landmark embeddings, masks and UVs keep the terms of their own downloads",
            "units": "m", "files": files, "landmarks": lm.source, **extra}
    shapedirs, exprdirs = trim_directions(shape_all, expr_all, n_shape, n_expr, meta)
    data = HeadModelData(
        v_template=raw["v_template"].astype(np.float32), faces=raw["f"].astype(np.int64),
        shapedirs=shapedirs, exprdirs=exprdirs, posedirs=pose_correctives(raw["posedirs"]),
        J_regressor=jr.astype(np.float32), weights=raw["weights"].astype(np.float32), parents=parents,
        lmk_faces_idx=lm.faces_idx, lmk_bary_coords=lm.bary_coords.astype(np.float32),
        masks=add_mask_aliases(masks or {}), meta=meta, **kw)
    return data.validate(str(model_pkl))


def _split_directions(raw: dict, model_pkl, n_shape: int, n_expr: int) -> tuple[np.ndarray, np.ndarray]:
    """shapedirs split into identity and expression directions (FLAME 2023 Open: the last
    ``supr_expression_metadata['n_expr']``, else the first 300 are identity); checks the counts asked for."""
    sd = raw["shapedirs"]
    K = sd.shape[2]
    meta_expr = raw.get("supr_expression_metadata")
    if isinstance(meta_expr, dict):
        n_avail = int(meta_expr.get("n_expr", 100))
        if not 0 < n_avail < K:
            raise _err(model_pkl, f"supr_expression_metadata n_expr={n_avail} does not fit {K} components")
        split = K - n_avail
    else:
        split = N_SHAPE_COMPONENTS
        if K <= split:
            raise _err(model_pkl, f"shapedirs has {K} components, expected {split} shape + expression ones")
    shape_all, expr_all = sd[:, :, :split], sd[:, :, split:]
    if not (0 <= n_shape <= shape_all.shape[2] and 0 <= n_expr <= expr_all.shape[2]):
        raise HeadModelError(f"{model_pkl}: asked for n_shape={n_shape}, n_expr={n_expr} but the file has "
                             f"{shape_all.shape[2]} shape and {expr_all.shape[2]} expression components")
    return shape_all, expr_all


def _check_embedding_fits(lm: LandmarkEmbedding, num_faces: int, model_pkl) -> None:
    for what, idx in (("static", lm.faces_idx), ("dynamic", lm.dyn_faces_idx)):
        if idx is not None and idx.size and int(idx.max()) >= num_faces:
            raise HeadModelError(f"{', '.join(lm.files) or 'landmark embedding'}: {what} landmarks index face "
                                 f"{int(idx.max())} but {Path(model_pkl).name} has {num_faces} faces: the embedding "
                                 f"belongs to another mesh. {LMK_HINT}")


def _optional_parts(mediapipe_embedding, masks, uvs, num_faces: int, model_pkl, files: dict) -> tuple[dict, dict | None]:
    """HeadModelData keywords of the optional files (MediaPipe embedding, UVs) and the masks, each loaded
    from its path when given one (its name added to ``files``)."""
    kw: dict = {}
    if mediapipe_embedding is not None:
        if not isinstance(mediapipe_embedding, MediaPipeEmbedding):
            files["mediapipe_embedding"] = Path(mediapipe_embedding).name
            mediapipe_embedding = load_mediapipe_embedding(mediapipe_embedding)
        kw.update(mp_lmk_faces_idx=mediapipe_embedding.faces_idx, mp_lmk_bary_coords=mediapipe_embedding.bary_coords,
                  mp_lmk_indices=mediapipe_embedding.landmark_indices)
    if masks is not None and not isinstance(masks, dict):
        files["masks"] = Path(masks).name
        masks = load_flame_masks(masks)
    if uvs is not None:
        if not isinstance(uvs, tuple):
            files["uvs"] = Path(uvs).name
            uvs = load_flame_uvs(uvs)
        check_uvs(np.asarray(uvs[1]), num_faces, files.get("uvs", "UVs"), model_pkl)
        kw.update(vt=np.asarray(uvs[0], np.float32), ft=np.asarray(uvs[1], np.int64))
    return kw, masks


def build_flame_from_folder(folder: PathLike, **kwargs) -> HeadModelData:
    """:func:`find_flame_files` then :func:`build_flame_model` (keyword arguments override)."""
    ff = find_flame_files(folder)
    args = {"landmark_embedding": ff.landmark_embedding, "dynamic_embedding": ff.dynamic_embedding,
            "mediapipe_embedding": ff.mediapipe_embedding, "masks": ff.masks, "uvs": ff.uvs}
    args.update(kwargs)
    return build_flame_model(ff.model, **args)
