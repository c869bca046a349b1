"""Square face crops (DECA-style) as similarity transforms, with exact point mapping.

A crop is the square of side ``scale * max(w, h)`` centred on the box of the
68 landmarks (``w, h``: that box's size), resampled to ``size x size``
pixels. Optionally it is rotated so the eyes are level (``align_roll``).

The transform is a 2x3 matrix ``M`` (similarity: rotation, uniform scale,
translation) from ORIGINAL-photo pixels to crop pixels, both with pixel
centres at integers, i.e. exactly what :func:`cv2.warpAffine` expects::

    u = M[:, :2] @ x + M[:, 2]

so ``warp_to_crop(image, crop)[v, u]`` samples ``image`` at ``to_original``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from ..utils.affine import apply_affine
from .landmarks import EYE_LEFT, EYE_RIGHT, Landmarks2D


def invert_affine(M: np.ndarray) -> np.ndarray:
    """Inverse of a 2x3 affine matrix."""
    A, t = M[:, :2], M[:, 2]
    Ai = np.linalg.inv(A)
    return np.concatenate([Ai, (-Ai @ t)[:, None]], axis=1)


@dataclass(frozen=True, eq=False)
class FaceCrop:
    """A square crop of an original photo.

    Attributes:
        box: (4,) ``x0, y0, x1, y1`` of the (unrotated) crop square in original
            pixels; it may extend beyond the image (filled by ``warp``).
        size: output side in pixels.
        matrix: (2, 3) float64 original -> crop pixels.
        angle: in-plane rotation removed by the crop, radians (0 unless ``align_roll``).
    """

    box: np.ndarray
    size: int
    matrix: np.ndarray
    angle: float = 0.0

    @property
    def inverse(self) -> np.ndarray:
        """(2, 3) crop -> original pixels."""
        return invert_affine(self.matrix)

    @property
    def scale(self) -> float:
        """Crop pixels per original pixel."""
        return float(math.sqrt(abs(np.linalg.det(self.matrix[:, :2]))))

    def to_crop(self, points: np.ndarray) -> np.ndarray:
        """Map ``(..., 2)`` original-photo points into the crop."""
        return apply_affine(points, self.matrix).astype(np.float32)

    def to_original(self, points: np.ndarray) -> np.ndarray:
        """Map ``(..., 2)`` crop points back to original-photo pixels."""
        return apply_affine(points, self.inverse).astype(np.float32)

    def for_image(self, scale_to_original: tuple[float, float] | float = 1.0) -> np.ndarray:
        """(2, 3) matrix from the pixels of an image whose pixels are ``scale_to_original``
        original pixels each (e.g. :attr:`ImageView.scale_xy`) to crop pixels."""
        sx, sy = (scale_to_original, scale_to_original) if np.isscalar(scale_to_original) else scale_to_original
        # working pixel x -> original (x + 0.5) * s - 0.5
        A = self.matrix[:, :2] @ np.diag([sx, sy])
        t = self.matrix[:, :2] @ np.array([0.5 * sx - 0.5, 0.5 * sy - 0.5]) + self.matrix[:, 2]
        return np.concatenate([A, t[:, None]], axis=1)

    def warp(
        self,
        image: np.ndarray,
        scale_to_original: tuple[float, float] | float = 1.0,
        *,
        border: str = "constant",
        interpolation: int = cv2.INTER_LINEAR,
    ) -> np.ndarray:
        """Resample ``image`` into the ``size x size`` crop (see :func:`warp_to_crop`)."""
        return warp_to_crop(image, self, scale_to_original, border=border, interpolation=interpolation)


def face_crop(
    landmarks: Landmarks2D | np.ndarray,
    size: int = 224,
    scale: float = 1.25,
    *,
    align_roll: bool = False,
) -> FaceCrop:
    """Square crop around the 68 landmarks' box (``size`` px; side = ``scale`` x the box's longer side).

    ``landmarks``: a :class:`Landmarks2D` or an ``(N, 2)`` array, original pixels.
    With ``align_roll`` the crop is rotated about its centre so the line
    between the eye centres is horizontal.
    """
    pts = landmarks.points if isinstance(landmarks, Landmarks2D) else np.asarray(landmarks, np.float64)
    pts = np.asarray(pts, np.float64)
    lo, hi = pts.min(0), pts.max(0)
    c = 0.5 * (lo + hi)
    side = float(scale * max(hi - lo))
    if not np.isfinite(side) or side <= 0:
        raise ValueError("cannot crop: landmarks are degenerate (zero-size box)")
    angle = 0.0
    if align_roll and pts.shape[0] == 68:
        d = pts[list(EYE_LEFT)].mean(0) - pts[list(EYE_RIGHT)].mean(0)
        angle = float(math.atan2(d[1], d[0]))
    k = size / side
    ca, sa = math.cos(-angle), math.sin(-angle)
    A = k * np.array([[ca, -sa], [sa, ca]])
    t = np.full(2, size / 2.0 - 0.5) - A @ c
    M = np.concatenate([A, t[:, None]], axis=1)
    box = np.array([c[0] - side / 2, c[1] - side / 2, c[0] + side / 2, c[1] + side / 2], np.float32)
    return FaceCrop(box=box, size=int(size), matrix=M, angle=angle)


_BORDERS = {"constant": cv2.BORDER_CONSTANT, "replicate": cv2.BORDER_REPLICATE, "reflect": cv2.BORDER_REFLECT_101}


def warp_to_crop(
    image: np.ndarray,
    crop: FaceCrop,
    scale_to_original: tuple[float, float] | float = 1.0,
    *,
    border: str = "constant",
    interpolation: int = cv2.INTER_LINEAR,
) -> np.ndarray:
    """Resample ``image`` into ``crop`` (``(size, size, C)``, same dtype).

    ``image`` is the original photo, or a working copy whose pixels are
    ``scale_to_original`` original pixels each (pass ``view.scale_xy`` for a
    downscaled :class:`~mfnet.utils.images.ImageView`). When the crop shrinks
    the image by more than 2x, the image is first reduced with area
    averaging so the crop is not aliased. Outside the image: black
    (``border='constant'``), or ``'replicate'`` / ``'reflect'``.
    """
    M0 = crop.for_image(scale_to_original)
    A, t = M0[:, :2], M0[:, 2]
    k = math.sqrt(abs(np.linalg.det(A)))
    img = np.asarray(image)
    if k < 0.5:  # pre-shrink by ~1/(2k) with INTER_AREA, then compose the matrix
        f = 2.0 * k
        h, w = img.shape[:2]
        nw, nh = max(1, round(w * f)), max(1, round(h * f))
        img = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA)
        fx, fy = w / nw, h / nh
        V = np.array([[fx, 0.0], [0.0, fy]])
        t = A @ np.array([0.5 * fx - 0.5, 0.5 * fy - 0.5]) + t
        A = A @ V
    M = np.concatenate([A, t[:, None]], axis=1)
    return cv2.warpAffine(
        img, M, (crop.size, crop.size), flags=interpolation, borderMode=_BORDERS[border], borderValue=0
    )


def points_to_crop(points: np.ndarray, crop: FaceCrop) -> np.ndarray:
    """Original-photo points -> crop pixels (vectorised over leading axes)."""
    return crop.to_crop(points)


def points_to_original(points: np.ndarray, crop: FaceCrop) -> np.ndarray:
    """Crop pixels -> original-photo points (vectorised over leading axes)."""
    return crop.to_original(points)
