"""dlib backend: HOG frontal face detector + the iBUG-68 shape predictor.

The predictor file ships in the ``face-recognition-models`` package; it is
located with :func:`importlib.util.find_spec` (importing that package needs
``pkg_resources``, which current setuptools no longer provides). Set
``MFNET_DLIB_PREDICTOR`` to use another ``shape_predictor_68_face_landmarks.dat``.

The HOG detector finds faces of >= ~80 px at its native scale, so images
whose short side is < 480 px are upsampled once (>= ~40 px faces), < 240 px
twice, and larger images that gave nothing are retried upsampled once. Detection runs on a copy
whose long side is <= ``max_detect_side`` (HOG is slow on big images); the
68 points are then predicted at full resolution. Weak on strong profiles.
"""
from __future__ import annotations

import importlib.util
import os
import threading
from pathlib import Path

import cv2
import numpy as np

from .errors import DetectorUnavailableError
from .landmarks import Landmarks2D
from .visibility import visibility_from_yaw, yaw_from_points

PREDICTOR_NAME = "shape_predictor_68_face_landmarks.dat"
_INSTALL_HINT = "install it with `pip install dlib-bin face-recognition-models`, or use backend='mediapipe'"


def find_predictor() -> Path:
    """Path of the 68-point shape predictor (``MFNET_DLIB_PREDICTOR`` or face-recognition-models)."""
    env = os.environ.get("MFNET_DLIB_PREDICTOR")
    if env:
        p = Path(env)
        if not p.is_file():
            raise DetectorUnavailableError(
                f"MFNET_DLIB_PREDICTOR points to {p}, which is not a file: point it to {PREDICTOR_NAME} or unset it"
            )
        return p
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise DetectorUnavailableError(f"the dlib landmark model ({PREDICTOR_NAME}) is not installed: {_INSTALL_HINT}")
    for root in spec.submodule_search_locations:
        p = Path(root) / "models" / PREDICTOR_NAME
        if p.is_file():
            return p
    raise DetectorUnavailableError(
        f"{PREDICTOR_NAME} is missing from the face-recognition-models package: reinstall it ({_INSTALL_HINT})"
    )


class DlibDetector:
    """Detect faces (HOG) and their iBUG-68 landmarks (ERT shape predictor).

    Args:
        predictor_path: a ``shape_predictor_68_face_landmarks.dat``; default :func:`find_predictor`.
        upsample: HOG upsampling passes; ``None`` = automatic (see module doc).
        min_score: keep HOG detections scoring above this (on the test photo, the
            face scores 0.7-1.5 and false hits on clothing 0.0-0.12).
        max_detect_side: long-side limit of the image the HOG detector sees.
    """

    name = "dlib"

    def __init__(
        self,
        predictor_path: str | os.PathLike | None = None,
        upsample: int | None = None,
        min_score: float = 0.3,
        max_detect_side: int = 1280,
    ) -> None:
        self.predictor_path = Path(predictor_path) if predictor_path is not None else None
        self.upsample = upsample
        self.min_score = float(min_score)
        self.max_detect_side = int(max_detect_side)
        self._detector = None
        self._predictor = None
        self._lock = threading.Lock()

    def _ensure(self) -> None:
        if self._predictor is not None:
            return
        try:
            import dlib
        except Exception as exc:
            raise DetectorUnavailableError(f"dlib cannot be imported ({exc}): {_INSTALL_HINT}") from None
        path = self.predictor_path or find_predictor()
        try:
            self._predictor = dlib.shape_predictor(str(path))
        except RuntimeError as exc:
            raise DetectorUnavailableError(f"cannot load the dlib landmark model {path} ({exc}): {_INSTALL_HINT}") from None
        self._detector = dlib.get_frontal_face_detector()
        self._dlib = dlib

    def warm_up(self) -> "DlibDetector":
        """Load the models (~0.5 s for the predictor)."""
        with self._lock:
            self._ensure()
        return self

    def _boxes(self, image: np.ndarray) -> list[tuple[np.ndarray, float]]:
        """HOG boxes (x0, y0, x1, y1 in ``image`` pixels, score), detection on a size-limited copy."""
        h, w = image.shape[:2]
        f = min(1.0, self.max_detect_side / max(h, w))
        small = image if f == 1.0 else cv2.resize(image, (round(w * f), round(h * f)), interpolation=cv2.INTER_AREA)
        short = min(small.shape[:2])
        ups = [self.upsample] if self.upsample is not None else ([2] if short < 240 else [1] if short < 480 else [0, 1])
        for up in ups:
            rects, scores, _ = self._detector.run(small, up, self.min_score)
            if len(rects):
                break
        sx, sy = w / small.shape[1], h / small.shape[0]
        return [
            (np.array([r.left() * sx, r.top() * sy, (r.right() + 1) * sx - 1, (r.bottom() + 1) * sy - 1], np.float32), float(s))
            for r, s in zip(rects, scores)
        ]

    def detect(self, image: np.ndarray) -> list[Landmarks2D]:
        """All faces in an RGB uint8 image, largest first; coordinates in that image's pixels."""
        img = np.asarray(image)
        if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
            raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got {img.dtype} {img.shape}")
        img = np.ascontiguousarray(img)
        h, w = img.shape[:2]
        faces = []
        with self._lock:
            self._ensure()
            for box, score in self._boxes(img):
                rect = self._dlib.rectangle(*(int(round(v)) for v in box))
                shape = self._predictor(img, rect)
                pts = np.array([(p.x, p.y) for p in shape.parts()], np.float32)
                yaw = yaw_from_points(pts)
                faces.append(
                    Landmarks2D(
                        points=pts,
                        visibility=visibility_from_yaw(yaw),
                        bbox=box,
                        image_size=(h, w),
                        backend=self.name,
                        score=score,
                        yaw_deg=float(np.degrees(yaw)),
                    )
                )
        faces.sort(key=lambda f: f.face_size, reverse=True)
        return faces

    def __repr__(self) -> str:
        return f"DlibDetector(upsample={self.upsample}, loaded={self._predictor is not None})"
