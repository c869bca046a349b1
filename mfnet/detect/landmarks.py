"""2D facial landmarks in the iBUG-68 convention, and the MediaPipe 478 -> iBUG-68 mapping.

Coordinate convention (used by every module in :mod:`mfnet.detect`): pixel
coordinates ``(x, y)`` of the ORIGINAL photo (upright, after EXIF orientation),
with pixel centres at integer positions (the OpenCV / dlib convention), so the
top-left pixel's centre is ``(0, 0)`` and the image spans ``[-0.5, W - 0.5]``.

Left/right follow iBUG: "right" is the SUBJECT's right, which appears on the
image's left in an unmirrored photo (iBUG 36-41 = subject's right eye).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

# ---------------------------------------------------------------- index groups
from ..ibug import (  # noqa: E402,F401  (re-exported: detection users import them from here)
    BROW_LEFT, BROW_RIGHT, EYE_LEFT, EYE_RIGHT, EYELID_PAIRS, JAW, LIP_PAIRS, MOUTH_INNER, MOUTH_OUTER, NOSE,
    OUTER_EYE_CORNERS,
)

#: iBUG index of each point's mirror image (for horizontal flips).
IBUG68_FLIP = np.array(
    list(range(16, -1, -1))                       # jaw 0..16
    + list(range(26, 21, -1)) + list(range(21, 16, -1))  # brows
    + [27, 28, 29, 30]                            # nose bridge
    + [35, 34, 33, 32, 31]                        # nostrils
    + [45, 44, 43, 42, 47, 46]                    # subject's right eye -> left eye
    + [39, 38, 37, 36, 41, 40]                    # left eye -> right eye
    + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55]  # outer lips
    + [64, 63, 62, 61, 60, 67, 66, 65],           # inner lips
    dtype=np.int64,
)

#: MediaPipe face-mesh vertex used for each iBUG-68 point (single-index mapping,
#: see shared/reference/flame-format.md). The mesh's jaw line is NOT the occluding
#: contour in side views: contour points get a lower visibility there.
MP_TO_IBUG68 = np.array(
    [162, 234, 93, 58, 172, 136, 149, 148, 152, 377, 378, 365, 397, 288, 323, 454, 389,
     71, 63, 105, 66, 107, 336, 296, 334, 293, 301,
     168, 197, 5, 4, 75, 97, 2, 326, 305,
     33, 160, 158, 133, 153, 144, 362, 385, 387, 263, 373, 380,
     61, 39, 37, 0, 267, 269, 291, 405, 314, 17, 84, 181,
     78, 82, 13, 312, 308, 317, 14, 87],
    dtype=np.int64,
)
assert MP_TO_IBUG68.shape == (68,) and IBUG68_FLIP.shape == (68,)


def mediapipe_to_ibug68(points478: np.ndarray) -> np.ndarray:
    """Select the 68 iBUG points from MediaPipe mesh points.

    ``points478`` is ``(..., 478, K)`` (K >= 2, e.g. x, y[, z]) or ``(..., 468, K)``
    (no iris refinement: the mapping uses only indices < 468). Returns
    ``(..., 68, 2)`` float32 (x, y only).
    """
    pts = np.asarray(points478)
    if pts.ndim < 2 or pts.shape[-2] not in (468, 478) or pts.shape[-1] < 2:
        raise ValueError(f"expected (..., 478, >=2) MediaPipe points, got shape {pts.shape}")
    return pts[..., MP_TO_IBUG68, :2].astype(np.float32)


def flip_points_horizontally(points: np.ndarray, width: int, swap: np.ndarray | None = IBUG68_FLIP) -> np.ndarray:
    """Mirror ``(..., N, 2)`` pixel points of an image ``width`` wide (``x -> W - 1 - x``).

    With ``swap`` (default: the iBUG-68 permutation) the point order is also
    exchanged so that index 36 is again the subject's right eye corner of the
    mirrored face. Pass ``swap=None`` to keep the order.
    """
    out = np.array(points, dtype=np.float32, copy=True)
    out[..., 0] = (width - 1) - out[..., 0]
    if swap is not None:
        out = out[..., swap, :]
    return out


def _as_f32(a, shape: tuple, name: str) -> np.ndarray:
    arr = np.ascontiguousarray(a, dtype=np.float32)
    if arr.shape != shape:
        raise ValueError(f"Landmarks2D.{name} must have shape {shape}, got {arr.shape}")
    return arr


@dataclass(frozen=True, eq=False)
class Landmarks2D:
    """One detected face.

    Attributes:
        points: (68, 2) float32, iBUG-68 points in original-image pixels.
        visibility: (68,) float32 in [0, 1]: weight for fitting losses (1 = reliable).
            Neither backend gives per-point confidences; this is the yaw heuristic of
            :mod:`mfnet.detect.visibility` (far-side jaw contour down-weighted).
        bbox: (4,) float32 ``x0, y0, x1, y1``: the detector's face box in
            original pixels (MediaPipe: box of the whole mesh incl. forehead;
            dlib: the HOG rectangle). :func:`mfnet.detect.crop.face_crop` uses
            the box of ``points`` instead, so crops agree across backends.
        image_size: ``(H, W)`` of the original image.
        backend: ``"mediapipe"`` or ``"dlib"``.
        mesh478: (478, 3) float32 MediaPipe mesh (x, y in original pixels, z
            relative depth in the same pixel units, smaller = nearer the
            camera) or ``None`` (dlib).
        score: detector confidence when the backend gives one (dlib HOG
            score), else NaN.
        yaw_deg: rough head yaw in degrees, > 0 when the subject's LEFT side
            (iBUG 9-16, image right) is turned away from the camera.
        source: the image file name, for messages.
    """

    points: np.ndarray
    visibility: np.ndarray
    bbox: np.ndarray
    image_size: tuple[int, int]
    backend: str
    mesh478: np.ndarray | None = None
    score: float = math.nan
    yaw_deg: float = math.nan
    source: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "points", _as_f32(self.points, (68, 2), "points"))
        object.__setattr__(self, "visibility", _as_f32(self.visibility, (68,), "visibility"))
        object.__setattr__(self, "bbox", _as_f32(self.bbox, (4,), "bbox"))
        if self.mesh478 is not None:
            object.__setattr__(self, "mesh478", _as_f32(self.mesh478, (478, 3), "mesh478"))
        h, w = self.image_size
        object.__setattr__(self, "image_size", (int(h), int(w)))

    # ------------------------------------------------------------ measures
    @property
    def points_bbox(self) -> np.ndarray:
        """(4,) ``x0, y0, x1, y1`` tight box around the 68 points."""
        return np.concatenate([self.points.min(0), self.points.max(0)]).astype(np.float32)

    @property
    def face_size(self) -> float:
        """Geometric mean of the 68-point box's width and height, in pixels."""
        x0, y0, x1, y1 = self.points_bbox
        return float(math.sqrt(max(x1 - x0, 0.0) * max(y1 - y0, 0.0)))

    @property
    def inter_ocular(self) -> float:
        """Distance between the outer eye corners (iBUG 36 and 45), in pixels."""
        a, b = self.points[list(OUTER_EYE_CORNERS)]
        return float(np.linalg.norm(a - b))

    # ------------------------------------------------------------ transforms
    def rescaled(self, sx: float, sy: float, image_size: tuple[int, int]) -> "Landmarks2D":
        """Map from an image resized by ``1/sx, 1/sy`` back to one of ``image_size`` (H, W).

        A point ``x`` of the resized image maps to ``(x + 0.5) * sx - 0.5``
        (pixel-centre convention); mesh depth is scaled by the mean factor.
        """
        s = np.array([sx, sy], np.float32)
        pts = (self.points + 0.5) * s - 0.5
        box = ((self.bbox.reshape(2, 2) + 0.5) * s - 0.5).reshape(4)
        mesh = None
        if self.mesh478 is not None:
            mesh = self.mesh478.copy()
            mesh[:, :2] = (mesh[:, :2] + 0.5) * s - 0.5
            mesh[:, 2] *= 0.5 * (sx + sy)
        return replace(self, points=pts, bbox=box, mesh478=mesh, image_size=tuple(image_size))

    def translated(self, dx: float, dy: float, image_size: tuple[int, int] | None = None) -> "Landmarks2D":
        """Shift all coordinates by ``(dx, dy)`` pixels (e.g. from a sub-window back to the image)."""
        d = np.array([dx, dy], np.float32)
        mesh = None
        if self.mesh478 is not None:
            mesh = self.mesh478.copy()
            mesh[:, :2] += d
        return replace(self, points=self.points + d, bbox=self.bbox + np.tile(d, 2), mesh478=mesh,
                       image_size=self.image_size if image_size is None else tuple(image_size))

    def flipped(self) -> "Landmarks2D":
        """The same face in the horizontally mirrored image (iBUG indices swapped, yaw negated).

        ``mesh478`` is dropped (``None``): its vertex order cannot be mirrored without
        a MediaPipe symmetry table.
        """
        w = self.image_size[1]
        x0, y0, x1, y1 = self.bbox
        return replace(
            self,
            points=flip_points_horizontally(self.points, w),
            visibility=self.visibility[IBUG68_FLIP],
            bbox=np.array([w - 1 - x1, y0, w - 1 - x0, y1], np.float32),
            mesh478=None,
            yaw_deg=-self.yaw_deg,
        )

    def inside_image(self, margin: float = 0.0) -> np.ndarray:
        """(68,) bool: points within the image (plus ``margin`` pixels)."""
        h, w = self.image_size
        x, y = self.points[:, 0], self.points[:, 1]
        return (x >= -0.5 - margin) & (x <= w - 0.5 + margin) & (y >= -0.5 - margin) & (y <= h - 0.5 + margin)


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two ``x0, y0, x1, y1`` boxes."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0
