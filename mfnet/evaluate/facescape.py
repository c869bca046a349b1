"""FaceScape benchmark metrics (FS-Wild, FS-Lab): Chamfer distance, mean normal error, completeness rate.

Implements the protocol of ``/work/shared/reference/metrics.md`` from its
definitions:

1. **Units** -- both meshes are multiplied by the item's pupil scale so that
   the GT inter-pupil distance is 62.85 mm (FS-Wild: ``62.85 / GT pupil
   distance``, FS-Lab: GT stored with pupil distance 1, so x62.85).
2. **Depth alignment** -- both meshes are rendered with
   :func:`mfnet.render.rasterize` to 256x256 depth maps in the GT camera;
   over pixels covered by both, ``delta = argmin_z sum |d_gt - z - d_pred|``
   (the median of ``d_gt - d_pred``).  FS-Wild (orthographic): the prediction
   moves by ``delta`` in depth (its z by ``-delta``, the camera looks down -z).
   FS-Lab (perspective): prediction vertices are scaled about the camera
   centre by ``m / (m - delta)``, ``m`` the mean GT depth over the mask.
   No rotation, no ICP, no landmark fit.
3. **Canonical frame** -- subtract the GT head centre, rotate by ``R^T``.
4. **Cylindrical sampling** -- 256x256 horizontal rays from the y axis
   (:func:`~mfnet.evaluate.cylinder.cylinder_raycast`), the farthest hit per
   ray gives a radius map and the hit triangle.
5. **CR** = rays hit on both / rays hit on the GT.
6. **CD** (mm) -- both radius maps, masked to the rays hit on both, become
   grid meshes (two triangles per cell; a cell is dropped where a corner
   radius is 0 or a forward/diagonal radius jump ``|r(i,j) - r(i,j+1)|``,
   ``|r(i,j) - r(i+1,j)|``, ``|r(i,j) - r(i+1,j+1)|`` reaches 15 mm).  Every
   vertex of each mesh (those its faces use, as a mesh library keeps them)
   gets its exact distance to the other mesh's surface; one mean over both
   directions (NaNs dropped).  The protocol rotates these meshes back by R
   first; distances do not change, so that is skipped.  The closest-point
   search uses the grid itself (:func:`~mfnet.evaluate.cylinder.grid_distances`).
7. **MNE** (rad) -- per ray hit on both, the face normals ``n`` of the two hit
   triangles (canonical frame) are mapped to ``(n + 1) / |n + 1|`` (a quirk
   of the reference evaluation, needed to match published numbers) and
   compared by ``arccos`` of their dot product; mean over rays.

Entry points: :func:`evaluate_wild`, :func:`evaluate_lab` (camera-frame
meshes in, :class:`FaceScapeMetrics` out), :func:`cylinder_metrics` (meshes
already in canonical mm), and the grouping helpers :func:`wild_angle_bin`,
:func:`summarise`.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch

from ..render.cameras import PerspectiveCameras, WeakPerspectiveCameras
from ..render.rasterize import rasterize
from ..utils.rotation import FLIP
from .cylinder import JUMP_MM, cylinder_raycast, grid_distances, radius_map_mesh
from .geometry import face_normals

__all__ = [
    "PUPIL_DISTANCE_MM",
    "JUMP_MM",
    "WILD_ANGLE_BINS",
    "LAB_FOCALS",
    "FaceScapeMetrics",
    "pupil_scale",
    "render_depth",
    "l1_depth_offset",
    "align_depth_wild",
    "align_depth_lab",
    "canonicalize",
    "radius_map_mesh",
    "normal_error",
    "cylinder_metrics",
    "evaluate_wild",
    "evaluate_lab",
    "wild_angle_bin",
    "summarise",
]

PUPIL_DISTANCE_MM = 62.85
DEPTH_SIZE = 256
WILD_ANGLE_BINS = ("0-5", "5-30", "30-60", "60-90")  # FS-Wild items 0-99, 100-199, 200-299, 300-399
LAB_FOCALS = (1200, 600, 300)


@dataclass
class FaceScapeMetrics:
    """Metrics of one item.

    Attributes:
        cd: Chamfer distance in mm (NaN if the two surfaces share no ray).
        mne: mean normal error in radians (NaN if no shared ray).
        cr: completeness rate in [0, 1] (rays hit on both / rays hit on the GT).
        depth_offset: the L1 depth offset delta (mm) found by the alignment.
        gt_rays: rays hitting the GT; common_rays: rays hitting both.
    """

    cd: float
    mne: float
    cr: float
    depth_offset: float = 0.0
    gt_rays: int = 0
    common_rays: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


def pupil_scale(vertices: np.ndarray, left_eye: np.ndarray, right_eye: np.ndarray,
                target_mm: float = PUPIL_DISTANCE_MM) -> float:
    """``target_mm / |pupil_left - pupil_right|``, each pupil the mean of its eye's vertices."""
    v = np.asarray(vertices, np.float64)
    dist = float(np.linalg.norm(v[np.asarray(left_eye)].mean(0) - v[np.asarray(right_eye)].mean(0)))
    if not dist > 0:
        raise ValueError("the two pupils coincide: cannot normalise the scale")
    return target_mm / dist


def render_depth(vertices: np.ndarray, faces: np.ndarray, camera, size: int = DEPTH_SIZE) -> np.ndarray:
    """(size, size) depth map of a mesh seen by ``camera`` (an mfnet.render camera, batch 1); NaN = background.

    Runs torch on one thread: a 256x256 depth map is a few milliseconds of
    work, and OpenMP thread hand-offs cost far more on a busy CPU.
    """
    v = torch.as_tensor(np.ascontiguousarray(vertices, np.float64))[None]
    f = torch.as_tensor(np.ascontiguousarray(faces, np.int64))
    cam = camera.to(dtype=torch.float64)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.no_grad():
            screen = cam.project(v, size)
            frags = rasterize(screen, f, size, perspective_correct=cam.perspective_correct)
    finally:
        torch.set_num_threads(threads)
    z = frags.zbuf[0].numpy().astype(np.float64)
    z[~np.isfinite(z)] = np.nan
    return z


def l1_depth_offset(depth_gt: np.ndarray, depth_pred: np.ndarray) -> tuple[float, np.ndarray]:
    """``delta = argmin_z sum_mask |d_gt - z - d_pred|`` (the median) and the mask of pixels covered by both.

    Returns ``(0.0, mask)`` when the depth maps do not overlap.
    """
    mask = np.isfinite(depth_gt) & np.isfinite(depth_pred)
    if not mask.any():
        return 0.0, mask
    return float(np.median(depth_gt[mask] - depth_pred[mask])), mask


def _wild_camera(scale_mm: float) -> WeakPerspectiveCameras:
    # the normalised orthographic cube [-1, 1] fills the 256-px image; vertices are in mm = cube * scale
    return WeakPerspectiveCameras(torch.tensor([1.0 / scale_mm], dtype=torch.float64), torch.zeros(1, 2, dtype=torch.float64))


def align_depth_wild(pred_v, pred_f, gt_v, gt_f, scale_mm: float) -> tuple[np.ndarray, float]:
    """FS-Wild depth alignment of mm meshes (orthographic camera looking down -z, cube [-1,1] x scale_mm).

    Returns the shifted prediction vertices and delta.
    """
    cam = _wild_camera(scale_mm)
    delta, _ = l1_depth_offset(render_depth(gt_v, gt_f, cam), render_depth(pred_v, pred_f, cam))
    out = np.array(pred_v, np.float64, copy=True)
    out[:, 2] -= delta  # depth = -z: the prediction's depth grows by delta
    return out, delta


def _lab_camera(K: np.ndarray, image_size, looks_down_negative_z: bool) -> PerspectiveCameras:
    h, w = image_size
    K = np.asarray(K, np.float64).copy()
    K[0] *= DEPTH_SIZE / float(w)
    K[1] *= DEPTH_SIZE / float(h)
    R = FLIP if looks_down_negative_z else np.eye(3)
    return PerspectiveCameras(torch.tensor(K)[None], torch.tensor(R)[None], torch.zeros(1, 3, dtype=torch.float64))


def align_depth_lab(pred_v, pred_f, gt_v, gt_f, K, image_size) -> tuple[np.ndarray, float]:
    """FS-Lab depth alignment of camera-frame meshes (camera centre at the origin).

    ``K`` are the intrinsics of the ``image_size = (h, w)`` photo (rescaled to
    the 256x256 depth map).  The camera looks down +z (OpenCV) when the GT
    lies at positive z, else down -z (OpenGL/trimesh, y up).  Returns the
    prediction scaled about the origin by ``m / (m - delta)`` and delta.
    """
    gt_v = np.asarray(gt_v, np.float64)
    cam = _lab_camera(K, image_size, looks_down_negative_z=float(gt_v[:, 2].mean()) < 0)
    d_gt = render_depth(gt_v, gt_f, cam)
    delta, mask = l1_depth_offset(d_gt, render_depth(pred_v, pred_f, cam))
    if not mask.any():
        return np.array(pred_v, np.float64, copy=True), 0.0
    m = float(d_gt[mask].mean())
    return np.asarray(pred_v, np.float64) * (m / (m - delta)), delta


def canonicalize(vertices: np.ndarray, center: np.ndarray, rotation: np.ndarray) -> np.ndarray:
    """``R^T (v - center)`` for every vertex: the GT head frame (row-vector form ``(v - c) @ R``)."""
    return (np.asarray(vertices, np.float64) - np.asarray(center, np.float64).reshape(1, 3)) @ np.asarray(rotation, np.float64)


def normal_error(n_gt: np.ndarray, n_pred: np.ndarray) -> np.ndarray:
    """Per-pair MNE angle (rad) of unit normals (N, 3): arccos of ``n'_gt . n'_pred``, ``n' = (n+1)/|n+1|``."""
    a = np.asarray(n_gt, np.float64) + 1.0
    b = np.asarray(n_pred, np.float64) + 1.0
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    b /= np.linalg.norm(b, axis=1, keepdims=True)
    return np.arccos(np.clip((a * b).sum(1), -1.0, 1.0))


def cylinder_metrics(pred_v, pred_f, gt_v, gt_f, jump: float = JUMP_MM) -> FaceScapeMetrics:
    """CD / MNE / CR of two meshes already aligned and in the canonical frame, in mm."""
    r_gt, f_gt = cylinder_raycast(gt_v, gt_f)
    r_pr, f_pr = cylinder_raycast(pred_v, pred_f)
    gt_hit = f_gt >= 0
    both = gt_hit & (f_pr >= 0)
    n_gt, n_both = int(gt_hit.sum()), int(both.sum())
    cr = n_both / n_gt if n_gt else float("nan")
    if n_both == 0:
        return FaceScapeMetrics(float("nan"), float("nan"), cr, 0.0, n_gt, 0)
    ng = face_normals(np.asarray(gt_v, np.float64), np.asarray(gt_f))[f_gt[both]]
    npr = face_normals(np.asarray(pred_v, np.float64), np.asarray(pred_f))[f_pr[both]]
    mne = float(normal_error(ng, npr).mean())
    m_gt, m_pr = np.where(both, r_gt, 0.0), np.where(both, r_pr, 0.0)
    d = np.concatenate([grid_distances(m_gt, m_pr, jump), grid_distances(m_pr, m_gt, jump)])
    cd = float(np.nanmean(d)) if np.isfinite(d).any() else float("nan")
    return FaceScapeMetrics(cd, mne, cr, 0.0, n_gt, n_both)


def _check_mesh(name, v, f):
    v = np.ascontiguousarray(v, np.float64)
    f = np.ascontiguousarray(f, np.int64)
    if v.ndim != 2 or v.shape[1] != 3 or f.ndim != 2 or f.shape[1] != 3:
        raise ValueError(f"{name}: expected vertices (V, 3) and triangles (F, 3), got {v.shape} and {f.shape}")
    if f.size and (f.min() < 0 or f.max() >= v.shape[0]):
        raise ValueError(f"{name}: a face indexes a vertex out of range")
    return v, f


def evaluate_wild(pred_v, pred_f, gt_v, gt_f, *, head_center, head_rotation, pupil_scale: float) -> FaceScapeMetrics:
    """One FS-Wild item.

    Args:
        pred_v, pred_f, gt_v, gt_f: meshes in the normalised orthographic
            camera frame of the 256-px photo (x right, y up, camera looking
            down -z, image = cube [-1, 1]).
        head_center (3,), head_rotation (3, 3): GT head pose in that frame
            (the centre in the same units as the meshes).
        pupil_scale: mm per mesh unit (62.85 / GT pupil distance).
    """
    pred_v, pred_f = _check_mesh("prediction", pred_v, pred_f)
    gt_v, gt_f = _check_mesh("ground truth", gt_v, gt_f)
    s = float(pupil_scale)
    pred_mm, delta = align_depth_wild(pred_v * s, pred_f, gt_v * s, gt_f, s)
    c = np.asarray(head_center, np.float64) * s
    out = cylinder_metrics(canonicalize(pred_mm, c, head_rotation), pred_f, canonicalize(gt_v * s, c, head_rotation), gt_f)
    out.depth_offset = delta
    return out


def evaluate_lab(pred_v, pred_f, gt_v, gt_f, *, K, image_size, head_center, head_rotation,
                 pupil_scale: float = PUPIL_DISTANCE_MM) -> FaceScapeMetrics:
    """One FS-Lab item.

    Args:
        pred_v, pred_f, gt_v, gt_f: meshes in the GT camera frame (camera
            centre at the origin), GT units (pupil distance 1).
        K (3, 3), image_size (h, w): intrinsics of the photo.
        head_center (3,), head_rotation (3, 3): GT head pose in the camera frame, GT units.
        pupil_scale: mm per GT unit (62.85).
    """
    pred_v, pred_f = _check_mesh("prediction", pred_v, pred_f)
    gt_v, gt_f = _check_mesh("ground truth", gt_v, gt_f)
    s = float(pupil_scale)
    pred_mm, delta = align_depth_lab(pred_v * s, pred_f, gt_v * s, gt_f, K, image_size)
    c = np.asarray(head_center, np.float64) * s
    out = cylinder_metrics(canonicalize(pred_mm, c, head_rotation), pred_f, canonicalize(gt_v * s, c, head_rotation), gt_f)
    out.depth_offset = delta
    return out


def wild_angle_bin(index: int) -> str:
    """FS-Wild yaw bin of item ``index`` (0-399): 100 items per bin, '0-5', '5-30', '30-60', '60-90' degrees."""
    return WILD_ANGLE_BINS[min(max(int(index), 0) // 100, len(WILD_ANGLE_BINS) - 1)]


def summarise(rows: list[dict], key: str | None = None, metrics=("cd", "mne", "cr")) -> list[dict]:
    """Mean of each metric (NaNs dropped) over all rows, or per value of ``rows[i][key]``.

    Returns ``[{key: value, 'n': count, 'cd': ..., 'mne': ..., 'cr': ...}, ...]``
    (one row ``{'group': 'all', ...}`` without key), groups in first-seen order.
    """
    groups: dict = {}
    for r in rows:  # per item, not per vertex
        groups.setdefault("all" if key is None else r.get(key), []).append(r)
    out = []
    for g, items in groups.items():
        row = {key or "group": g, "n": len(items)}
        for m in metrics:
            vals = np.array([float(it[m]) for it in items], np.float64)
            row[m] = float(np.nanmean(vals)) if np.isfinite(vals).any() else math.nan
        out.append(row)
    return out
