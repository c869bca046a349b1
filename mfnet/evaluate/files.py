"""Benchmark folder layouts, readers, exports and result tables for ``mfnet evaluate``.

FaceScape (FS-Wild / FS-Lab) layout::

    GT_DIR/<name>.obj            ground-truth mesh
    GT_DIR/<name>_params.json    (or _params.npz) its parameters:
        head_center  [3]         GT head centre, same frame and units as the mesh
        head_rotation [[3x3]]    GT head rotation (canonical frame = R^T (v - c))
        pupil_scale  float       mm per mesh unit (FS-Wild: 62.85 / GT pupil distance;
                                 FS-Lab default 62.85); or "pupils" [[3],[3]]
        K [[3x3]], image_size [h, w]   FS-Lab only: intrinsics of the photo
        camera_R [[3x3]], camera_t [3] optional: the GT mesh, head_center and
                                 head_rotation are in a world frame, x_cam = R x + t
                                 (t in GT units); the prediction is in the camera frame
        index / view / focal     optional labels (FS-Wild angle bin = index // 100,
                                 else the trailing number of <name>)
    PRED_DIR/<name>.obj          prediction named like its GT, in the GT's frame:
                                 FS-Wild the normalised orthographic cube of the photo
                                 (x right, y up, camera looking down -z), FS-Lab the
                                 GT camera frame; units of the GT, or mm with
                                 --pred-units mm (GT units x pupil_scale).

NoW layout::

    PRED_DIR/<subject>/<challenge>/<image>.obj   neutral predicted mesh (expression, jaw zeroed)
    PRED_DIR/<subject>/<challenge>/<image>.npy   its 7 NoW landmarks (7, 3), same units
    GT_DIR/<subject>.obj  (or GT_DIR/<subject>/<subject>.obj)       the subject's scan
    GT_DIR/<subject>_lmks.npy | <subject>.pp | <subject>_lmks.txt | <subject>.txt
                                                 the scan's 7 landmarks (MeshLab .pp
                                                 picked points in file order, or 7 rows
                                                 of x y z)

Units for NoW default to ``auto``: landmarks whose outer eye corners are less
than 1 unit apart are metres, otherwise mm.
"""
from __future__ import annotations

import csv
import json
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import MfnetError

__all__ = [
    "EvaluationError",
    "FaceScapeItem",
    "NowItem",
    "load_mesh",
    "load_landmarks",
    "load_facescape_params",
    "find_facescape_items",
    "find_now_items",
    "units_to_mm",
    "export_now_landmarks",
    "export_now_prediction",
    "export_facescape_prediction",
    "write_csv",
    "markdown_table",
]

LANDMARK_SUFFIXES = ("_lmks.npy", ".pp", "_lmks.txt", ".txt")


class EvaluationError(MfnetError, ValueError):
    """A benchmark file is missing, mismatched or unreadable."""


# ----------------------------------------------------------------------------- readers
def load_mesh(path) -> tuple[np.ndarray, np.ndarray]:
    """Triangle mesh ``(vertices (V, 3) float64, faces (F, 3) int64)`` from an OBJ or PLY file."""
    path = Path(path)
    if not path.is_file():
        raise EvaluationError(f"{path}: mesh not found; check the folder layout (mfnet evaluate --help)")
    try:
        if path.suffix.lower() == ".obj":
            from ..headmodel.objio import read_obj

            mesh = read_obj(path)
            faces = mesh.triangulate()[0] if mesh.num_polygons else np.zeros((0, 3), np.int64)
            v = mesh.vertices
        else:
            import trimesh

            m = trimesh.load(path, process=False, force="mesh")
            v, faces = np.asarray(m.vertices), np.asarray(m.faces)
    except (ValueError, OSError, IndexError) as exc:
        raise EvaluationError(f"{path}: cannot read the mesh ({exc}); re-export it as a triangle OBJ") from None
    v = np.asarray(v, np.float64).reshape(-1, 3)
    faces = np.asarray(faces, np.int64).reshape(-1, 3)
    if v.shape[0] == 0 or faces.shape[0] == 0 or not np.isfinite(v).all():
        raise EvaluationError(f"{path}: the mesh has no faces or non-finite vertices; re-export it")
    return v, faces


def _read_pp(path: Path) -> np.ndarray:
    root = ET.parse(path).getroot()
    pts = [[float(p.get(k)) for k in ("x", "y", "z")] for p in root.iter("point")]
    return np.asarray(pts, np.float64)


def load_landmarks(path) -> np.ndarray:
    """The 7 NoW landmarks ``(7, 3)`` from ``.npy`` (7x3), ``.txt`` (7 rows x y z) or MeshLab ``.pp``."""
    path = Path(path)
    try:
        if path.suffix == ".npy":
            lmk = np.load(path, allow_pickle=False)
        elif path.suffix == ".pp":
            lmk = _read_pp(path)
        else:
            lmk = np.loadtxt(path, dtype=np.float64, ndmin=2)
    except (ValueError, OSError, ET.ParseError) as exc:
        raise EvaluationError(f"{path}: cannot read landmarks ({exc}); expected 7 rows of x y z") from None
    lmk = np.asarray(lmk, np.float64)
    if lmk.shape != (7, 3) or not np.isfinite(lmk).all():
        raise EvaluationError(f"{path}: expected the 7 NoW landmarks as a 7x3 array, got shape {lmk.shape}; "
                              "order: right eye outer, right eye inner, left eye inner, left eye outer, "
                              "nose bottom, right mouth corner, left mouth corner")
    return lmk


def load_facescape_params(path) -> dict:
    """Parameters of one FaceScape item (``.json`` or ``.npz``), as numpy arrays / floats."""
    path = Path(path)
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                raw = {k: z[k] for k in z.files}
        else:
            raw = json.loads(path.read_text())
    except (ValueError, OSError) as exc:
        raise EvaluationError(f"{path}: cannot read the parameters ({exc})") from None
    out = {}
    for key, shape in (("head_center", (3,)), ("head_rotation", (3, 3)), ("K", (3, 3)), ("pupils", (2, 3)),
                       ("image_size", (2,)), ("camera_R", (3, 3)), ("camera_t", (3,))):
        if key in raw:
            a = np.asarray(raw[key], np.float64)
            if a.shape != shape:
                raise EvaluationError(f"{path}: '{key}' must have shape {shape}, got {a.shape}")
            out[key] = a
    for key in ("pupil_scale", "index", "view", "focal"):
        if key in raw:
            out[key] = float(np.asarray(raw[key]))
    for key in ("head_center", "head_rotation"):
        if key not in out:
            raise EvaluationError(f"{path}: missing '{key}'; see the FaceScape layout in 'mfnet evaluate facescape --help'")
    if ("camera_R" in out) != ("camera_t" in out):
        raise EvaluationError(f"{path}: give both 'camera_R' and 'camera_t' (world to camera), or neither")
    return out


# ----------------------------------------------------------------------------- folder layouts
@dataclass
class FaceScapeItem:
    name: str
    pred: Path
    gt: Path
    params: Path


@dataclass
class NowItem:
    subject: str
    challenge: str
    image: str
    pred: Path
    pred_landmarks: Path
    scan: Path
    scan_landmarks: Path


def _names(paths, limit: int = 5) -> str:
    paths = sorted(str(p) for p in paths)
    return ", ".join(paths[:limit]) + (f" (and {len(paths) - limit} more)" if len(paths) > limit else "")


def _need_dir(path, what: str) -> Path:
    path = Path(path)
    if not path.is_dir():
        raise EvaluationError(f"{path}: {what} folder not found")
    return path


def find_facescape_items(pred_dir, gt_dir, allow_missing: bool = False) -> list[FaceScapeItem]:
    """Match ``GT_DIR/<name>.obj`` (+ params) with ``PRED_DIR/<name>.obj``; raise on any mismatch."""
    pred_dir, gt_dir = _need_dir(pred_dir, "prediction"), _need_dir(gt_dir, "ground-truth")
    gts = {p.stem: p for p in sorted(gt_dir.glob("*.obj"))}
    preds = {p.stem: p for p in sorted(pred_dir.glob("*.obj"))}
    if not gts:
        raise EvaluationError(f"{gt_dir}: no ground-truth <name>.obj found")
    extra = sorted(set(preds) - set(gts))
    if extra:
        raise EvaluationError(f"predictions without a ground truth in {gt_dir}: {_names(pred_dir / (n + '.obj') for n in extra)}; "
                              "name each prediction like its GT mesh")
    missing = sorted(set(gts) - set(preds))
    if missing and not allow_missing:
        raise EvaluationError(f"missing predictions: {_names(pred_dir / (n + '.obj') for n in missing)}; "
                              "export them or pass --allow-missing")
    items = []
    for name in sorted(set(gts) & set(preds)):
        cands = [gt_dir / f"{name}_params.json", gt_dir / f"{name}_params.npz"]
        params = next((c for c in cands if c.is_file()), None)
        if params is None:
            raise EvaluationError(f"{cands[0]}: parameters of ground truth {gts[name]} not found (.json or .npz)")
        items.append(FaceScapeItem(name, preds[name], gts[name], params))
    if not items:
        raise EvaluationError(f"{pred_dir}: no prediction matches a ground truth in {gt_dir}")
    return items


def _scan_for(gt_dir: Path, subject: str) -> tuple[Path, Path]:
    scan = next((p for p in (gt_dir / f"{subject}.obj", gt_dir / subject / f"{subject}.obj") if p.is_file()), None)
    if scan is None:
        raise EvaluationError(f"{gt_dir / (subject + '.obj')}: scan of subject '{subject}' not found "
                              f"(also looked in {gt_dir / subject})")
    lmk = next((scan.parent / f"{subject}{s}" for s in LANDMARK_SUFFIXES if (scan.parent / f"{subject}{s}").is_file()), None)
    if lmk is None:
        raise EvaluationError(f"{scan.parent / (subject + '_lmks.npy')}: landmarks of scan {scan} not found "
                              f"(looked for {', '.join(subject + s for s in LANDMARK_SUFFIXES)})")
    return scan, lmk


def find_now_items(pred_dir, gt_dir) -> list[NowItem]:
    """All ``PRED_DIR/<subject>/<challenge>/<image>.obj`` with their landmarks and scan; raise on a mismatch."""
    pred_dir, gt_dir = _need_dir(pred_dir, "prediction"), _need_dir(gt_dir, "ground-truth scan")
    meshes = sorted(pred_dir.glob("*/*/*.obj"))
    if not meshes:
        raise EvaluationError(f"{pred_dir}: no <subject>/<challenge>/<image>.obj prediction found")
    scans: dict[str, tuple[Path, Path]] = {}
    items = []
    for mesh in meshes:  # one entry per file, not per vertex
        lmk = mesh.with_suffix(".npy")
        if not lmk.is_file():
            raise EvaluationError(f"{lmk}: landmarks of prediction {mesh} not found; write them with "
                                  "mfnet.evaluate.export_now_landmarks")
        subject, challenge = mesh.parent.parent.name, mesh.parent.name
        if subject not in scans:
            scans[subject] = _scan_for(gt_dir, subject)
        items.append(NowItem(subject, challenge, mesh.stem, mesh, lmk, *scans[subject]))
    return items


def units_to_mm(units: str, landmarks: np.ndarray) -> float:
    """mm per unit for 'm', 'mm' or 'auto' (outer eye corners < 1 unit apart: metres)."""
    if units == "m":
        return 1000.0
    if units == "mm":
        return 1.0
    if units != "auto":
        raise EvaluationError(f"unknown units '{units}': use m, mm or auto")
    return 1000.0 if np.linalg.norm(landmarks[0] - landmarks[3]) < 1.0 else 1.0


# ----------------------------------------------------------------------------- exports
def export_now_landmarks(path, landmarks7) -> Path:
    """Write the 7 NoW landmarks (7, 3) as a float64 ``.npy`` (order: see :mod:`mfnet.evaluate.now`)."""
    lmk = np.asarray(landmarks7, np.float64)
    if lmk.shape != (7, 3) or not np.isfinite(lmk).all():
        raise EvaluationError(f"{path}: expected 7 finite landmarks (7, 3), got shape {lmk.shape}")
    path = Path(path).with_suffix(".npy")
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, lmk)
    return path


def export_now_prediction(pred_dir, subject: str, challenge: str, image: str, vertices, faces, landmarks7) -> Path:
    """Write ``pred_dir/<subject>/<challenge>/<image>.obj`` and ``.npy`` landmarks (units unchanged:
    mfnet meshes are in metres, which ``--pred-units auto`` recognises)."""
    from ..export.mesh import write_obj

    stem = Path(pred_dir) / subject / challenge / Path(image).stem
    stem.parent.mkdir(parents=True, exist_ok=True)
    export_now_landmarks(stem.with_suffix(".npy"), landmarks7)
    return write_obj(stem.with_suffix(".obj"), np.asarray(vertices, np.float64), np.asarray(faces, np.int64))


def export_facescape_prediction(path, vertices, faces, scale: float = 1.0) -> Path:
    """Write a FaceScape prediction OBJ (vertices x ``scale``; e.g. the pupil scale to store mm)."""
    from ..export.mesh import write_obj

    path = Path(path).with_suffix(".obj")
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_obj(path, np.asarray(vertices, np.float64) * float(scale), np.asarray(faces, np.int64))


# ----------------------------------------------------------------------------- tables
def write_csv(path, rows: list[dict], fields=None) -> Path:
    """Rows (dicts sharing keys) as CSV; floats with 6 significant digits. ``fields``: the columns, in
    order (other keys are left out, missing ones written empty); default every key of the rows."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    keys = list(fields) if fields is not None else list(dict.fromkeys(k for r in rows for k in r))
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=keys)
        w.writeheader()
        for r in rows:  # one line per item
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k in keys for v in [r.get(k, "")]})
    return path


def markdown_table(rows: list[dict], formats: dict | None = None) -> str:
    """A Markdown table of dict rows; ``formats`` maps a key to a format string such as '{:.3f}'."""
    if not rows:
        return "(no rows)\n"
    formats = formats or {}
    keys = list(dict.fromkeys(k for r in rows for k in r))

    def cell(k, v):
        if isinstance(v, float) and not np.isfinite(v):
            return "n/a"
        return formats.get(k, "{}").format(v) if v is not None else ""

    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(cell(k, r.get(k)) for k in keys) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def trailing_number(name: str) -> int | None:
    """The last integer in a name ('fswild_042' -> 42), or None."""
    m = re.findall(r"\d+", name)
    return int(m[-1]) if m else None
