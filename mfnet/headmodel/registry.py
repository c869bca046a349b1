"""Where head models live: the user data dir, name resolution, reading and saving model files.

Installing a model (conversion or FLAME import plus the detector calibration of its landmarks, and
the open model's install on first use) is :mod:`mfnet.calibrate.install`, above detection and
rendering. Converted models are ``<models_dir>/<name>.npz`` in the format of :mod:`mfnet.headmodel.data`.
``models_dir()`` is ``$MFNET_HOME/models``, else ``$XDG_DATA_HOME/mfnet/models``, else
``~/.local/share/mfnet/models``.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from ..errors import MfnetError
from .data import HeadModelData, HeadModelError

DEFAULT_MODEL = "ict-facekit"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def user_dir() -> Path:
    if os.environ.get("MFNET_HOME"):
        return Path(os.environ["MFNET_HOME"]).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "mfnet"


def models_dir() -> Path:
    return user_dir() / "models"


def ict_source_candidates() -> list[Path]:
    """Places a raw ICT-FaceKit copy may be found, in order."""
    cands = []
    if os.environ.get("MFNET_ICT_DIR"):
        cands.append(Path(os.environ["MFNET_ICT_DIR"]).expanduser())
    cands.append(user_dir() / "ict-facekit-src")
    repo_root = Path(__file__).resolve().parents[2]
    cands += [repo_root.parent / "shared" / "data" / "ict-facekit", Path.cwd().parent / "shared" / "data" / "ict-facekit"]
    return cands


def _check_name(name: str) -> str:
    if not _NAME_RE.match(name):
        raise MfnetError(f"invalid model name {name!r}: use letters, digits, '.', '_' or '-'")
    return name


def list_models() -> list[dict]:
    """Installed models with their metadata (name, path, counts)."""
    out = []
    d = models_dir()
    for p in sorted(d.glob("*.npz")) if d.exists() else []:
        try:
            meta = HeadModelData.read_meta(p)
        except HeadModelError as exc:
            meta = {"error": str(exc)}
        out.append({"name": p.stem, "path": str(p), **meta})
    return out


def find_ict_source() -> Path | None:
    """The first local ICT-FaceKit copy among :func:`ict_source_candidates`, if any."""
    for cand in ict_source_candidates():
        if (cand / "ict_facekit_vertices.npz").exists() or (cand / "FaceXModel").exists() \
                or (cand / "identity000.obj").exists():
            return cand
    return None


def save_model(data: HeadModelData, name: str) -> Path:
    """Store ``data`` as the installed model ``name``."""
    dest = models_dir() / f"{_check_name(name)}.npz"
    data.save(dest)
    return dest


def read_model_source(name: str, path: str | Path) -> tuple[HeadModelData, bool]:
    """The model in an mfnet ``.npz``, a FLAME pickle, or a folder holding FLAME files, named
    ``name``; and whether it was built from FLAME files. Installing it (landmark calibration
    included) is :func:`mfnet.calibrate.install.add_model`."""
    _check_name(name)
    path = Path(path).expanduser()
    if not path.exists():
        raise MfnetError(f"{path}: no such file or folder")
    if path.suffix == ".npz":
        data = HeadModelData.load(path)
        data.meta["name"] = name
        return data, False
    from .flame import build_flame_model, find_flame_files

    if path.is_dir():
        files = find_flame_files(path)
        model_pkl = files.model
    else:  # a model pickle: its companions (embeddings, masks, UVs) are looked up beside it
        files, model_pkl = find_flame_files(path.parent, model=path), path
    data = build_flame_model(model_pkl, name=name, landmark_embedding=files.landmark_embedding,
                             dynamic_embedding=files.dynamic_embedding, mediapipe_embedding=files.mediapipe_embedding,
                             masks=files.masks, uvs=files.uvs)
    return data, True


def resolve_model_path(name_or_path: str | Path | None = None) -> Path:
    """A model name (installed) or a path to an ``.npz``. Nothing is installed here: the loaders of
    :mod:`mfnet.calibrate.install` install the open model on first use."""
    name = str(name_or_path) if name_or_path is not None else DEFAULT_MODEL
    p = Path(name).expanduser()
    if p.suffix == ".npz" or p.exists():
        if not p.exists():
            raise MfnetError(f"{p}: no such head-model file")
        return p
    installed = models_dir() / f"{name}.npz"
    if installed.exists():
        return installed
    if name == DEFAULT_MODEL:
        raise MfnetError(
            "the open head model (ICT-FaceKit) is not installed. Run `mfnet models fetch ict-facekit` "
            "(downloads it; needs internet) or `mfnet models fetch ict-facekit --from PATH` with a local copy "
            "of the kit, or set MFNET_ICT_DIR to that folder.")
    known = ", ".join(m["name"] for m in list_models()) or "none"
    raise MfnetError(f"unknown head model {name!r} (installed: {known}). Add one with `mfnet models add NAME PATH`.")


def load_head_model(name_or_path: str | Path | None = None, **kwargs):
    """Resolve and build a :class:`~mfnet.headmodel.model.HeadModel`."""
    from .model import HeadModel

    return HeadModel(HeadModelData.load(resolve_model_path(name_or_path)), **kwargs)


def remove_model(name: str) -> None:
    p = models_dir() / f"{_check_name(name)}.npz"
    if not p.exists():
        raise MfnetError(f"no installed model named {name!r}")
    p.unlink()
