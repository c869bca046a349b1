"""Real-scan benchmark data and scoring: two real faces no head model here was built from.

Data: ``$MFNET_REALSCANS_DIR``, else ``<repo>/../shared/data/realscans`` (read in place, never copied
into the repository; derived photos go to a cache folder, :func:`cache_dir`).

* **james** (menpo3d, BSD-3): two raw photos of a stereo rig side by side in ``james.jpg`` (2400x1600;
  split into ``james_left.png`` / ``james_right.png``, 1200x1600 each), the captured surface
  ``james.obj`` (mm) and 68 landmarks ``james.ljson``.  The ljson lists its points in menpo's
  *labelled* order (chin, leye, reye, leyebrow, nose, reyebrow, mouth), not iBUG order: they are
  permuted to iBUG-68 by :data:`JAMES_LJSON_TO_IBUG`.  Its ``leye``/``leyebrow`` are the eye/brow on
  the image's left, i.e. the subject's RIGHT (iBUG 36-41 / 17-21); :func:`face_frame` checks the
  handedness from the geometry (eye corners x up must point out of the face, towards the nose tip).
* **james-cal**: the same photos with the rig's cameras: ``cameras_dlt.npz`` (3x4 DLT matrices of the
  whole image, fitted to the obj's UVs, which are continuous pixel coordinates, pixel centres at +0.5)
  decomposed into K, R, t (:func:`james_cameras`) and written as a ``cams.json`` (units mm, OpenCV
  pixel centres at integers, so cx, cy - 0.5; the right camera's x shifted by -1200).
* **lee-...**: photo-realistic renders of the Lee Perry-Smith scan (:mod:`mfnet.evaluate.realscans_render`).

Scoring (:func:`score_mesh`): the NoW protocol of :func:`mfnet.evaluate.now.evaluate_now` (7-landmark
similarity, refinement, scan-to-mesh distance on the NoW crop of the scan, mm) for the fitted mesh
(``rec.vertices``: canonical pose, fitted expression) and the **neutral** mesh (same shape,
expression and jaw zero, :func:`neutral_mesh`), plus medians per face region (:func:`scan_regions`).
Baselines: the model's mean head (:func:`mean_head`) and the landmarks-only fit (preset ``fast``).
"""
from __future__ import annotations

import json
import os
import time
import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..errors import MfnetError
from ..ibug import NOW_LANDMARKS
# also this module's interface (they lived here):
from .scans import (REALSCANS_ENV, REGIONS, Scan, cache_dir, cache_key, face_frame,  # noqa: F401
                    realscans_dir, scan_regions)

JAMES_SPLIT_X = 1200  # left camera x < 1200, right camera x >= 1200 in james.jpg
#: iBUG index -> james.ljson index (ljson groups: chin 0-16, leye 17-22, reye 23-28, leyebrow 29-33,
#: nose 34-42, reyebrow 43-47, mouth 48-67; 'l' = image left = subject's right)
JAMES_LJSON_TO_IBUG = (list(range(0, 17)) + list(range(29, 34)) + list(range(43, 48)) + list(range(34, 43))
                       + list(range(17, 23)) + list(range(23, 29)) + list(range(48, 68)))


def load_james(root: str | os.PathLike | None = None) -> Scan:
    """The James capture (mm) with its 68 landmarks permuted to iBUG order."""
    from ..headmodel.objio import read_obj

    d = realscans_dir(root) / "james"
    obj = read_obj(d / "james.obj")
    F, FT, _ = obj.triangulate()
    doc = json.loads((d / "james.ljson").read_text())
    pts = np.asarray(doc["groups"]["LJSON"]["landmarks"]["points"], np.float64)
    if pts.shape != (68, 3):
        raise MfnetError(f"{d / 'james.ljson'}: expected 68 3D landmarks, got {pts.shape}")
    L = pts[JAMES_LJSON_TO_IBUG]
    face_frame(L)  # the handedness check
    return Scan("james", obj.vertices.astype(np.float64), np.asarray(F, np.int64), L,
                note="menpo3d capture, mm, 68 manual landmarks",
                extra={"uvs": obj.uvs, "ft": np.asarray(FT, np.int64)})


@lru_cache(maxsize=4)
def load_scan(name: str, root=None) -> Scan:
    """The scan ``'james'`` or ``'lee'`` (cached: Lee's landmarks come from renders and detection)."""
    if name == "james":
        return load_james(root)
    if name == "lee":
        from .realscans_render import load_lee

        return load_lee(root)
    raise MfnetError(f"unknown scan {name!r}: choose james or lee")


# --------------------------------------------------------------------------- James's photos and cameras
def james_cameras(root=None) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """``{'left'|'right': (K, R, t)}`` of the rig, t in mm, K in each half photo's pixels with the
    renderer's convention (pixel centres at +0.5, like the obj's UVs): ``x ~ K (R X + t)``.

    ``cv2.decomposeProjectionMatrix`` of P (the right one first shifted by -1200 px in x), with P's
    sign chosen so that det(P[:, :3]) > 0 (points in front get positive depth), K / K[2, 2], and the
    signs of K's diagonal moved into R so that the focal lengths are positive; t = -R C.
    """
    import cv2

    z = np.load(realscans_dir(root) / "james" / "cameras_dlt.npz")
    out = {}
    for side, off in (("left", 0), ("right", JAMES_SPLIT_X)):
        P = np.array([[1.0, 0, -off], [0, 1, 0], [0, 0, 1]]) @ np.asarray(z[f"P_{side}"], np.float64)
        if np.linalg.det(P[:, :3]) < 0:
            P = -P
        K, R, C = cv2.decomposeProjectionMatrix(P)[:3]
        K = K / K[2, 2]
        D = np.diag(np.sign(np.diag(K)))
        K, R = K @ D, D @ R
        C = C[:3, 0] / C[3, 0]
        out[side] = (K, R, -R @ C)
    return out


def project(K: np.ndarray, R: np.ndarray, t: np.ndarray, X: np.ndarray) -> np.ndarray:
    """(N, 2) pixels of ``X`` (N, 3) under ``x ~ K (R X + t)``."""
    p = (np.asarray(X, np.float64) @ R.T + t) @ K.T
    return p[:, :2] / p[:, 2:]


def james_views(calibrated: bool = False, root=None) -> tuple[list[Path], Path | None]:
    """The two photo halves (written once to :func:`cache_dir`) and, with ``calibrated``, a cams.json."""
    import cv2

    d = realscans_dir(root) / "james"
    out = cache_dir() / f"james-{cache_key(str(d))}"
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "james_left.png", out / "james_right.png"]
    if not all(p.exists() for p in paths):
        from ..utils.io import atomic_path

        img = cv2.imread(str(d / "james.jpg"), cv2.IMREAD_COLOR)
        if img is None or img.shape[:2] != (1600, 2 * JAMES_SPLIT_X):
            raise MfnetError(f"{d / 'james.jpg'}: expected a readable 2400x1600 image")
        for p, x0 in zip(paths, (0, JAMES_SPLIT_X)):
            with atomic_path(p) as tmp:  # a .png temporary beside p, renamed onto it
                cv2.imwrite(str(tmp), img[:, x0:x0 + JAMES_SPLIT_X])
    if not calibrated:
        return paths, None
    cams = []
    for p, (K, R, t) in zip(paths, james_cameras(root).values()):
        K_cv = K.copy()
        K_cv[:2, 2] -= 0.5  # renderer / UV pixel centres (+0.5) -> OpenCV (integers)
        cams.append({"image": p.name, "K": K_cv.tolist(), "R": R.tolist(), "t": t.tolist()})
    cams_json = out / "cams.json"
    cams_json.write_text(json.dumps({"units": "mm", "cameras": cams}, indent=1))
    return paths, cams_json


# --------------------------------------------------------------------------- meshes and scores
def _model(model=None):
    from ..headmodel.model import HeadModel
    from ..calibrate.install import load_model

    if not isinstance(model, HeadModel):
        model = load_model(model)
    if not model.use_landmark_embedding("mediapipe"):  # the embedding reconstruct() uses
        model.use_landmark_embedding("static")
    return model


def mean_head(model=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(vertices m, faces, 68 landmarks m) of the model's mean head (all codes zero)."""
    import torch

    model = _model(model)
    with torch.no_grad():
        o = model()
    return o.vertices[0].cpu().numpy(), model.faces.cpu().numpy(), o.landmarks[0].cpu().numpy()


def neutral_mesh(model, head, shape=None) -> tuple[np.ndarray, np.ndarray]:
    """(vertices m, 68 landmarks m) of ``head`` (HeadParams) with expression and jaw zero, canonical
    pose (neck and eyes as fitted): the mesh NoW scores. ``shape``: the identity to use (default the
    fit's own code; a reconstruction's ``neutral_shape`` is its identity projection,
    :mod:`mfnet.fit.neutral`)."""
    import torch

    from ..types import HeadParams

    model = _model(model)
    beta = head.shape if shape is None else torch.as_tensor(np.asarray(shape), dtype=head.shape.dtype)
    z = torch.zeros_like(head.expression)
    hp = HeadParams(beta, z, torch.zeros_like(head.jaw), head.neck, head.eyes)
    with torch.no_grad():
        o = model(beta[None], z[None], hp.pose(beta.new_zeros(1, 3)))
    return o.vertices[0].cpu().numpy(), o.landmarks[0].cpu().numpy()


def score_mesh(vertices_m, faces, landmarks68_m, scan: Scan) -> dict:
    """NoW score of a predicted mesh (metres, 68 iBUG landmarks) against ``scan``: median/mean/std mm
    and ``regions`` (median mm per :data:`REGIONS`, NaN where a region has no cropped vertex);
    ``distances`` per cropped scan vertex (order of ``scan.crop_idx``) and the ``alignment``."""
    from .now import evaluate_now

    lmk = np.asarray(landmarks68_m, np.float64)[list(NOW_LANDMARKS)]
    res = evaluate_now(vertices_m, faces, lmk, scan.scored_vertices, scan.now_landmarks, pred_scale=1000.0,
                       scan_scale=1.0)
    d = res.distances
    lab = scan.regions[scan.crop_idx]
    regions = {name: float(np.median(d[lab == k])) if (lab == k).any() else float("nan")
               for k, name in enumerate(REGIONS)}
    return {**res.stats, "regions": regions, "distances": d, "alignment": res.alignment,
            "landmark_rmse": res.landmark_rmse}


def score_reconstruction(rec, case: str | Scan, model=None) -> dict:
    """``{'fitted': score_mesh(...), 'neutral': score_mesh(...)}`` of a :class:`~mfnet.types.Reconstruction`
    (neutral: the reconstruction's own neutral head, ``rec.neutral_shape``, when it has one)
    against the scan of ``case`` (a case name such as 'james-cal' / 'lee-30', a scan name, or a Scan)."""
    scan = case if isinstance(case, Scan) else load_scan(case_scan(case))
    model = _model(model if model is not None else rec.model_name)
    nv, nl = neutral_mesh(model, rec.head, getattr(rec, "neutral_shape", None))
    return {"fitted": score_mesh(rec.vertices, rec.faces, rec.landmarks3d, scan),
            "neutral": score_mesh(nv, rec.faces, nl, scan)}


# --------------------------------------------------------------------------- cases
def case_names() -> list[str]:
    from .realscans_render import LEE_CASES

    return ["james", "james-cal", "james-1", *LEE_CASES]


def case_scan(case: str) -> str:
    if case in ("james", "lee"):
        return case
    if case.startswith("james"):
        return "james"
    if case.startswith("lee"):
        return "lee"
    raise MfnetError(f"unknown case {case!r}: choose from {', '.join(case_names())}")


def case_views(case: str, root=None) -> tuple[list[Path], Path | None]:
    """(photo paths, cams.json or None) of a benchmark case."""
    if case == "james":
        return james_views(False, root)
    if case == "james-cal":
        return james_views(True, root)
    if case == "james-1":  # the left photo alone: a single real view
        return james_views(False, root)[0][:1], None
    from .realscans_render import LEE_CASES

    if case in LEE_CASES:
        return lee_views(case, root=root), None
    raise MfnetError(f"unknown case {case!r}: choose from {', '.join(case_names())}")


def case_description(case: str) -> str:
    if case == "james":
        return "James, 2 real photos (stereo rig halves), uncalibrated"
    if case == "james-cal":
        return "James, 2 real photos, calibrated rig (--cameras)"
    if case == "james-1":
        return "James, the left real photo alone (one view)"
    from .realscans_render import LEE_CASES

    return LEE_CASES[case].description if case in LEE_CASES else case


def run_case(case: str, preset: str = "default", model=None, root=None, **overrides) -> dict:
    """Reconstruct one case with ``preset`` (+ fit-setting ``overrides``: :func:`mfnet.fit.config.apply_overrides`)
    and score it.

    Returns ``{'case', 'preset', 'seconds', 'fitted_median', 'fitted_mean', 'fitted_std',
    'neutral_median', 'neutral_mean', 'regions' (fitted, per region), 'neutral_regions', 'views',
    'used_views', 'rec', 'fitted', 'neutral'}`` (the last two: :func:`score_mesh` dicts)."""
    from ..pipeline import reconstruct

    model = _model(model)
    paths, cams = case_views(case, root)
    scan = load_scan(case_scan(case), root)
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rec = reconstruct([str(p) for p in paths], model=model, preset=preset, progress=False, cameras=cams,
                          **overrides)
    seconds = time.perf_counter() - t
    s = score_reconstruction(rec, scan, model)
    f, n = s["fitted"], s["neutral"]
    return {"case": case, "preset": preset, "seconds": seconds, "views": len(paths), "used_views": len(rec.names),
            "fitted_median": f["median"], "fitted_mean": f["mean"], "fitted_std": f["std"],
            "neutral_median": n["median"], "neutral_mean": n["mean"], "neutral_std": n["std"],
            "regions": f["regions"], "neutral_regions": n["regions"], "rec": rec, "fitted": f, "neutral": n}


def run_mean_head(case: str, model=None, root=None) -> dict:
    """The mean-head baseline of a case's scan, in :func:`run_case`'s layout (no reconstruction)."""
    model = _model(model)
    scan = load_scan(case_scan(case), root)
    v, f, lm = mean_head(model)
    s = score_mesh(v, f, lm, scan)
    return {"case": case, "preset": "mean head", "seconds": 0.0, "views": 0, "used_views": 0,
            "fitted_median": s["median"], "fitted_mean": s["mean"], "fitted_std": s["std"],
            "neutral_median": s["median"], "neutral_mean": s["mean"], "neutral_std": s["std"],
            "regions": s["regions"], "neutral_regions": s["regions"], "rec": None, "fitted": s, "neutral": s}


def lee_views(case: str, root=None) -> list[Path]:
    """PNG paths of a Lee case's renders (written once to the cache, keyed by the case's shots). Each
    PNG records its camera's 35 mm-equivalent focal length in EXIF, as a camera or phone would
    (:mod:`mfnet.utils.exif`; ``--set distance.focal=false`` ignores it)."""
    from PIL import Image

    from ..utils.exif import FULL_FRAME_DIAGONAL_MM, focal_exif
    from ..utils.io import atomic_path
    from .realscans_render import LEE_CASES, lee_dir, render_case, shot_focal_px

    if case not in LEE_CASES:
        raise MfnetError(f"unknown Lee case {case!r}: choose from {', '.join(LEE_CASES)}")
    shots = LEE_CASES[case].shots
    d = cache_dir() / f"{case}-{cache_key(str(lee_dir(root)), [s.__dict__ for s in shots], 'exif-focal')}"
    paths = [d / f"{case}_{k}_yaw{s.yaw:+.0f}_pitch{s.pitch:+.0f}.png" for k, s in enumerate(shots)]
    if not all(p.exists() for p in paths):
        d.mkdir(parents=True, exist_ok=True)
        for p, shot, (photo, _) in zip(paths, shots, render_case(case, root=root)):
            f35 = shot_focal_px(shot) / float(np.hypot(*shot.size)) * FULL_FRAME_DIAGONAL_MM
            with atomic_path(p) as tmp:
                Image.fromarray(photo).save(tmp, format="PNG", exif=focal_exif(f35))
    return paths
