"""Detector-calibrated landmark embeddings (:mod:`.embedding`: renders of the model, detections) and
the installation and loading of head models with them (:mod:`.install`).

Above detection and rendering in the layer order; names load lazily.
"""
from __future__ import annotations

import importlib

_WHERE = {"calibrate_embedding": "embedding", "add_calibrated_embedding": "embedding",
          "try_calibrate": "install", "calibrate_model": "install", "install_ict": "install", "add_model": "install",
          "model_path": "install", "load_model": "install"}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
