"""Calibrated rigs: known OpenCV cameras (K, R, t) per view, full perspective.

``cams.json``::

    {"units": "m",                       # or "mm" (translations are converted to metres)
     "cameras": [{"image": "front.jpg",  # matched to the photos by file name (else by order)
                  "K": [[fx, 0, cx], [0, fy, cy], [0, 0, 1]],
                  "R": [[...], [...], [...]], "t": [tx, ty, tz]}, ...]}

OpenCV convention: ``x ~ K (R X + t)`` in original-photo pixels (pixel centres at integers), X in
the rig's world frame. The head then has one world pose (rotation about its root joint +
translation) shared by all views instead of a free weak-perspective camera per view
(:class:`mfnet.fit.rig.CalibratedRig`).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from ..errors import MfnetError
from ..render.cameras import PerspectiveCameras
from ..types import Views


class CameraFileError(MfnetError):
    """A cameras.json file is missing, malformed or does not match the photos."""


def load_cameras_json(path: str | Path, names: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(K (N,3,3), R (N,3,3), t (N,3) metres) in the order of ``names`` (the photos kept)."""
    path = Path(path)
    if not path.exists():
        raise CameraFileError(f"{path}: no such cameras file (see `mfnet reconstruct --help` for its format)")
    try:
        doc = json.loads(path.read_text())
        units = str(doc.get("units", "m"))
        cams = doc["cameras"]
        scale = {"m": 1.0, "mm": 1e-3, "cm": 1e-2}[units]
        entries = [(str(c.get("image", "")), np.asarray(c["K"], np.float64).reshape(3, 3),
                    np.asarray(c["R"], np.float64).reshape(3, 3), np.asarray(c["t"], np.float64).reshape(3) * scale)
                   for c in cams]
    except (ValueError, KeyError, TypeError) as exc:
        raise CameraFileError(f"{path}: not a valid cameras file ({exc!r}); expected "
                              '{"units": "m", "cameras": [{"image": ..., "K": 3x3, "R": 3x3, "t": [3]}, ...]}') from None
    by_name = {Path(e[0]).name: e for e in entries if e[0]}
    picked = []
    for i, n in enumerate(names):
        e = by_name.get(Path(n).name)
        if e is None:
            if len(entries) != len(names):
                raise CameraFileError(f"{path}: no camera for {Path(n).name} and {len(entries)} cameras for "
                                      f"{len(names)} photos: name each camera's image, or list one per photo in order")
            e = entries[i]
        picked.append(e)
    for _, _, R, _ in picked:
        if not np.allclose(R @ R.T, np.eye(3), atol=1e-4) or np.linalg.det(R) < 0:
            raise CameraFileError(f"{path}: a camera's R is not a rotation matrix")
    return (np.stack([p[1] for p in picked]), np.stack([p[2] for p in picked]), np.stack([p[3] for p in picked]))


def crop_cameras(K: np.ndarray, R: np.ndarray, t: np.ndarray, views: Views) -> PerspectiveCameras:
    """The rig's cameras expressed in each view's crop (renderer pixels)."""
    to_crop = np.stack([np.linalg.inv(np.vstack([m, [0, 0, 1]])) for m in views.crop_to_original])
    return PerspectiveCameras(torch.as_tensor(to_crop @ K), torch.as_tensor(R), torch.as_tensor(t))
