"""The camera's focal length from a photo's EXIF block, in pixels of the photo.

A photo's focal length fixes how far its camera was from the face, given the face's size in the photo
(:class:`mfnet.fit.rig.WeakPerspectiveRig`): photos from arm's length are perspective, and a fit that
does not know the distance explains the perspective with a wrong face. Cameras and phones record it:

* ``FocalLengthIn35mmFilm`` (tag 0xA405, mm): the 35 mm-equivalent focal length. A 35 mm frame's
  diagonal is 43.27 mm, so ``f_px = f35 / 43.27 * hypot(W, H)``; true whatever the photo was resized to,
  not if it was cropped (a photo whose aspect ratio differs from the recorded ``PixelXDimension`` /
  ``PixelYDimension`` is taken as cropped: no focal length).
* else ``FocalLength`` (0x920A, mm) with ``FocalPlaneXResolution`` (0xA20E, pixels per unit of
  ``FocalPlaneResolutionUnit`` 0xA210: 2 inch, 3 cm, 4 mm), rescaled when the photo's long side differs
  from the recorded ``PixelXDimension`` / ``PixelYDimension`` (0xA002 / 0xA003; resized after capture).

:func:`focal_exif` writes the first of them (what the real-scan benchmark's renders carry).
"""
from __future__ import annotations

import math

from PIL import Image

from mfnet.errors import MfnetError

__all__ = ["FULL_FRAME_DIAGONAL_MM", "check_focal_35mm", "focal_px_from_35mm", "exif_focal_px", "focal_exif"]

#: the diagonal of a 36 x 24 mm frame
FULL_FRAME_DIAGONAL_MM = math.hypot(36.0, 24.0)
_EXIF_IFD = 0x8769
_FOCAL_35MM, _FOCAL, _PLANE_X_RES, _PLANE_UNIT = 0xA405, 0x920A, 0xA20E, 0xA210
_PIXEL_X, _PIXEL_Y = 0xA002, 0xA003
_UNIT_MM = {2: 25.4, 3: 10.0, 4: 1.0}


def check_focal_35mm(focal_35mm: float, what: str = "focal length") -> float:
    """``focal_35mm`` if it is a plausible 35 mm-equivalent focal length in mm (0 to 10 m), else a clear
    :class:`~mfnet.errors.MfnetError` naming ``what`` (e.g. ``--focal``)."""
    if not (math.isfinite(focal_35mm) and 0 < focal_35mm < 10000):
        raise MfnetError(f"{what} {focal_35mm}: give the 35 mm-equivalent focal length in mm (e.g. 26 for a "
                         "phone's main camera, 50 for a standard lens)")
    return float(focal_35mm)


def focal_px_from_35mm(focal_35mm: float, size_hw: tuple[int, int]) -> float:
    """Focal length in pixels of a photo of ``size_hw`` (H, W) taken at ``focal_35mm`` (35 mm equivalent)."""
    return float(focal_35mm) / FULL_FRAME_DIAGONAL_MM * math.hypot(*size_hw)


def _positive(value) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return v if math.isfinite(v) and v > 0 else None


def exif_focal_px(img: Image.Image, size_hw: tuple[int, int]) -> float | None:
    """The focal length (pixels) recorded in ``img``'s EXIF for the photo as it is, ``size_hw`` (H, W);
    None when the photo does not record one, or when its shape is not the recorded one (cropped after
    capture: the recorded focal length no longer matches its pixels)."""
    try:
        ifd = img.getexif().get_ifd(_EXIF_IFD)
    except Exception:  # a broken EXIF block: as if there were none
        return None
    recorded = [_positive(ifd.get(_PIXEL_X)), _positive(ifd.get(_PIXEL_Y))]
    if None not in recorded:
        aspect, was = max(size_hw) / min(size_hw), max(recorded) / min(recorded)
        if abs(aspect / was - 1) > 0.02:
            return None
    f35 = _positive(ifd.get(_FOCAL_35MM))
    if f35 is not None:
        return focal_px_from_35mm(f35, size_hw)
    focal, res = _positive(ifd.get(_FOCAL)), _positive(ifd.get(_PLANE_X_RES))
    unit = _UNIT_MM.get(int(_positive(ifd.get(_PLANE_UNIT)) or 2))
    if focal is None or res is None or unit is None:
        return None
    f = focal * res / unit
    longest = max((v for v in recorded if v is not None), default=None)
    if longest is not None:  # the photo may have been resized after capture
        f *= max(size_hw) / longest
    return f


def focal_exif(focal_35mm: float) -> bytes:
    """An EXIF block recording ``focal_35mm`` (rounded to whole mm, as cameras write it), for Pillow's
    ``save(..., exif=...)`` (JPEG, PNG, WebP; Pillow's PNG writer takes the bytes, not an ``Image.Exif``)."""
    exif = Image.Exif()
    exif.get_ifd(_EXIF_IFD)[_FOCAL_35MM] = int(round(focal_35mm))
    return exif.tobytes()
