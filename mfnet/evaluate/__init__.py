"""Benchmark evaluation: FaceScape (CD / MNE / CR) and NoW (scan-to-mesh), plus their exports.

Modules (imported lazily, so ``import mfnet.evaluate`` stays cheap):

* :mod:`.facescape` -- :func:`evaluate_wild`, :func:`evaluate_lab`,
  :func:`cylinder_metrics`, :class:`FaceScapeMetrics`, :func:`summarise`.
* :mod:`.now` -- :func:`evaluate_now`, :func:`crop_scan`, :func:`align_landmarks`,
  :func:`refine_alignment`, :func:`now_statistics`, :func:`cumulative_curve`,
  :func:`plot_cumulative`.
* :mod:`.files` -- folder layouts, readers, :func:`export_now_landmarks`,
  :func:`export_now_prediction`, :func:`export_facescape_prediction`,
  :class:`EvaluationError`.
* :mod:`.geometry` / :mod:`.cylinder` -- exact closest points, Umeyama,
  cylindrical ray casting and grid distances.
* the command line (``mfnet evaluate facescape|now``, ``mfnet bench``) is :mod:`mfnet.cli`.
* :mod:`.synthetic` -- vertex error against same-topology synthetic ground truth.
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "facescape": ("FaceScapeMetrics", "evaluate_wild", "evaluate_lab", "cylinder_metrics", "summarise",
                  "wild_angle_bin", "PUPIL_DISTANCE_MM"),
    "now": ("NowResult", "NowAlignment", "evaluate_now", "crop_scan", "align_landmarks", "refine_alignment",
            "now_statistics", "cumulative_curve", "plot_cumulative"),
    "files": ("EvaluationError", "export_now_landmarks", "export_now_prediction", "export_facescape_prediction",
              "load_mesh", "load_landmarks", "load_facescape_params"),
    "geometry": ("TriangleIndex", "closest_points", "umeyama"),
}
_WHERE = {name: mod for mod, names in _EXPORTS.items() for name in names}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
