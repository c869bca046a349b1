"""Photos stored rotated by a quarter turn (no EXIF tag): find the upright orientation.

A face lying on its side defeats the landmark detectors: MediaPipe still reports a face but its
68 points are scrambled (side views) or missing. :func:`detect_upright` detects at the photo's own
orientation first; when no face is found there, or the face's roll (the eye line against the image
rows) is beyond ±45°, it also tries the photo turned by 90°, 180° and 270° and keeps the orientation
whose face is most upright. An upside-down face fools MediaPipe's mesh (it fits an upright face to
it, roll within ±45°), so with a detector that can score orientation (``upright_score``: MediaPipe's
face finder, which does not find upside-down faces) a face the finder hardly sees is also tried
turned by 180°. The photo is then used turned upright, like an EXIF orientation tag, with a warning
naming the file and the turn.
"""
from __future__ import annotations

import warnings
from dataclasses import replace

import numpy as np

from ..utils.images import ImageView
from .errors import DetectionWarning, NoFaceError
from .landmarks import Landmarks2D

__all__ = ["roll_degrees", "rotate_view", "detect_upright", "MAX_ROLL_DEG"]

MAX_ROLL_DEG = 45.0
MIN_UPRIGHT_SCORE = 0.5  # face-finder score below which the photo turned by 180° is also tried
RIGHT_EYE, LEFT_EYE = slice(36, 42), slice(42, 48)  # iBUG-68: subject's right eye is on the image left


def roll_degrees(points68: np.ndarray) -> float:
    """In-plane rotation (degrees) of a face from its iBUG-68 points: the angle of the line from the
    subject's right-eye centre to the left-eye centre against the image x axis (0 = upright,
    ±180 = upside down; positive = clockwise on screen, y down)."""
    p = np.asarray(points68, np.float64)
    d = p[LEFT_EYE].mean(0) - p[RIGHT_EYE].mean(0)
    return float(np.degrees(np.arctan2(d[1], d[0])))


def rotate_view(view: ImageView, quarter_turns: int) -> ImageView:
    """The view turned counter-clockwise on screen by ``quarter_turns`` x 90° (as ``np.rot90``)."""
    k = quarter_turns % 4
    if k == 0:
        return view
    H, W = view.original_size
    size = (W, H) if k % 2 else (H, W)
    return ImageView(path=view.path, image=np.rot90(view.image, k), scale_to_original=view.scale_to_original,
                     original_size=size, focal_px=view.focal_px)


def _try(view: ImageView, detect, quiet: bool = True) -> Landmarks2D | None:
    """``detect(view)``, None when it finds no face; ``quiet``: its warnings are dropped (trial turns)."""
    try:
        if not quiet:
            return detect(view)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DetectionWarning)
            return detect(view)
    except NoFaceError:
        return None


def _upside_down(view: ImageView, detect, upright_score) -> tuple[ImageView, Landmarks2D] | None:
    """The view turned by 180° and its face when the face finder sees the face there and hardly here."""
    here = upright_score(view.image)
    if here >= MIN_UPRIGHT_SCORE:
        return None
    turned = rotate_view(view, 2)
    if upright_score(turned.image) < max(MIN_UPRIGHT_SCORE, here):
        return None
    det = _try(turned, detect)
    return None if det is None or abs(roll_degrees(det.points)) > MAX_ROLL_DEG else (turned, det)


def _turned_warning(view: ImageView, k: int) -> None:
    warnings.warn(f"{view.name}: the photo appears to be stored turned by {90 * k}° (no EXIF orientation); "
                  f"using it turned upright (landmarks and overlays are given in the upright photo)",
                  DetectionWarning, stacklevel=4)


def detect_upright(view: ImageView, detect, upright_score=None) -> tuple[ImageView, Landmarks2D]:
    """Detect the face of ``view`` in its upright orientation.

    ``detect(view) -> Landmarks2D`` raises :class:`NoFaceError` when there is no face;
    ``upright_score(image) -> float`` (optional) scores how clearly an upright face is seen. Returns
    the (possibly turned) view and its landmarks; raises :class:`NoFaceError` when no orientation has a face.
    """
    first = _try(view, detect, quiet=False)  # its warnings (several faces...) reach the user
    if first is not None and abs(roll_degrees(first.points)) <= MAX_ROLL_DEG:
        flipped = None if upright_score is None else _upside_down(view, detect, upright_score)
        if flipped is None:
            return view, first
        _turned_warning(view, 2)
        return flipped[0], replace(flipped[1], source=view.name)
    best = None
    for k in (1, 2, 3):
        turned = rotate_view(view, k)
        det = _try(turned, detect)
        if det is None:
            continue
        roll = abs(roll_degrees(det.points))
        if roll <= MAX_ROLL_DEG and (best is None or roll < best[0]):
            best = (roll, k, turned, det)
    if best is not None:
        _, k, turned, det = best
        _turned_warning(view, k)
        return turned, replace(det, source=view.name)
    if first is not None:
        warnings.warn(f"{view.name}: the face is rolled by {roll_degrees(first.points):.0f}° and no quarter turn "
                      "of the photo makes it upright; its landmarks may be wrong", DetectionWarning, stacklevel=3)
        return view, first
    raise NoFaceError(f"no face found in {view.name} (also tried it turned by 90°, 180° and 270°): use a photo where "
                      "the face is visible and at least ~100 px wide")
