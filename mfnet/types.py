"""Small typed records that the pipeline stages pass to each other.

images -> :class:`Views` (cropped photos + landmarks) -> fit / network -> :class:`HeadParams`
(shared across views) + :class:`ViewParams` (per view) -> :class:`Reconstruction` (exports).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, ClassVar, Sequence

import numpy as np
import torch

from .errors import MfnetError
from .render.cameras import WeakPerspectiveCameras


@dataclass
class Views:
    """N photos of one person, cropped to squares around the face.

    images: (N, 3, S, S) float in [0, 1]; landmarks: (N, 68, 2) iBUG points in crop pixels;
    landmark_weights: (N, 68) in [0, 1]; crop_to_original: (N, 2, 3) affine maps from crop
    pixels to original-photo pixels; names: the source files; focal_px: (N,) each camera's focal
    length in crop pixels (NaN where unknown), or None when no view's is known.
    """

    images: torch.Tensor
    landmarks: torch.Tensor
    landmark_weights: torch.Tensor
    crop_to_original: np.ndarray
    names: list[str]
    original_sizes: list[tuple[int, int]] = field(default_factory=list)
    detections: list = field(default_factory=list)  # mfnet.detect.Landmarks2D per view (original pixels)
    photos: list = field(default_factory=list)  # ImageView per view (working image + scale), for overlays / texture
    crops: list = field(default_factory=list)  # mfnet.detect.FaceCrop per view
    dense_landmarks: torch.Tensor | None = None  # (N, 478, 2) MediaPipe mesh points, crop pixels
    dense_weights: torch.Tensor | None = None  # (N, 478)
    crop_scale: float = 1.5  # each crop's side / its landmark box's longer side (mfnet.detect.face_crop)
    focal_px: torch.Tensor | None = None  # (N,) crop pixels, NaN where unknown (photos' EXIF or the caller's)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def size(self) -> int:
        return int(self.images.shape[-1])

    def select(self, index: Sequence[int]) -> "Views":
        """The views at ``index`` (in that order)."""
        idx = list(index)

        def pick(x):
            return None if x is None else x[idx]

        def items(xs):
            return [xs[i] for i in idx] if xs else xs

        return Views(self.images[idx], self.landmarks[idx], self.landmark_weights[idx], self.crop_to_original[idx],
                     items(self.names), items(self.original_sizes), items(self.detections), items(self.photos),
                     items(self.crops), pick(self.dense_landmarks), pick(self.dense_weights), self.crop_scale,
                     pick(self.focal_px))

    def to(self, device) -> "Views":
        def mv(t):
            return None if t is None else t.to(device)

        return Views(self.images.to(device), self.landmarks.to(device), self.landmark_weights.to(device),
                     self.crop_to_original, self.names, self.original_sizes, self.detections, self.photos,
                     self.crops, mv(self.dense_landmarks), mv(self.dense_weights), self.crop_scale, mv(self.focal_px))


@dataclass
class HeadParams:
    """Parameters shared by all views of one subject (one moment in time). A fit of one head per
    view (:class:`mfnet.fit.fitter.MultiViewFitter` with ``per_view_heads``) holds (N, S), (N, E)
    and (N, 3) instead."""

    shape: torch.Tensor  # (S,) or (N, S)
    expression: torch.Tensor  # (E,) or (N, E)
    jaw: torch.Tensor  # (3,) or (N, 3) axis-angle
    neck: torch.Tensor | None = None  # (3,) axis-angle, usually folded into the view rotation
    eyes: torch.Tensor | None = None  # (6,) left then right eye axis-angle

    def codes(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Shape (B, S) and expression (B, E) as the head model takes them: B = 1 for one shared head,
        N for one head per view."""
        if self.shape.dim() == 2:
            return self.shape, self.expression
        return self.shape[None], self.expression[None]

    def pose(self, view_rotations: torch.Tensor) -> torch.Tensor:
        """Full FLAME pose (N, 15) for ``view_rotations (N, 3)``: [global, neck, jaw, eye_l, eye_r]."""
        n = view_rotations.shape[0]
        z = view_rotations.new_zeros(3)
        parts = [self.neck if self.neck is not None else z, self.jaw,
                 self.eyes if self.eyes is not None else view_rotations.new_zeros(6)]
        rest = torch.cat([p.to(view_rotations).expand(n, -1) if p.dim() == 1 else p.to(view_rotations)
                          for p in parts], dim=1)
        return torch.cat([view_rotations, rest], dim=1)

    def detach(self) -> "HeadParams":
        d = {k: (v.detach().clone() if isinstance(v, torch.Tensor) else v) for k, v in self.__dict__.items()}
        return HeadParams(**d)


@dataclass
class ViewParams:
    """Per-view head rotation, weak-perspective camera (at a finite distance when ``inv_distance`` is
    set, :class:`~mfnet.render.cameras.WeakPerspectiveCameras`) and SH lighting."""

    rotation: torch.Tensor  # (N, 3) axis-angle of the head as seen by each camera
    scale: torch.Tensor  # (N,)
    trans: torch.Tensor  # (N, 2)
    light: torch.Tensor | None = None  # (N, 9, 3)
    inv_distance: torch.Tensor | None = None  # (N,) 1 / camera distance (1/m) from the head's origin; None: orthographic

    def cameras(self) -> WeakPerspectiveCameras:
        return WeakPerspectiveCameras(self.scale, self.trans, self.inv_distance)

    def detach(self) -> "ViewParams":
        def d(t):
            return None if t is None else t.detach().clone()

        return ViewParams(d(self.rotation), d(self.scale), d(self.trans), d(self.light), d(self.inv_distance))

    def __len__(self) -> int:
        return int(self.rotation.shape[0])


@dataclass
class Reconstruction:
    """What a reconstruction produced, ready for export."""

    model_name: str
    head: HeadParams
    views: ViewParams
    vertices: np.ndarray  # (V, 3) canonical (identity view rotation), metres
    faces: np.ndarray  # (F, 3)
    names: list[str]
    crop_size: int
    crop_to_original: np.ndarray  # (N, 2, 3)
    detected_landmarks: np.ndarray  # (N, 68, 2) original pixels
    fitted_landmarks: np.ndarray  # (N, 68, 2) original pixels
    landmarks3d: np.ndarray  # (68, 3) canonical
    vt: np.ndarray | None = None
    ft: np.ndarray | None = None
    texture: np.ndarray | None = None  # (T, T, 3) uint8
    history: dict[str, list[float]] = field(default_factory=dict)  # stage -> total loss per step
    timings: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    posed_vertices: np.ndarray | None = None  # (N, V, 3) per-view heads, in the frame the cameras project
    photos: list | None = None  # (H, W, 3) uint8 photos at original resolution, for overlays
    calibrated_cameras: dict | None = None  # --cameras: the rig's K, R, t and the head's world pose
    neutral_shape: np.ndarray | None = None  # (S,) identity of the neutral head (mfnet.fit.neutral)
    neutral_vertices: np.ndarray | None = None  # (V, 3) that neutral head: no expression, jaw closed, metres
    model_meta: dict = field(default_factory=dict)  # the head model's metadata (source, the file's component counts)
    # per view, the person's outline(s) the single-view silhouette term pulled the face onto: (K, 2) arrays
    # of original pixels (None: no silhouette term)
    person_outlines: list[list[np.ndarray]] | None = None

    @property
    def reprojection_error_px(self) -> np.ndarray:
        """(N,) mean distance between detected and fitted landmarks, original pixels."""
        return np.linalg.norm(self.detected_landmarks - self.fitted_landmarks, axis=-1).mean(-1)

    @property
    def reprojection_error_iod(self) -> np.ndarray:
        """(N,) the same error in percent of each photo's inter-ocular distance (outer eye corners,
        iBUG 36 and 45, of the detected landmarks): comparable across photo sizes."""
        d = np.asarray(self.detected_landmarks, np.float64)
        iod = np.linalg.norm(d[:, 45] - d[:, 36], axis=-1)
        return 100.0 * self.reprojection_error_px / np.maximum(iod, 1e-9)

    #: what :meth:`save` writes with: :func:`mfnet.export.reconstruction.save_reconstruction`, which sets
    #: it when its module loads (the exporter sits above these records in the layer order)
    writer: ClassVar[Callable[..., Path] | None] = None

    def save(self, out_dir: str | Path, **kwargs) -> Path:
        """Write all outputs: :func:`mfnet.export.reconstruction.save_reconstruction` (loaded by
        :func:`mfnet.reconstruct`)."""
        if Reconstruction.writer is None:
            raise MfnetError("Reconstruction.save() writes with mfnet.export.reconstruction, which is not loaded: "
                             "import it, or call its save_reconstruction(rec, out_dir)")
        return Reconstruction.writer(self, out_dir, **kwargs)
