"""Detector-specific landmark embeddings, calibrated on renders of the model itself.

A model's own 68 landmark vertices and a detector's 68 points follow slightly different
conventions (where exactly "the jaw line" or "the brow" is). Fitting one to the other leaves a
systematic error in the shape. This module renders random heads of the model, runs the detector
on the renders, maps each detected point back onto the surface it landed on (face + barycentric
coordinates), carries it to the mean head, takes the median over renders and snaps it to the
nearest surface point: an embedding whose landmarks are where *that detector* puts them.
The result is stored in the model file as ``emb__<backend>__faces`` / ``emb__<backend>__bary``.
"""
from __future__ import annotations

import logging
import warnings

import numpy as np

from ..data.synthetic import render_subject, to_uint8
from ..detect import get_detector
from ..detect.detect import detect_landmarks
from ..detect.errors import NoFaceError
from ..headmodel.data import HeadModelData
from ..headmodel.model import HeadModel
from ..render.rasterize import rasterize

log = logging.getLogger(__name__)
CONTOUR = np.arange(17)


def _barycentric_2d(p: np.ndarray, tri: np.ndarray) -> np.ndarray:
    """(K, 2) points, (K, 3, 2) triangles -> (K, 3) barycentric weights, clipped into the triangle."""
    a, b, c = tri[:, 0], tri[:, 1], tri[:, 2]
    v0, v1, v2 = b - a, c - a, p - a
    d00, d01, d11 = (v0 * v0).sum(1), (v0 * v1).sum(1), (v1 * v1).sum(1)
    d20, d21 = (v2 * v0).sum(1), (v2 * v1).sum(1)
    den = np.where(np.abs(d00 * d11 - d01 ** 2) < 1e-12, 1e-12, d00 * d11 - d01 ** 2)
    v = (d11 * d20 - d01 * d21) / den
    w = (d00 * d21 - d01 * d20) / den
    bary = np.clip(np.stack([1 - v - w, v, w], 1), 0, None)
    return bary / bary.sum(1, keepdims=True).clip(1e-12)


def calibrate_embedding(data: HeadModelData, backend: str = "mediapipe", subjects: int = 4,
                        yaws=(-15.0, 0.0, 15.0), image_size: int = 384, seed: int = 12345,
                        dense: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(L,) faces and (L, 3) barycentrics of the detector's landmarks on ``data``'s mean head:
    the 68 iBUG points, or with ``dense=True`` MediaPipe's 478 face-mesh points."""
    import trimesh

    model = HeadModel(data)
    detector = get_detector(backend)
    faces_np = data.faces
    L = 478 if dense else 68
    samples: list[list[np.ndarray]] = [[] for _ in range(L)]
    template = data.v_template.astype(np.float64)
    for s in range(subjects):
        subj = render_subject(model, yaws, image_size=image_size, seed=seed + s, expression_scale=0.0)
        sv = subj.cameras.project(subj.vertices, (image_size, image_size))
        frags = rasterize(sv, model.faces, (image_size, image_size))
        p2f = frags.pix_to_face.numpy()
        svn = sv[..., :2].numpy()
        for v, img in enumerate(to_uint8(subj.images)):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    det = detect_landmarks(img, backend, detector=detector)
            except NoFaceError:
                continue
            pts = det.mesh478[:, :2] if dense else det.points
            if pts is None:
                raise RuntimeError(f"{backend} gives no dense mesh to calibrate")
            p = pts.astype(np.float64) + 0.5  # detector -> renderer pixel convention
            pi = np.clip(np.floor(p).astype(int), 0, image_size - 1)
            f = p2f[v, pi[:, 1], pi[:, 0]]
            ok = f >= 0
            if abs(subj.yaws_deg[v]) > 10:  # the far-side contour is not a fixed surface point
                if dense:  # keep the near half (positive yaw turns the subject's left, image right, away)
                    mid = p[168, 0]
                    ok &= (p[:, 0] <= mid + 2) if subj.yaws_deg[v] > 0 else (p[:, 0] >= mid - 2)
                else:
                    far = CONTOUR[9:] if subj.yaws_deg[v] > 0 else CONTOUR[:8]
                    ok[far] = False
            idx = np.nonzero(ok)[0]
            tri = faces_np[f[idx]]
            bary = _barycentric_2d(p[idx], svn[v][tri])
            pts = (template[tri] * bary[..., None]).sum(1)  # carried to the mean head
            for i, x in zip(idx, pts):
                samples[i].append(x)
    missing = [i for i in range(L) if len(samples[i]) < 2]
    if missing and dense:  # points never seen (e.g. under the jaw): keep them at their median over fewer renders
        missing = [i for i in range(L) if len(samples[i]) < 1]
    if missing:
        raise RuntimeError(f"{backend} calibration: landmarks {missing} were detected in fewer than 2 renders")
    target = np.stack([np.median(np.stack(s), 0) for s in samples])
    mesh = trimesh.Trimesh(template, faces_np, process=False)
    closest, _, tri_id = trimesh.proximity.closest_point(mesh, target)
    bary = trimesh.triangles.points_to_barycentric(template[faces_np[tri_id]], closest)
    bary = np.clip(bary, 0, None)
    bary /= bary.sum(1, keepdims=True)
    if not dense:
        own = (template[faces_np[data.lmk_faces_idx]] * data.lmk_bary_coords[..., None]).sum(1)
        shift = np.linalg.norm(target - own, axis=1)
        log.info("%s landmark calibration: moved landmarks by %.1f mm on average (max %.1f mm)", backend,
                 1000 * shift.mean(), 1000 * shift.max())
    return tri_id.astype(np.int64), bary.astype(np.float32)


def add_calibrated_embedding(data: HeadModelData, backend: str = "mediapipe", **kwargs) -> HeadModelData:
    """Calibrate and store the embedding for ``backend`` in ``data.embeddings`` (in place); with
    ``dense=True`` the 478-point MediaPipe mesh is stored as ``<backend>478``."""
    name = f"{backend}478" if kwargs.get("dense") else backend
    data.embeddings[name] = calibrate_embedding(data, backend, **kwargs)
    data.meta.setdefault("calibrated_embeddings", {})[name] = {
        k: (list(v) if isinstance(v, tuple) else v) for k, v in kwargs.items()} or "defaults"
    return data
