"""MediaPipe face-mesh backend: 478 mesh points -> iBUG-68 landmarks.

Uses the legacy ``mediapipe.solutions`` API of mediapipe 0.10.21 (the last
release whose wheel ships the models; see shared/reference/dependencies.md):

1. ``FaceMesh(static_image_mode=True, refine_landmarks=True)`` on the whole
   image. Its internal detector is the short-range model, which misses faces
   smaller than ~15% of the image;
2. the full-range ``FaceDetection(model_selection=1)`` finds such faces (down
   to ~6% of the image); each one not already meshed is meshed again in a
   square window around it (so ``detect`` returns all faces);
3. if still nothing is found (hard profiles, faces touching the border, tiny
   images), one retry on an upscaled, padded copy, then (images >= 1024 px)
   the full-range detector on overlapping 1024-px tiles (faces down to
   ~70 px; ~5 ms per tile, e.g. 0.3 s for a 4096 x 3072 photo).

The graphs are created lazily on first use and reused; calls are serialised
with a lock (MediaPipe graphs are not thread-safe).
"""
from __future__ import annotations

import contextlib
import os
import threading

import cv2
import numpy as np

from .errors import DetectorUnavailableError
from .landmarks import MP_TO_IBUG68, Landmarks2D
from .visibility import visibility_from_yaw, yaw_from_mesh

_INSTALL_HINT = (
    "install it with `pip install --no-deps mediapipe==0.10.21 absl-py attrs flatbuffers "
    "'protobuf>=4.25.3,<5' matplotlib` (see scripts/setup.sh), or use backend='dlib'"
)


def _check_image(image: np.ndarray) -> np.ndarray:
    img = np.asarray(image)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got {img.dtype} {img.shape}")
    return np.ascontiguousarray(img)


def _window(image: np.ndarray, x0: int, y0: int, size: int, scale: float = 1.0) -> np.ndarray:
    """Square ``size``-px window at integer offset (x0, y0), zero-padded outside, resized by ``scale``."""
    out = max(1, round(size * scale))
    s = out / size
    M = np.array([[s, 0, s * (-x0 + 0.5) - 0.5], [0, s, s * (-y0 + 0.5) - 0.5]], np.float64)
    interp = cv2.INTER_NEAREST if s == 1.0 else (cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    if s < 1:  # warpAffine does not low-pass: shrink through resize instead
        return cv2.resize(_window(image, x0, y0, size), (out, out), interpolation=interp)
    return cv2.warpAffine(image, M, (out, out), flags=interp, borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))


def _covered(box: np.ndarray, faces: list[Landmarks2D]) -> bool:
    """Whether the centre of ``box`` lies inside the box of one of ``faces``."""
    c = 0.5 * (box[:2] + box[2:])
    return any(f.bbox[0] <= c[0] <= f.bbox[2] and f.bbox[1] <= c[1] <= f.bbox[3] for f in faces)


class MediaPipeDetector:
    """Detect faces and their iBUG-68 landmarks with MediaPipe face mesh.

    Args:
        max_num_faces: faces meshed per pass.
        min_detection_confidence: threshold of both MediaPipe face detectors.
        search_small_faces: run the full-range detector to find faces the
            face-mesh pass missed (costs ~5-20 ms).
        retry: on no face at all, retry once on an upscaled / padded copy.
    """

    name = "mediapipe"

    def __init__(
        self,
        max_num_faces: int = 4,
        min_detection_confidence: float = 0.5,
        search_small_faces: bool = True,
        retry: bool = True,
    ) -> None:
        self.max_num_faces = int(max_num_faces)
        self.min_detection_confidence = float(min_detection_confidence)
        self.search_small_faces = bool(search_small_faces)
        self.retry = bool(retry)
        self._mesh = None
        self._finder = None
        self._lock = threading.Lock()

    # ------------------------------------------------------------ lifecycle
    def _ensure(self) -> None:
        with _quiet_native_logs():
            self._create()

    def _create(self) -> None:
        if self._mesh is not None:
            return
        try:
            from mediapipe.python.solutions import face_detection, face_mesh
        except Exception as exc:  # ImportError, or protobuf/numpy clashes at import time
            raise DetectorUnavailableError(f"the MediaPipe face detector cannot be loaded ({exc}): {_INSTALL_HINT}") from None
        self._mesh = face_mesh.FaceMesh(
            static_image_mode=True,
            refine_landmarks=True,
            max_num_faces=self.max_num_faces,
            min_detection_confidence=self.min_detection_confidence,
        )
        self._finder = face_detection.FaceDetection(
            model_selection=1, min_detection_confidence=self.min_detection_confidence
        )

    def warm_up(self) -> "MediaPipeDetector":
        """Create the graphs and run them once (the first call is slow)."""
        with self._lock:
            self._ensure()
            blank = np.full((192, 192, 3), 127, np.uint8)
            with _quiet_native_logs():
                self._mesh.process(blank)
                self._finder.process(blank)
        return self

    def close(self) -> None:
        """Release the MediaPipe graphs (a later ``detect`` re-creates them)."""
        with self._lock:
            for g in (self._mesh, self._finder):
                if g is not None:
                    g.close()
            self._mesh = self._finder = None

    # ------------------------------------------------------------ passes
    def _mesh_pass(self, image: np.ndarray) -> list[Landmarks2D]:
        """FaceMesh on one image; landmarks in that image's pixels."""
        h, w = image.shape[:2]
        with _quiet_native_logs():
            res = self._mesh.process(image)
        faces = []
        for face in res.multi_face_landmarks or ():
            m = np.array([(p.x, p.y, p.z) for p in face.landmark], np.float32)
            if m.shape[0] != 478:  # pragma: no cover - refine_landmarks is always on
                continue
            m[:, 0] = m[:, 0] * w - 0.5
            m[:, 1] = m[:, 1] * h - 0.5
            m[:, 2] *= w
            yaw = yaw_from_mesh(m)
            faces.append(
                Landmarks2D(
                    points=m[MP_TO_IBUG68, :2],
                    visibility=visibility_from_yaw(yaw),
                    bbox=np.concatenate([m[:, :2].min(0), m[:, :2].max(0)]),
                    image_size=(h, w),
                    backend=self.name,
                    mesh478=m,
                    yaw_deg=float(np.degrees(yaw)),
                )
            )
        return faces

    def _finder_boxes(self, image: np.ndarray) -> list[np.ndarray]:
        """Full-range face boxes ``x0, y0, x1, y1`` in pixels."""
        h, w = image.shape[:2]
        with _quiet_native_logs():
            res = self._finder.process(image)
        boxes = []
        for d in res.detections or ():
            r = d.location_data.relative_bounding_box
            boxes.append(np.array([r.xmin * w, r.ymin * h, (r.xmin + r.width) * w, (r.ymin + r.height) * h]))
        return boxes

    def upright_score(self, image: np.ndarray) -> float:
        """The full-range face finder's best score in ``image`` (0 without a face). The finder, unlike the
        face mesh, does not find upside-down faces: a photo stored turned by 180° scores low here while
        the mesh still fits an upright face to it (:func:`mfnet.detect.upright.detect_upright`)."""
        image = _check_image(image)
        with self._lock:
            self._ensure()
            with _quiet_native_logs():
                res = self._finder.process(image)
        return max((float(d.score[0]) for d in res.detections or ()), default=0.0)

    def _mesh_in_window(self, image: np.ndarray, box: np.ndarray) -> Landmarks2D | None:
        """Mesh the face inside ``box`` by running FaceMesh on a square window ~3x its size."""
        h, w = image.shape[:2]
        cx, cy = 0.5 * (box[0] + box[2]), 0.5 * (box[1] + box[3])
        side = max(int(round(3.0 * max(box[2] - box[0], box[3] - box[1]))), 64)
        x0, y0 = int(round(cx - side / 2)), int(round(cy - side / 2))
        scale = 256.0 / side if side < 256 else 1.0  # tiny faces: give the mesh model more pixels
        win = _window(image, x0, y0, side, scale)
        best = None
        for f in self._mesh_pass(win):
            f = f.rescaled(1.0 / scale, 1.0 / scale, (side, side)).translated(x0, y0, (h, w))
            c = 0.5 * (f.points_bbox[:2] + f.points_bbox[2:])
            if box[0] <= c[0] <= box[2] and box[1] <= c[1] <= box[3]:
                if best is None or f.face_size > best.face_size:
                    best = f
        return best

    def _retry_padded(self, image: np.ndarray) -> list[Landmarks2D]:
        """Mesh an upscaled (short side >= 384 px) copy padded by 25% on every side."""
        h, w = image.shape[:2]
        scale = max(1.0, 384.0 / min(h, w))
        pad = int(round(0.25 * max(h, w) * scale))
        side_w, side_h = round(w * scale), round(h * scale)
        big = image if scale == 1.0 else cv2.resize(image, (side_w, side_h), interpolation=cv2.INTER_LINEAR)
        padded = cv2.copyMakeBorder(big, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=(0, 0, 0))
        sx, sy = w / big.shape[1], h / big.shape[0]
        return [f.translated(-pad, -pad, big.shape[:2]).rescaled(sx, sy, (h, w)) for f in self._mesh_pass(padded)]

    def _retry_tiles(self, image: np.ndarray) -> list[Landmarks2D]:
        """Large images: run the full-range detector on overlapping 1024-px tiles, mesh what it finds."""
        h, w = image.shape[:2]
        if max(h, w) < 1024:
            return []
        side = min(1024, h, w)
        stride = side // 2

        def starts(n: int) -> list[int]:
            s = list(range(0, max(n - side, 0) + 1, stride))
            return s if s[-1] + side >= n else s + [n - side]

        faces: list[Landmarks2D] = []
        for y0 in starts(h):
            for x0 in starts(w):
                tile = image[y0 : y0 + side, x0 : x0 + side]
                for box in self._finder_boxes(np.ascontiguousarray(tile)):
                    box = box + np.array([x0, y0, x0, y0])
                    if _covered(box, faces):
                        continue
                    f = self._mesh_in_window(image, box)
                    if f is not None:
                        faces.append(f)
        return faces

    # ------------------------------------------------------------ API
    def detect(self, image: np.ndarray) -> list[Landmarks2D]:
        """All faces in an RGB uint8 image, largest first; coordinates in that image's pixels."""
        image = _check_image(image)
        with self._lock:
            self._ensure()
            faces = self._mesh_pass(image)
            if self.search_small_faces and len(faces) < self.max_num_faces:
                for box in self._finder_boxes(image):
                    if _covered(box, faces):
                        continue  # already meshed
                    f = self._mesh_in_window(image, box)
                    if f is not None and not _covered(f.bbox, faces):
                        faces.append(f)
            if not faces and self.retry:
                faces = self._retry_padded(image) or self._retry_tiles(image)
        faces.sort(key=lambda f: f.face_size, reverse=True)
        return faces[: self.max_num_faces]

    def __repr__(self) -> str:
        return f"MediaPipeDetector(max_num_faces={self.max_num_faces}, loaded={self._mesh is not None})"


@contextlib.contextmanager
def _quiet_native_logs():
    """Silence MediaPipe's C++ log lines (TFLite/absl 'W0000 ...' notices written straight to file
    descriptor 2) while a graph is created or run. Python exceptions are unaffected. Set
    MFNET_MEDIAPIPE_LOGS=1 to see them."""
    if os.environ.get("MFNET_MEDIAPIPE_LOGS"):
        yield
        return
    try:
        saved = os.dup(2)
        devnull = os.open(os.devnull, os.O_WRONLY)
    except OSError:  # no usable fd 2 (embedded interpreters): leave logging alone
        yield
        return
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
