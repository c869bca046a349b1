"""``flame_params.npz``: a reconstruction with a FLAME model, in the layout FLAME trackers write and read.

The layout is the per-frame FLAME parameter file of the VHAP tracker, read as is by
GaussianAvatars-style avatar pipelines (``np.load`` then the keys below; a time axis ``T`` first, here
``T = 1``: one moment), plus the per-view OpenCV cameras. Every array is numeric (``np.load`` needs no
``allow_pickle``); all float32 except ``image_size``.

============= ========= ===================================================================
key           shape     meaning
============= ========= ===================================================================
shape         (S,)      identity code, the model file's full length (FLAME 2020/2023: 300);
                        zeros past the components mfnet fitted
expr          (1, E)    expression code, the file's full length (FLAME: 100)
rotation      (1, 3)    global rotation (axis-angle, radians) about FLAME's root joint: zero,
                        the head is canonical (as ``mesh.obj``); the cameras hold each view
neck_pose     (1, 3)    axis-angle
jaw_pose      (1, 3)    axis-angle
eyes_pose     (1, 6)    left eye then right eye, axis-angle
translation   (1, 3)    metres, added last: zero
static_offset (1, V, 3) per-vertex offsets added to the template (VHAP's key): zero
K             (N, 3, 3) per view: OpenCV intrinsics, original-photo pixels, pixel centres at
                        integers
R             (N, 3, 3) world (FLAME model space, metres, y up, face towards +z) to OpenCV
                        camera (y down, looking along +z): ``x_cam = R X + t``
t             (N, 3)    metres
image_size    (N, 2)    int32 (width, height) of each photo in pixels
============= ========= ===================================================================

The 15 pose values in FLAME's order (smplx ``full_pose``) are ``rotation, neck_pose, jaw_pose,
eyes_pose``. FLAME(shape, expr, that pose) + translation is the mesh of ``mesh.obj``; ``x ~ K (R X + t)``
projects it into each photo (the same cameras as ``params.npz`` ``K``/``R``/``t``). Written only for
models built from FLAME files (``meta['source'] == 'FLAME'``), whose codes other FLAME tools can use.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..utils.io import atomic_path

__all__ = ["FLAME_PARAMS", "is_flame_model", "flame_params_arrays", "write_flame_params"]

FLAME_PARAMS = "flame_params.npz"


def is_flame_model(meta: dict | None) -> bool:
    return bool(meta) and str(meta.get("source", "")) == "FLAME"


def _np(x) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x, np.float64)


def _padded(code, length: int) -> np.ndarray:
    code = _np(code).reshape(-1)
    out = np.zeros(max(length, code.size), np.float32)
    out[:code.size] = code
    return out


def flame_params_arrays(rec, K, R, t, image_sizes, meta: dict) -> dict[str, np.ndarray]:
    """The arrays of ``flame_params.npz`` for reconstruction ``rec`` and its exported cameras."""
    counts = meta.get("file_components", {})
    head = rec.head
    zeros3 = np.zeros(3)
    arrays = {
        "shape": _padded(head.shape, int(counts.get("shape", 0))),
        "expr": _padded(head.expression, int(counts.get("expression", 0)))[None],
        "rotation": np.zeros((1, 3), np.float32),
        "neck_pose": _np(head.neck if head.neck is not None else zeros3).reshape(1, 3).astype(np.float32),
        "jaw_pose": _np(head.jaw).reshape(1, 3).astype(np.float32),
        "eyes_pose": _np(head.eyes if head.eyes is not None else np.zeros(6)).reshape(1, 6).astype(np.float32),
        "translation": np.zeros((1, 3), np.float32),
        "static_offset": np.zeros((1, len(rec.vertices), 3), np.float32),
        "K": np.asarray(K, np.float32), "R": np.asarray(R, np.float32), "t": np.asarray(t, np.float32),
    }
    if image_sizes is not None:
        arrays["image_size"] = np.array([(int(w), int(h)) for h, w in image_sizes], np.int32).reshape(-1, 2)
    return arrays


def write_flame_params(path, rec, K, R, t, image_sizes, meta: dict) -> Path:
    """Write ``flame_params.npz`` (atomically); ``image_sizes``: N ``(height, width)`` or None."""
    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **flame_params_arrays(rec, K, R, t, image_sizes, meta))
    return path
