"""Where head models live: the user data dir, name resolution, the built-in open model.

Converted models are ``<models_dir>/<name>.npz`` in the format of :mod:`mfnet.headmodel.data`.
``models_dir()`` is ``$MFNET_HOME/models``, else ``$XDG_DATA_HOME/mfnet/models``, else
``~/.local/share/mfnet/models``.
"""
from __future__ import annotations

import logging
import os
import re
from pathlib import Path

from ..errors import MfnetError
from .data import HeadModelData, HeadModelError

log = logging.getLogger(__name__)
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


def try_calibrate(data: HeadModelData, backend: str = "mediapipe") -> bool:
    """Add a detector-calibrated landmark embedding; on failure log why and keep the model's own."""
    from .calibrate import add_calibrated_embedding

    log.info("calibrating %s landmarks on renders of %s (once, a few seconds)...", backend, data.name)
    try:
        add_calibrated_embedding(data, backend)
        return True
    except Exception as exc:  # detector missing or failing: the model still works with its own landmarks
        log.warning("%s landmark calibration skipped (%s); the model's own landmarks will be used", backend, exc)
        return False


def calibrate_model(name: str, backend: str = "mediapipe", dense: bool = False) -> Path:
    """Calibrate an installed model's landmarks for ``backend`` (and with ``dense`` MediaPipe's
    478-point mesh) and save it back."""
    from .calibrate import add_calibrated_embedding

    path = resolve_model_path(name)
    data = HeadModelData.load(path)
    add_calibrated_embedding(data, backend)
    if dense:
        add_calibrated_embedding(data, backend, dense=True)
    data.save(path)
    return path


def install_ict(src: Path, name: str = DEFAULT_MODEL, calibrate: bool = True, **convert_kwargs) -> Path:
    """Convert an ICT-FaceKit copy (repacked or original) and store it as ``name`` (with a
    MediaPipe-calibrated landmark embedding unless ``calibrate=False``)."""
    from .ict import convert_ict

    data = convert_ict(src, name=name, **convert_kwargs)
    if calibrate:
        try_calibrate(data, "mediapipe")
    dest = models_dir() / f"{_check_name(name)}.npz"
    data.save(dest)
    log.info("converted ICT-FaceKit from %s -> %s (%d vertices, %d faces)", src, dest, data.num_vertices, data.num_faces)
    return dest


def add_model(name: str, path: str | Path) -> Path:
    """Install a model from an mfnet ``.npz``, a FLAME pickle, or a folder holding FLAME files."""
    _check_name(name)
    path = Path(path).expanduser()
    if not path.exists():
        raise MfnetError(f"{path}: no such file or folder")
    dest = models_dir() / f"{name}.npz"
    if path.suffix == ".npz":
        data = HeadModelData.load(path)
        data.meta["name"] = name
        data.save(dest)
        return dest
    from .flame import build_flame_model, find_flame_files

    if path.is_dir():
        files = find_flame_files(path)
        model_pkl = files.model
    else:  # a model pickle: its companions (embeddings, masks, UVs) are looked up beside it
        files, model_pkl = find_flame_files(path.parent, model=path), path
    data = build_flame_model(model_pkl, name=name, landmark_embedding=files.landmark_embedding,
                             dynamic_embedding=files.dynamic_embedding, mediapipe_embedding=files.mediapipe_embedding,
                             masks=files.masks, uvs=files.uvs)
    try_calibrate(data, "mediapipe")  # FLAME files carry no detector-calibrated landmarks (as install_ict)
    data.save(dest)
    return dest


def resolve_model_path(name_or_path: str | Path | None = None) -> Path:
    """A model name (installed) or a path to an ``.npz``. The default open model is converted
    on first use from a local ICT-FaceKit copy when one is found."""
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
        for cand in ict_source_candidates():
            if (cand / "ict_facekit_vertices.npz").exists() or (cand / "FaceXModel").exists() \
                    or (cand / "identity000.obj").exists():
                return install_ict(cand)
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
