"""Head models in the FLAME layout: file format, LBS layer, loaders and registry.

Names load lazily (``from mfnet.headmodel import load_head_model`` imports torch only then), so the
command line's help and argument checks stay fast.
"""
from __future__ import annotations

import importlib

_WHERE = {"HeadModelData": "data", "HeadModelError": "data", "HeadModel": "model", "HeadOutput": "model",
          "load_head_model": "registry", "resolve_model_path": "registry"}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
