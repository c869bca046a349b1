"""The ground-truth scans of the real-scan benchmark (:mod:`mfnet.evaluate.realscans`): where the data
and the derived-photo cache live, the :class:`Scan` record, its face frame and face regions. Below both
:mod:`~mfnet.evaluate.realscans` (James, the cases) and :mod:`~mfnet.evaluate.realscans_render` (Lee)."""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from ..errors import MfnetError
from ..ibug import NOW_LANDMARKS

REALSCANS_ENV = "MFNET_REALSCANS_DIR"
REGIONS = ("forehead", "eyes", "nose", "cheeks", "mouth", "chin")
_CACHE_VERSION = "1"  # bump when the derived photos change


def realscans_dir(path: str | os.PathLike | None = None) -> Path:
    """The real-scan data folder: ``path``, else ``$MFNET_REALSCANS_DIR``, else ``<repo>/../shared/data/realscans``.
    Raises a one-line :class:`MfnetError` when it does not hold the data."""
    if path is None:
        env = os.environ.get(REALSCANS_ENV)
        path = Path(env) if env else Path(__file__).resolve().parents[2].parent / "shared" / "data" / "realscans"
    path = Path(path)
    if not (path / "james" / "james.obj").is_file() or not (path / "lee-perry-smith" / "LeePerrySmith.glb").is_file():
        raise MfnetError(f"real-scan data not found at {path} (expected james/james.obj and "
                         f"lee-perry-smith/LeePerrySmith.glb): set {REALSCANS_ENV} to the realscans folder")
    return path


def cache_dir() -> Path:
    """Where derived photos (James's two halves, Lee renders, cams.json) are written:
    ``<mfnet user dir>/cache/realscans``."""
    from ..headmodel.registry import user_dir

    d = user_dir() / "cache" / "realscans"
    d.mkdir(parents=True, exist_ok=True)
    return d


def cache_key(*parts) -> str:
    return hashlib.sha1(json.dumps([_CACHE_VERSION, *parts], sort_keys=True, default=str).encode()).hexdigest()[:10]


@dataclass
class Scan:
    """A ground-truth surface in mm with its 68 iBUG landmarks (subject's right = iBUG 36-41)."""

    name: str
    vertices: np.ndarray  # (N, 3) mm
    faces: np.ndarray  # (F, 3)
    landmarks: np.ndarray  # (68, 3) mm, iBUG order
    note: str = ""
    extra: dict = field(default_factory=dict)
    exterior: np.ndarray | None = None  # (N,) bool: vertices on the outer surface (None: all)

    @property
    def now_landmarks(self) -> np.ndarray:
        return self.landmarks[list(NOW_LANDMARKS)]

    @property
    def scored_vertices(self) -> np.ndarray:
        """The vertices given to the NoW evaluation: the outer surface only (a scan's hidden inner parts,
        such as a mouth bag or eye sockets, are no part of the face)."""
        return self.vertices if self.exterior is None else self.vertices[self.exterior]

    @cached_property
    def crop_idx(self) -> np.ndarray:
        """Indices (into ``vertices``) of the scored vertices in the NoW crop, in evaluate_now's order."""
        from .now import crop_scan

        keep = crop_scan(self.vertices, self.now_landmarks)
        if self.exterior is not None:
            keep &= self.exterior
        return np.flatnonzero(keep)

    @cached_property
    def regions(self) -> np.ndarray:
        """(N,) index into :data:`REGIONS` per scan vertex (:func:`scan_regions`)."""
        return scan_regions(self.vertices, self.landmarks)


def face_frame(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(origin, R) of a face frame from 68 iBUG points: rows of R are x = towards the subject's left
    (iBUG 36 -> 45), y = up (chin -> brows, orthogonalised), z = x cross y (out of the face); origin =
    the nose bottom (iBUG 33).  Raises MfnetError when z does not point towards the nose tip: the
    landmarks' left and right are swapped (or the surface is mirrored)."""
    L = np.asarray(landmarks, np.float64)
    x = L[45] - L[36]
    x /= np.linalg.norm(x)
    y = L[17:27].mean(0) - L[8]
    y -= x * (x @ y)
    y /= np.linalg.norm(y)
    z = np.cross(x, y)
    eyes = (L[36:42].mean(0) + L[42:48].mean(0)) / 2
    if (L[30] - eyes) @ z <= 0:
        raise MfnetError("scan landmarks: iBUG 36-41 are not on the subject's right (left/right swapped or "
                         "the surface is mirrored)")
    return L[33].copy(), np.stack([x, y, z])


def scan_regions(vertices: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """Face region of every scan vertex (index into :data:`REGIONS`): the group of its nearest anchor.

    Anchors, from the scan's own 68 iBUG landmarks (each virtual one snapped to the nearest scan vertex):
    eyes = brows 17-26 and eyes 36-47; nose = 27-35; mouth = 48-67; chin = jaw 6-10 and the points
    halfway from the lower lip (57) to the chin (8); cheeks = jaw 0-5 and 11-16 and, per side, the
    midpoints jaw 1 - lower lid 41/46, jaw 3 - nose wing 31/35 and jaw 5 - mouth corner 48/54 (11 -
    54, 13 - 35, 15 - 46 on the left); forehead = each brow point moved up (face frame y) by 1x and
    2x the mean brow-to-eye distance.  Everything above the brows is thus forehead, the periocular
    band eyes, the band between nose/mouth and jaw contour cheeks.
    """
    V = np.asarray(vertices, np.float64)
    L = np.asarray(landmarks, np.float64)
    _, R = face_frame(L)
    up = R[1]
    h = float(np.linalg.norm(L[17:27].mean(0) - L[36:48].mean(0)))
    mid = lambda a, b: (L[a] + L[b]) / 2  # noqa: E731
    virtual = {
        "chin": [mid(57, 8), mid(57, 7), mid(57, 9)],
        "cheeks": [mid(1, 41), mid(3, 31), mid(5, 48), mid(15, 46), mid(13, 35), mid(11, 54)],
        "forehead": [L[i] + k * h * up for i in range(17, 27) for k in (1.0, 2.0)],
    }
    groups = {"eyes": list(range(17, 27)) + list(range(36, 48)), "nose": list(range(27, 36)),
              "mouth": list(range(48, 68)), "chin": list(range(6, 11)),
              "cheeks": list(range(0, 6)) + list(range(11, 17))}
    from scipy.spatial import cKDTree

    tree = cKDTree(V)
    pts, lab = [], []
    for name in REGIONS:
        for i in groups.get(name, []):
            pts.append(L[i])
            lab.append(REGIONS.index(name))
        for p in virtual.get(name, []):
            pts.append(V[tree.query(p)[1]])
            lab.append(REGIONS.index(name))
    return np.asarray(lab)[cKDTree(np.asarray(pts)).query(V)[1]]
