"""Synthetic multi-view benchmark: what do extra views add at each head angle? (``mfnet bench``)

For every subject (a random identity + expression of the open head model, fixed seed) and every
angle bin of the paper's Table 1 (0-5, 5-30, 30-60, 60-90 degrees of yaw):

* a *query* yaw is drawn uniformly in the bin, with a random side (deterministic from the seed);
* the subject is rendered once from three yaws: the query, -30 and +30 degrees (one photo set,
  so the 1-view and 3-view reconstructions see the same query photo);
* **1 view** = the query photo alone; **3 views** = the query photo plus the -30/+30 degree
  photos.  The companions are the same at every angle, so the 3-view row measures what two
  moderate side views add to a query photo of that angle (at 0-5 degrees it is the usual
  frontal + two sides set);
* each set is reconstructed from the uint8 images through detection (:func:`mfnet.pipeline.reconstruct`).

Tables and files: :mod:`mfnet.evaluate.bench_results`; figures and HTML: :mod:`mfnet.evaluate.bench_report`.

Metrics, per reconstruction: both canonical-pose meshes (same topology) are scaled to a 62.85 mm
pupil distance (eye-landmark centres), the prediction is rigidly aligned to the ground truth on
the face region (Kabsch), then (face region: the NoW crop of the ground truth within the model's
face mask, :func:`mfnet.evaluate.synthetic.face_region`)

* ``vertex_mm``: mean per-vertex distance on the face region (mm);
* ``cd`` / ``mne`` / ``cr``: :func:`mfnet.evaluate.facescape.cylinder_metrics` of the face-region
  submeshes (faces whose three vertices are in the face region), both translated so the
  cylinder axis passes through the centre of the ground-truth head;
* ``seconds``: wall time of the reconstruct call.

A reconstruction that fails (e.g. no face detected at a steep angle) is a row with ``failed=1``
and NaN metrics; the table reports the failure count.
"""
from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .facescape import cylinder_metrics
from .synthetic import PUPIL_MM, face_region, pupil_distance

ANGLE_BINS: dict[str, tuple[float, float]] = {"0-5": (0.0, 5.0), "5-30": (5.0, 30.0), "30-60": (30.0, 60.0),
                                              "60-90": (60.0, 90.0)}
COMPANION_YAWS = (-30.0, 30.0)  # the two extra views of the 3-view set
ABLATION_LOSSES = ("multiop", "singlelmk", "eye", "lip", "reg", "photo")  # paper Table 3 + our photometric term
SUBJECT_SEED_BASE = 1000  # subject i of benchmark seed k renders with seed 1000 + 100 k + i
CSV_FIELDS = ("method", "views", "ablation", "subject", "bin", "query_yaw", "yaws", "cd", "mne", "cr",
              "vertex_mm", "seconds", "used_views", "failed", "error")
METRICS = ("cd", "mne", "cr")


@dataclass(frozen=True)
class Variant:
    """One table row: a reconstruction method with a number of views and an optional loss ablation."""

    method: str  # fit | net | net+fit
    views: str  # '1' | '3'
    disabled: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        s = f"{self.method}, {self.views} view{'s' if self.views != '1' else ''}"
        if self.disabled:
            s += " −" + "−".join(self.disabled)
        return s


def query_yaw(subject_seed: int, lo: float, hi: float) -> float:
    """The query yaw (degrees) of one subject in one bin: |yaw| ~ U(lo, hi), random side."""
    rng = np.random.default_rng(subject_seed)
    mag = float(rng.uniform(lo, hi))
    return mag if rng.random() < 0.5 else -mag


def face_submesh(faces: np.ndarray, region: np.ndarray, n_vertices: int) -> tuple[np.ndarray, np.ndarray]:
    """Faces of ``faces`` with all three vertices in ``region`` (boolean mask or indices), re-indexed
    into ``region``'s vertex order. Returns ``(region_indices, sub_faces)``."""
    mask = np.zeros(n_vertices, bool)
    mask[np.asarray(region)] = True
    idx = np.flatnonzero(mask)
    remap = np.full(n_vertices, -1, np.int64)
    remap[idx] = np.arange(idx.size)
    keep = mask[faces].all(1)
    return idx, remap[faces[keep]]


def _kabsch(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rotation R and translation t minimising |src @ R.T + t - dst|."""
    ms, md = src.mean(0), dst.mean(0)
    U, _, Vt = np.linalg.svd((src - ms).T @ (dst - md))
    D = np.diag([1.0, 1.0, np.sign(np.linalg.det(U @ Vt))])
    R = (U @ D @ Vt).T
    return R, md - ms @ R.T


@dataclass
class ReconDetail:
    """What a report needs to draw one reconstruction (kept on the row as ``row['detail']``).

    ``pred``: the predicted canonical vertices, pupil-scaled (mm) and rigidly aligned to the ground
    truth on the face region exactly as for the metrics (float32, V x 3); ``gt``: the pupil-scaled
    ground truth (shared by all rows of one subject and bin); ``face_err``: per-vertex error (mm) on
    the face region, in ``face_idx`` order; ``face_idx`` / ``faces``: shared index arrays.
    """

    pred: np.ndarray
    gt: np.ndarray
    face_err: np.ndarray
    face_idx: np.ndarray
    faces: np.ndarray


def score_detail(pred_v, pred_lmk, gt_v, gt_lmk, faces, region) -> tuple[dict, ReconDetail]:
    """:func:`score` plus the aligned meshes and per-vertex face errors (:class:`ReconDetail`)."""
    p = np.asarray(pred_v, np.float64) * (PUPIL_MM / pupil_distance(np.asarray(pred_lmk, np.float64)))
    g = np.asarray(gt_v, np.float64) * (PUPIL_MM / pupil_distance(np.asarray(gt_lmk, np.float64)))
    faces = np.asarray(faces, np.int64)
    idx, sub_f = face_submesh(faces, region, g.shape[0])
    R, t = _kabsch(p[idx], g[idx])
    p_all = p @ R.T + t
    p_face, g_face = p_all[idx], g[idx]
    err = np.linalg.norm(p_face - g_face, axis=1)
    vertex_mm = float(err.mean())
    centre = (g.min(0) + g.max(0)) / 2
    m = cylinder_metrics(p_face - centre, sub_f, g_face - centre, sub_f)
    detail = ReconDetail(pred=p_all.astype(np.float32), gt=g.astype(np.float32),
                         face_err=err.astype(np.float32), face_idx=idx, faces=faces)
    return {"cd": m.cd, "mne": m.mne, "cr": m.cr, "vertex_mm": vertex_mm}, detail


def score(pred_v, pred_lmk, gt_v, gt_lmk, faces, region) -> dict:
    """Metrics of one canonical-pose prediction against its ground truth (same topology).

    Both meshes are scaled to a 62.85 mm pupil distance, the prediction is rigidly aligned to the
    ground truth on ``region``, and both are centred on the ground-truth head centre (bounding-box
    centre of the whole head) so the FaceScape cylinder axis runs through the head.
    """
    return score_detail(pred_v, pred_lmk, gt_v, gt_lmk, faces, region)[0]


def variants(views: Sequence[str] = ("1", "3"), checkpoint=None, ablate: bool = False) -> list[Variant]:
    out = [Variant("fit", v) for v in views]
    if checkpoint is not None:
        out += [Variant(m, v) for m in ("net", "net+fit") for v in views]
    if ablate:
        out += [Variant("fit", "3", (loss,)) for loss in ABLATION_LOSSES]
    return out


def run_benchmark(model=None, subjects: int | Sequence[int] = 4, bins: Sequence[str] | None = None,
                  views: Sequence[str] = ("1", "3"), preset: str = "default", checkpoint=None, seed: int = 0,
                  size: int = 512, disabled_losses: Sequence[str] = (), ablate: bool = False,
                  progress=None, keep_details: bool = True) -> list[dict]:
    """Run the benchmark; one row (dict with :data:`CSV_FIELDS`) per variant x subject x bin.

    With ``keep_details`` (default) every successful row also carries ``row['detail']``, a
    :class:`ReconDetail` for the report's error curves and heat-maps (about 12 bytes per vertex per
    reconstruction; the ground truth and index arrays are shared).

    model: a loaded HeadModel or a name (default: the open ICT-FaceKit model). subjects: a count
    or explicit subject indices. bins: keys of :data:`ANGLE_BINS` (default all four). views: any of
    '1', '3'. checkpoint: adds 'net' and 'net+fit' rows. disabled_losses: removed from every fit
    (a global ablation); ablate: also run the 3-view fit once per loss of :data:`ABLATION_LOSSES`
    removed (the paper's Table 3). progress: optional callable receiving one line per row.
    """
    import torch

    from ..data.synthetic import render_subject, to_uint8
    from ..fit.config import without
    from ..calibrate.install import load_model
    from ..headmodel.model import HeadModel

    if not isinstance(model, HeadModel):
        model = load_model(model)
    model = model.shallow_copy()  # the ground truth's landmarks (alignment) use the embedding the fit uses
    if not model.use_landmark_embedding("mediapipe"):
        model.use_landmark_embedding("static")
    bins = _checked(bins, views)
    subject_ids = list(range(subjects)) if isinstance(subjects, int) else [int(s) for s in subjects]
    faces = model.faces.cpu().numpy().astype(np.int64)
    shared: dict[str, np.ndarray] = {}  # one copy of the index arrays / ground truth for all details
    plan = variants(views, checkpoint, ablate)
    rows: list[dict] = []
    for s in subject_ids:
        subj_seed = SUBJECT_SEED_BASE + 100 * seed + s  # identity/expression depend on the subject only
        for b in bins:
            lo, hi = ANGLE_BINS[b]
            q = query_yaw(subj_seed * 10 + list(ANGLE_BINS).index(b), lo, hi)
            yaws = (q,) + COMPANION_YAWS
            subj = render_subject(model, yaws, image_size=size, seed=subj_seed)
            images = list(to_uint8(subj.images))
            with torch.no_grad():
                gt = model(subj.shape[None], subj.expression[None], subj.pose[None])
            gt_v, gt_l = gt.vertices[0].cpu().numpy(), gt.landmarks[0].cpu().numpy()
            region = face_region(model, gt_v, gt_l)  # the NoW crop of this ground truth
            shared.pop("gt", None)
            shared.pop("face_idx", None)
            for var in plan:
                row = {"method": var.method, "views": var.views, "ablation": "-".join(var.disabled),
                       "subject": s, "bin": b, "query_yaw": round(q, 3),
                       "yaws": " ".join(f"{y:.1f}" for y in yaws[:int(var.views)]), "failed": 0, "error": ""}
                detail = _run_variant(row, images[:int(var.views)], model, preset, var.method, checkpoint,
                                      without(*disabled_losses, *var.disabled), (gt_v, gt_l, faces, region))
                if keep_details and detail is not None:
                    detail.gt = shared.setdefault("gt", detail.gt)
                    detail.face_idx = shared.setdefault("face_idx", detail.face_idx)
                    detail.faces = faces
                    row["detail"] = detail
                rows.append(row)
                if progress is not None:
                    progress(f"{var.label:24s} subject {s} bin {b:>5s} yaw {q:6.1f}: " + _row_line(row))
    return rows


def _checked(bins: Sequence[str] | None, views: Sequence[str]) -> list[str]:
    """The angle bins to run (default all); ValueError for an unknown bin or view count."""
    bins = list(ANGLE_BINS) if bins is None else list(bins)
    for b in bins:
        if b not in ANGLE_BINS:
            raise ValueError(f"unknown angle bin {b!r}: choose from {', '.join(ANGLE_BINS)}")
    for v in views:
        if v not in ("1", "3"):
            raise ValueError(f"views must be '1' or '3', got {v!r}")
    return bins


def _run_variant(row: dict, images: list, model, preset: str, method: str, checkpoint, overrides: dict,
                 truth: tuple) -> "ReconDetail | None":
    """Reconstruct ``images`` and score them against ``truth`` (gt vertices, gt landmarks, faces, face
    region) into ``row`` (in place); the :class:`ReconDetail`, or None where the reconstruction failed
    (a detector miss is a benchmark failure, reported in the table)."""
    from ..pipeline import reconstruct

    t = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rec = reconstruct(images, model=model, preset=preset, progress=False, method=method,
                              checkpoint=checkpoint, **overrides)
        row["seconds"] = time.perf_counter() - t
        row["used_views"] = len(rec.names)  # views whose face was detected
        metrics, detail = score_detail(rec.vertices, rec.landmarks3d, *truth)
        row.update(metrics)
        return detail
    except Exception as exc:
        row.update({"seconds": time.perf_counter() - t, "failed": 1, "used_views": 0,
                    "error": f"{type(exc).__name__}: {exc}"[:200], **{k: float("nan") for k in (*METRICS, "vertex_mm")}})
        return None


def _row_line(row: dict) -> str:
    if row["failed"]:
        return "FAILED " + row["error"]
    return (f"CD {row['cd']:.2f} MNE {row['mne']:.3f} CR {row['cr']:.3f} vertex {row['vertex_mm']:.2f} mm, "
            f"{row['used_views']}/{row['views']} views detected, {row['seconds']:.1f} s")


def row_label(row: dict) -> str:
    """The row's method/views/ablation label (:attr:`Variant.label`)."""
    return Variant(row["method"], str(row["views"]), tuple(row["ablation"].split("-")) if row["ablation"] else ()).label
