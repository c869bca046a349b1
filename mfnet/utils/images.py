"""Loading photos: upright 8-bit RGB arrays with clear errors for bad files.

* :func:`load_image` -> ``(H, W, 3)`` uint8 RGB at full resolution (EXIF
  orientation applied, grayscale expanded, transparency composited on white).
* :func:`load_view` / :func:`load_views` -> :class:`ImageView`, the image used
  for detection and fitting. Photos larger than ``max_side`` (default 4096 px on
  the long side) are downscaled with a warning; ``ImageView.scale_to_original``
  and :meth:`ImageView.to_original` map pixel coordinates back to the original
  photo, so landmarks are always reported in ORIGINAL pixels.

Pixel coordinates put pixel centres at integers (OpenCV convention): a point
``x`` of the view maps to ``(x + 0.5) * s - 0.5`` in the original, ``s`` being
the per-axis size ratio.
"""
from __future__ import annotations

import hashlib
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from mfnet.errors import MfnetError
from mfnet.utils.exif import exif_focal_px

#: smallest accepted short side, in pixels
MIN_SIDE = 64
#: default long-side limit of the working image (larger photos are downscaled)
MAX_SIDE = 4096
_ORIENTATION_TAG = 0x0112


class ImageError(MfnetError):
    """An input photo cannot be used."""


class ImageNotFoundError(ImageError):
    """The path does not exist or is a directory."""


class ImageReadError(ImageError):
    """The file exists but is not a readable image."""


class ImageTooSmallError(ImageError):
    """The image is below :data:`MIN_SIDE` pixels on its short side."""


class ImageWarning(UserWarning):
    """Non-fatal problems with input photos (downscaled, duplicated...)."""


def _check_path(path: Path) -> None:
    if path.is_dir():
        raise ImageNotFoundError(
            f"{path} is a directory, not an image file: pass the photos inside it (e.g. {path / '*.jpg'})"
        )
    if not path.exists():
        raise ImageNotFoundError(
            f"image file not found: {path} (working directory {Path.cwd()}): check the path and file name"
        )


def _to_rgb(img: Image.Image) -> Image.Image:
    """Any PIL mode -> 8-bit RGB; transparency composited on white."""
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I", "F"):  # 16/32-bit grayscale: rescale to 8 bit
        a = np.asarray(img, dtype=np.float64)
        peak = float(a.max(initial=0))
        if mode == "F":
            hi = 1.0 if peak <= 1.0 else 255.0  # float images: [0, 1] or already 8-bit range
        else:
            hi = 65535.0 if mode.startswith("I;16") or peak > 255 else 255.0
        a8 = np.clip(np.rint(a * (255.0 / hi)), 0, 255).astype(np.uint8)
        return Image.fromarray(a8, "L").convert("RGB")
    has_alpha = "A" in mode or mode in ("RGBa", "La") or (mode == "P" and "transparency" in img.info) \
        or (mode in ("L", "RGB") and "transparency" in img.info)
    if has_alpha:
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return img if mode == "RGB" else img.convert("RGB")


def _open_upright(path: Path, max_side: int | None) -> tuple[np.ndarray, tuple[int, int], float | None]:
    """Decode ``path``; returns (upright RGB array, possibly reduced by JPEG draft), the upright full size
    (H, W) and the focal length its EXIF records, original pixels (None if it records none)."""
    _check_path(path)
    try:
        if path.is_file() and path.stat().st_size == 0:
            raise ImageReadError(f"cannot read {path} as an image: the file is empty; copy the photo again")
        with Image.open(path) as img:
            w, h = img.size
            try:
                orientation = int(img.getexif().get(_ORIENTATION_TAG, 1))
            except Exception:  # broken EXIF block: ignore orientation
                orientation = 1
            full_hw = (w, h) if orientation in (5, 6, 7, 8) else (h, w)
            if min(full_hw) < MIN_SIDE:
                raise ImageTooSmallError(
                    f"image {path} is too small ({full_hw[1]}x{full_hw[0]} px; the short side must be at least "
                    f"{MIN_SIDE} px): use a larger photo in which the face is at least ~100 px wide"
                )
            if max_side is not None and max(w, h) > max_side and img.format == "JPEG":
                img.draft("RGB", (max(1, w * max_side // max(w, h)), max(1, h * max_side // max(w, h))))
            focal_px = exif_focal_px(img, full_hw)
            img.load()
            try:
                upright = ImageOps.exif_transpose(img)
            except Exception as exc:  # pragma: no cover - malformed EXIF
                warnings.warn(f"{path}: ignoring unreadable EXIF orientation ({exc})", ImageWarning, stacklevel=3)
                upright = img
            arr = np.asarray(_to_rgb(upright), dtype=np.uint8)
    except ImageError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageReadError(
            f"cannot read {path} as an image: it is too large to decode safely ({exc}); "
            f"resize it below {MAX_SIDE} px on the long side"
        ) from None
    except PermissionError:
        raise ImageReadError(f"cannot read {path}: permission denied; check the file's permissions") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as exc:
        reason = str(exc).replace(str(path), "").strip(" :'\"") or type(exc).__name__
        raise ImageReadError(
            f"cannot read {path} as an image: {reason}; use a JPEG, PNG or BMP photo (re-export it if it is damaged)"
        ) from None
    if arr.ndim != 3 or arr.shape[2] != 3:  # pragma: no cover - defensive
        raise ImageReadError(f"cannot read {path} as an image: unexpected pixel layout {arr.shape}")
    return np.ascontiguousarray(arr), full_hw, focal_px


def _fit_max_side(arr: np.ndarray, full_hw: tuple[int, int], max_side: int | None, path: Path) -> np.ndarray:
    """Resize ``arr`` to the full size scaled so its long side is <= max_side (warns when downscaling)."""
    H, W = full_hw
    if max_side is not None and max(H, W) > max_side:
        f = max_side / max(H, W)
        th, tw = max(1, round(H * f)), max(1, round(W * f))
        warnings.warn(
            f"{path} is {W}x{H} px: downscaled to {tw}x{th} for processing "
            f"(landmarks are still reported in original pixels)",
            ImageWarning,
            stacklevel=3,
        )
    else:
        th, tw = H, W
    if arr.shape[:2] != (th, tw):
        interp = cv2.INTER_AREA if arr.shape[0] > th else cv2.INTER_LINEAR
        arr = cv2.resize(arr, (tw, th), interpolation=interp)
    return arr


def load_image(path: str | os.PathLike, *, max_side: int | None = None) -> np.ndarray:
    """Read a photo as ``(H, W, 3)`` uint8 RGB, upright (EXIF orientation applied).

    Reads whatever Pillow reads (JPEG, PNG, BMP, TIFF, WebP, GIF first frame...).
    Grayscale becomes RGB; RGBA / LA / palette transparency is composited on
    white; 16-bit grayscale is rescaled to 8 bit.

    ``max_side``: if given and the long side is larger, the image is downscaled
    (with an :class:`ImageWarning`); the scale factor is then NOT returned -
    use :func:`load_view`, which keeps it.

    Raises :class:`ImageNotFoundError` (missing path, directory),
    :class:`ImageReadError` (not an image, corrupt or truncated),
    :class:`ImageTooSmallError` (short side < :data:`MIN_SIDE`).
    """
    path = Path(path)
    arr, full_hw, _ = _open_upright(path, max_side)
    return _fit_max_side(arr, full_hw, max_side, path)


@dataclass(frozen=True, eq=False)
class ImageView:
    """One input photo as used for detection / fitting.

    Attributes:
        path: the file it came from (``Path("<array>")`` for in-memory images).
        image: ``(h, w, 3)`` uint8 RGB working image (downscaled if the
            original exceeded ``max_side``).
        scale_to_original: original pixels per working-image pixel along the
            long side (1.0 when not downscaled).
        original_size: ``(H, W)`` of the upright original photo.
        digest: SHA-1 of the working image's pixels (duplicate detection).
        focal_px: the camera's focal length in original pixels, from the photo's EXIF
            (:mod:`mfnet.utils.exif`), or None.
    """

    path: Path
    image: np.ndarray
    scale_to_original: float = 1.0
    original_size: tuple[int, int] | None = None
    digest: str = ""
    focal_px: float | None = None

    def __post_init__(self) -> None:
        img = np.asarray(self.image)
        if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
            raise ValueError(f"ImageView.image must be (H, W, 3) uint8, got {img.dtype} {img.shape}")
        object.__setattr__(self, "image", np.ascontiguousarray(img))
        object.__setattr__(self, "path", Path(self.path))
        if self.original_size is None:
            h, w = img.shape[:2]
            s = float(self.scale_to_original)
            object.__setattr__(self, "original_size", (round(h * s), round(w * s)))
        if not self.digest:
            object.__setattr__(self, "digest", image_digest(img))

    @classmethod
    def from_array(cls, image: np.ndarray, name: str = "<array>") -> "ImageView":
        """Wrap an in-memory RGB image (no scaling)."""
        return cls(path=Path(name), image=np.asarray(image))

    @property
    def name(self) -> str:
        """File name for messages."""
        return str(self.path)

    @property
    def scale_xy(self) -> tuple[float, float]:
        """Exact per-axis (sx, sy) original/working size ratios."""
        H, W = self.original_size
        h, w = self.image.shape[:2]
        return W / w, H / h

    def to_original(self, points: np.ndarray) -> np.ndarray:
        """Map ``(..., 2)`` working-image pixel points to original-photo pixels."""
        sx, sy = self.scale_xy
        p = np.asarray(points, np.float32)
        return (p + 0.5) * np.array([sx, sy], np.float32) - 0.5

    def from_original(self, points: np.ndarray) -> np.ndarray:
        """Map ``(..., 2)`` original-photo pixel points to working-image pixels."""
        sx, sy = self.scale_xy
        p = np.asarray(points, np.float32)
        return (p + 0.5) / np.array([sx, sy], np.float32) - 0.5


def image_digest(image: np.ndarray) -> str:
    """SHA-1 of an image's shape and pixels."""
    h = hashlib.sha1(repr(image.shape).encode())
    h.update(np.ascontiguousarray(image).data)
    return h.hexdigest()


def load_view(path: str | os.PathLike, *, max_side: int | None = MAX_SIDE) -> ImageView:
    """Load one photo as an :class:`ImageView` (see :func:`load_image` for formats and errors).

    Photos whose long side exceeds ``max_side`` are downscaled (JPEGs are
    decoded at reduced size directly) with an :class:`ImageWarning`.
    """
    path = Path(path)
    arr, full_hw, focal_px = _open_upright(path, max_side)
    arr = _fit_max_side(arr, full_hw, max_side, path)
    scale = max(full_hw) / max(arr.shape[:2])
    return ImageView(path=path, image=arr, scale_to_original=float(scale), original_size=full_hw, focal_px=focal_px)


def load_views(paths: Iterable[str | os.PathLike], *, max_side: int | None = MAX_SIDE) -> list[ImageView]:
    """Load several photos of one person; warns when two have identical pixels.

    Duplicated views add no information (and over-weight that view in a
    multi-view fit); they are kept, in order, so indices match ``paths``.
    """
    views: list[ImageView] = []
    seen: dict[str, Path] = {}
    for p in paths:
        v = load_view(p, max_side=max_side)
        if v.digest in seen:
            warnings.warn(
                f"{v.path} has the same pixels as {seen[v.digest]}: duplicated view "
                f"(it adds no information; pass each photo once)",
                ImageWarning,
                stacklevel=2,
            )
        else:
            seen[v.digest] = v.path
        views.append(v)
    if not views:
        raise ImageNotFoundError("no image files given: pass one or more photos of the same person")
    return views
