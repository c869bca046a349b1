"""Front door of landmark detection: one face per photo, in original-photo pixels.

>>> from mfnet.utils.images import load_views
>>> from mfnet.detect import detect_landmarks
>>> views = load_views(["a.jpg", "b.jpg"])
>>> lms = [detect_landmarks(v) for v in views]          # doctest: +SKIP

Detectors are created once per process and backend (:func:`get_detector`) and
reused: the first call pays the model loading (MediaPipe ~0.3 s, dlib ~0.5 s).
"""
from __future__ import annotations

import os
import threading
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Iterable, Protocol

import numpy as np

from mfnet.utils.images import ImageView, load_view

from .errors import DetectionWarning, NoFaceError
from .landmarks import Landmarks2D

BACKENDS = ("mediapipe", "dlib")


class Detector(Protocol):
    """What a backend provides."""

    name: str

    def detect(self, image: np.ndarray) -> list[Landmarks2D]: ...

    def warm_up(self) -> "Detector": ...


_DETECTORS: dict[str, Detector] = {}
_DETECTORS_LOCK = threading.Lock()


def make_detector(backend: str = "mediapipe", **kwargs) -> Detector:
    """A new detector for ``backend`` ('mediapipe' or 'dlib'); kwargs go to its constructor."""
    if backend == "mediapipe":
        from .mediapipe_backend import MediaPipeDetector

        return MediaPipeDetector(**kwargs)
    if backend == "dlib":
        from .dlib_backend import DlibDetector

        return DlibDetector(**kwargs)
    raise ValueError(f"unknown landmark backend {backend!r}: use one of {', '.join(BACKENDS)}")


def get_detector(backend: str = "mediapipe") -> Detector:
    """The process-wide shared detector for ``backend`` (created and warmed up on first use)."""
    with _DETECTORS_LOCK:
        det = _DETECTORS.get(backend)
        if det is None:
            det = make_detector(backend)
            det.warm_up()
            _DETECTORS[backend] = det
        return det


def _as_view(image: ImageView | np.ndarray | str | os.PathLike) -> ImageView:
    if isinstance(image, ImageView):
        return image
    if isinstance(image, np.ndarray):
        return ImageView.from_array(image)
    return load_view(Path(image))


def detect_faces(
    image: ImageView | np.ndarray | str | os.PathLike,
    backend: str = "mediapipe",
    *,
    detector: Detector | None = None,
) -> list[Landmarks2D]:
    """All faces found in a photo, largest first, in ORIGINAL-photo pixels (maybe empty)."""
    view = _as_view(image)
    det = detector if detector is not None else get_detector(backend)
    faces = det.detect(view.image)
    sx, sy = view.scale_xy
    out = []
    for f in faces:
        if (sx, sy) != (1.0, 1.0) or f.image_size != view.original_size:
            f = f.rescaled(sx, sy, view.original_size)
        out.append(replace(f, source=view.name))
    return out


def detect_landmarks(
    image: ImageView | np.ndarray | str | os.PathLike,
    backend: str = "mediapipe",
    *,
    detector: Detector | None = None,
) -> Landmarks2D:
    """The iBUG-68 landmarks of the (largest) face in a photo, in original-photo pixels.

    Args:
        image: an :class:`~mfnet.utils.images.ImageView`, a file path, or an RGB uint8 array.
        backend: 'mediapipe' (default; 478-point mesh kept in ``mesh478``) or 'dlib'.
        detector: use this detector instead of the shared one for ``backend``.

    Raises :class:`~mfnet.detect.errors.NoFaceError` when no face is found;
    warns (:class:`~mfnet.detect.errors.DetectionWarning`) and keeps the
    largest face when there are several.
    """
    view = _as_view(image)
    faces = detect_faces(view, backend, detector=detector)
    if not faces:
        raise NoFaceError(
            f"no face found in {view.name}: use a photo where the face is visible and at least ~100 px wide"
        )
    if len(faces) > 1:
        sizes = ", ".join(f"{f.face_size:.0f}" for f in faces)
        warnings.warn(
            f"{len(faces)} faces found in {view.name} (sizes {sizes} px): using the largest; "
            f"crop the photo to one person to avoid this",
            DetectionWarning,
            stacklevel=2,
        )
    return faces[0]


def detect_views(
    views: Iterable[ImageView | np.ndarray | str | os.PathLike],
    backend: str = "mediapipe",
    *,
    detector: Detector | None = None,
) -> list[Landmarks2D]:
    """:func:`detect_landmarks` on each view (raises on the first photo without a face)."""
    det = detector if detector is not None else get_detector(backend)
    return [detect_landmarks(v, backend, detector=det) for v in views]
