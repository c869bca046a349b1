"""Self-supervised multi-view training of MFNet: config (YAML), losses (eq. 11), loop (DDP, AMP,
exact resume), logging and held-out synthetic evaluation.

Names load lazily, so that the command line does not import torch to print its help.
"""
from __future__ import annotations

import importlib

_WHERE = {"ConfigError": "config", "TrainConfig": "config", "config_from_dict": "config", "dump_config": "config",
          "load_config": "config", "evaluate_synthetic": "evaluate", "TrainLoss": "losses", "TrainError": "trainer",
          "build_dataset": "trainer", "camera_prior": "trainer", "train": "trainer"}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
