"""Installing head models, with their detector-calibrated landmarks, and loading them for fitting.

:mod:`mfnet.headmodel.registry` only finds, reads and writes model files. Installing a model also
calibrates its landmark embedding to the detector (:mod:`mfnet.calibrate.embedding`: renders and
detections, so it sits above detection and rendering), and happens here, explicitly:

* ``mfnet models fetch`` / ``convert-ict`` (:func:`install_ict`) and ``mfnet models add``
  (:func:`add_model`, FLAME files) calibrate for MediaPipe before saving;
* :func:`model_path` / :func:`load_model`, the loaders of everything that fits, install the open
  model on first use from a local ICT-FaceKit copy (converted and calibrated, with a progress line);
* ``mfnet models calibrate`` (:func:`calibrate_model`) recalibrates an installed model.

A failed calibration (detector missing) keeps the model's own landmarks, with a warning.
"""
from __future__ import annotations

import logging
from pathlib import Path

from ..errors import MfnetError
from ..headmodel import registry
from ..headmodel.data import HeadModelData
from ..headmodel.registry import DEFAULT_MODEL

log = logging.getLogger(__name__)


def try_calibrate(data: HeadModelData, backend: str = "mediapipe") -> bool:
    """Add a detector-calibrated landmark embedding; on failure log why and keep the model's own."""
    from .embedding import add_calibrated_embedding

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
    from .embedding import add_calibrated_embedding

    path = model_path(name)
    data = HeadModelData.load(path)
    add_calibrated_embedding(data, backend)
    if dense:
        add_calibrated_embedding(data, backend, dense=True)
    data.save(path)
    return path


def install_ict(src: Path, name: str = DEFAULT_MODEL, calibrate: bool = True, **convert_kwargs) -> Path:
    """Convert an ICT-FaceKit copy (repacked or original) and store it as ``name`` (with a
    MediaPipe-calibrated landmark embedding unless ``calibrate=False``)."""
    from ..headmodel.ict import convert_ict

    data = convert_ict(src, name=name, **convert_kwargs)
    if calibrate:
        try_calibrate(data, "mediapipe")
    dest = registry.save_model(data, name)
    log.info("converted ICT-FaceKit from %s -> %s (%d vertices, %d faces)", src, dest, data.num_vertices, data.num_faces)
    return dest


def add_model(name: str, path: str | Path) -> Path:
    """Install a model from an mfnet ``.npz`` (as is), a FLAME pickle or a folder holding FLAME files
    (whose landmarks are then calibrated for MediaPipe: FLAME files carry no detector-calibrated ones)."""
    data, is_flame = registry.read_model_source(name, path)
    if is_flame:
        try_calibrate(data, "mediapipe")
    return registry.save_model(data, name)


def model_path(name_or_path: str | Path | None = None) -> Path:
    """:func:`~mfnet.headmodel.registry.resolve_model_path`; the open model, when it is not installed
    yet, is first installed (converted and calibrated) from a local ICT-FaceKit copy if one is found."""
    try:
        return registry.resolve_model_path(name_or_path)
    except MfnetError:
        src = registry.find_ict_source() if str(name_or_path or DEFAULT_MODEL) == DEFAULT_MODEL else None
        if src is None:
            raise
    log.info("installing the open head model %s from %s (first use)...", DEFAULT_MODEL, src)
    return install_ict(src)


def load_model(name_or_path: str | Path | None = None, **kwargs):
    """A :class:`~mfnet.headmodel.model.HeadModel` to fit with: :func:`model_path`, then built."""
    from ..headmodel.model import HeadModel

    return HeadModel(HeadModelData.load(model_path(name_or_path)), **kwargs)
