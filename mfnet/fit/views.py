"""Photos -> :class:`~mfnet.types.Views`: load, detect landmarks, crop (one square per view).

Pixel conventions: detectors report original-photo pixels with pixel centres at whole numbers
(OpenCV); the renderer puts pixel centres at +0.5. ``Views.landmarks`` are in renderer crop
pixels; ``Views.crop_to_original`` maps renderer crop pixels back to detector/original pixels.
"""
from __future__ import annotations

import logging
import os
import warnings
from typing import Sequence

import numpy as np
import torch

from ..detect import face_crop, get_detector
from ..detect.detect import detect_landmarks
from ..detect.errors import NoFaceError
from ..detect.upright import detect_upright
from ..errors import MfnetError
from ..types import Views
from ..utils.exif import check_focal_35mm, focal_px_from_35mm
from ..utils.images import ImageView, load_views
from ..utils.options import MAX_VIEWS

log = logging.getLogger(__name__)


class ViewCountError(MfnetError):
    """Too few or too many usable views."""


def prepare_views(images: Sequence[str | os.PathLike | np.ndarray | ImageView], crop_size: int = 256,
                  backend: str = "mediapipe", crop_scale: float = 1.5, drop_faceless: bool = True,
                  focal_35mm: float | None = None) -> Views:
    """Load, detect and crop each photo. Views with no face are dropped with a warning
    (error if none remains); more than 16 views is an error. ``focal_35mm``: the cameras' 35 mm-equivalent
    focal length, for every photo (default: each photo's EXIF, where it records one)."""
    if len(images) == 0:
        raise ViewCountError("no images given: pass 1 to 16 photos of the same person")
    if len(images) > MAX_VIEWS:
        raise ViewCountError(f"{len(images)} images given: mfnet fits 1 to {MAX_VIEWS} views of one person")
    paths = [im for im in images if not isinstance(im, (np.ndarray, ImageView))]
    loaded = iter(load_views(paths)) if paths else iter(())
    views = []
    for i, im in enumerate(images):
        if isinstance(im, ImageView):
            views.append(im)
        elif isinstance(im, np.ndarray):
            views.append(ImageView.from_array(im, name=f"<array {i}>"))
        else:
            views.append(next(loaded))
    detector = get_detector(backend)
    kept, dets = [], []
    for v in views:
        try:
            v, det = detect_upright(v, lambda view: detect_landmarks(view, backend, detector=detector),
                                    getattr(detector, "upright_score", None))
            dets.append(det)
            kept.append(v)
        except NoFaceError as exc:
            if not drop_faceless:
                raise
            warnings.warn(f"{exc}; dropping this view", stacklevel=2)
    if not kept:
        raise ViewCountError("no face found in any of the images: " + ", ".join(v.name for v in views))
    crops = [face_crop(d, size=crop_size, scale=crop_scale) for d in dets]
    imgs = np.stack([c.warp(v.image, v.scale_xy, border="replicate") for c, v in zip(crops, kept)])
    lmk = np.stack([c.to_crop(d.points.astype(np.float64)) + 0.5 for c, d in zip(crops, dets)])
    shift = np.array([[1, 0, -0.5], [0, 1, -0.5], [0, 0, 1]])  # renderer crop px -> detector crop px
    to_orig = np.stack([np.vstack([c.inverse, [0, 0, 1]]) @ shift for c in crops])[:, :2]
    dense = dense_w = None
    if all(d.mesh478 is not None for d in dets):
        pts = np.stack([c.to_crop(d.mesh478[:, :2].astype(np.float64)) + 0.5 for c, d in zip(crops, dets)])
        dense = torch.from_numpy(pts).float()
        dense_w = torch.from_numpy(np.stack([dense_visibility(d.mesh478[:, :2], d.yaw_deg) for d in dets])).float()
    return Views(
        dense_landmarks=dense, dense_weights=dense_w,
        focal_px=crop_focal([v.original_size for v in kept], [v.focal_px for v in kept], to_orig, focal_35mm),
        images=torch.from_numpy(imgs).permute(0, 3, 1, 2).float() / 255.0,
        landmarks=torch.from_numpy(lmk).float(),
        landmark_weights=torch.from_numpy(np.stack([d.visibility for d in dets])).float(),
        crop_to_original=to_orig, names=[v.name for v in kept],
        original_sizes=[tuple(v.original_size) for v in kept], detections=dets, photos=kept, crops=crops,
        crop_scale=crop_scale,
    )


def crop_focal(sizes: Sequence[tuple[int, int]], exif_px: Sequence[float | None], crop_to_original: np.ndarray,
               focal_35mm: float | None = None) -> torch.Tensor | None:
    """(N,) the photos' focal lengths in crop pixels (NaN where unknown), None when none is known:
    ``focal_35mm`` (35 mm equivalent, every photo, of original size ``sizes`` (H, W)) or else the focal
    lengths the photos' EXIF records (``exif_px``, original pixels, None where it records none)."""
    if focal_35mm is not None:
        check_focal_35mm(focal_35mm)
    f = np.array([focal_px_from_35mm(focal_35mm, hw) if focal_35mm is not None else (np.nan if e is None else e)
                  for hw, e in zip(sizes, exif_px)], np.float64)
    if not np.isfinite(f).any():
        return None
    original_per_crop = np.linalg.norm(np.asarray(crop_to_original)[:, :, 0], axis=1)
    return torch.from_numpy(f / original_per_crop).float()


def views_from_arrays(images: torch.Tensor, landmarks: torch.Tensor, weights: torch.Tensor | None = None,
                      names: Sequence[str] | None = None) -> Views:
    """Views from already-cropped images (N, 3, S, S) and renderer-pixel landmarks (N, 68, 2)
    (e.g. synthetic renders with known landmarks)."""
    n = images.shape[0]
    eye = np.tile(np.array([[1.0, 0, -0.5], [0, 1.0, -0.5]]), (n, 1, 1))
    return Views(images=images, landmarks=landmarks,
                 landmark_weights=weights if weights is not None else torch.ones(n, 68),
                 crop_to_original=eye, names=list(names or [f"view{i}" for i in range(n)]),
                 original_sizes=[tuple(images.shape[-2:])] * n)


def dense_visibility(mesh_xy: np.ndarray, yaw_deg: float, far_weight: float = 0.2) -> np.ndarray:
    """Weights of MediaPipe's 478 points: the half of the face turned away from the camera (beyond
    the nose bridge, point 168) is down-weighted once the head turns by more than 10 degrees."""
    w = np.ones(len(mesh_xy), np.float32)
    if np.isfinite(yaw_deg) and abs(yaw_deg) > 10:
        mid = mesh_xy[168, 0]
        far = mesh_xy[:, 0] > mid if yaw_deg > 0 else mesh_xy[:, 0] < mid
        w[far] = far_weight
    return w
