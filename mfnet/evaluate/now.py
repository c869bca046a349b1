"""NoW benchmark: scan-to-mesh error after landmark alignment and a similarity refinement.

Implements the protocol of ``/work/shared/reference/metrics.md``:

1. **Landmarks** -- 7 points in this order: right eye outer corner, right eye
   inner, left eye inner, left eye outer, nose bottom, right mouth corner,
   left mouth corner (iBUG-68 indices :data:`mfnet.headmodel.landmarks.NOW_LANDMARKS`).
2. **Crop** of the ground-truth scan: bridge = (L1 + L2) / 2, centre
   c = L4 + 0.3 (bridge - L4), radius r = 1.4 (|L0 - L3| + |bridge - L4|) / 2;
   scan vertices within r of c are kept (:func:`crop_scan`).
3. **Alignment** of the prediction to the scan: similarity Procrustes
   (Umeyama) from the predicted to the scan landmarks, then a refinement of
   s, R, t minimising the sum of squared distances from the cropped scan
   points to the transformed predicted surface (:func:`refine_alignment`:
   Gauss-Newton on the point-to-surface residuals, closest points re-queried
   every step, a step only kept if the true objective drops, Umeyama
   point-to-point as the fallback step).  Metrical variant: the scale is
   fixed by the units, only R, t are estimated.
4. **Error** -- for every cropped scan vertex, the unsigned distance (mm) to
   the closest point of the aligned predicted surface.  Statistics pool all
   distances of all scans: median, mean, std; the cumulative error curve
   runs over 0-8 mm (:func:`cumulative_curve`, :func:`plot_cumulative`).

Units: the error is reported in mm.  Give the scale of each input in mm per
unit (1000 for metres, 1 for mm); predictions of mfnet are in metres.  For
NoW the prediction should be neutral: expression and jaw pose zeroed.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.spatial.transform import Rotation

from .geometry import TriangleIndex, face_normals, umeyama

__all__ = [
    "NowAlignment",
    "NowResult",
    "crop_scan",
    "align_landmarks",
    "refine_alignment",
    "evaluate_now",
    "now_statistics",
    "cumulative_curve",
    "plot_cumulative",
    "CURVE_MAX_MM",
]

CURVE_MAX_MM = 8.0


@dataclass
class NowAlignment:
    """Similarity ``x -> s R x + t`` taking prediction coordinates (mm) to scan coordinates (mm)."""

    s: float
    R: np.ndarray
    t: np.ndarray

    def apply(self, x: np.ndarray) -> np.ndarray:
        return self.s * np.asarray(x, np.float64) @ self.R.T + self.t

    def inverse_apply(self, y: np.ndarray) -> np.ndarray:
        return (np.asarray(y, np.float64) - self.t) @ self.R / self.s


@dataclass
class NowResult:
    """Per-image NoW result: ``distances`` (mm, one per cropped scan vertex) and the alignment."""

    distances: np.ndarray
    alignment: NowAlignment
    landmark_rmse: float = 0.0
    iterations: int = 0
    stats: dict = field(default_factory=dict)


def _check_lmk(name: str, lmk) -> np.ndarray:
    lmk = np.asarray(lmk, np.float64)
    if lmk.shape != (7, 3) or not np.isfinite(lmk).all():
        raise ValueError(f"{name}: expected 7 finite 3D landmarks (7, 3), got shape {lmk.shape}")
    return lmk


def crop_scan(scan_vertices: np.ndarray, scan_landmarks: np.ndarray) -> np.ndarray:
    """Boolean mask of the scan vertices inside the NoW crop sphere (radius 1.4 rule)."""
    L = _check_lmk("scan landmarks", scan_landmarks)
    bridge = (L[1] + L[2]) / 2
    centre = L[4] + 0.3 * (bridge - L[4])
    radius = 1.4 * (np.linalg.norm(L[0] - L[3]) + np.linalg.norm(bridge - L[4])) / 2
    return np.linalg.norm(np.asarray(scan_vertices, np.float64) - centre, axis=1) <= radius


def align_landmarks(pred_landmarks, scan_landmarks, scale: float | None = None) -> NowAlignment:
    """Similarity (Umeyama) from predicted to scan landmarks; with ``scale`` given, only R, t."""
    P = _check_lmk("predicted landmarks", pred_landmarks)
    G = _check_lmk("scan landmarks", scan_landmarks)
    if scale is None:
        s, R, t = umeyama(P, G, with_scale=True)
    else:
        _, R, t = umeyama(P * scale, G, with_scale=False)
        s = float(scale)
    return NowAlignment(float(s), R, t)


class _Residuals:
    """Scan-to-surface distances under an alignment, with a cache of candidate triangles.

    The scan points are mapped into the prediction's frame (``T^-1 p``) and
    matched against a fixed :class:`TriangleIndex`.  The cache holds, per
    point, every triangle that can be closest after a move of at most
    ``margin`` (prediction units) from where the cache was built; beyond
    that it is rebuilt, so results stay exact.
    """

    def __init__(self, vertices, faces, points, margin: float):
        self.index = TriangleIndex(vertices, faces)
        self.normals = face_normals(self.index.vertices, self.index.faces)
        self.points = points
        self.margin = margin
        self.anchor = None
        self.pairs = None

    def __call__(self, al: NowAlignment):
        local = al.inverse_apply(self.points)
        if self.anchor is None or np.sqrt(((local - self.anchor) ** 2).sum(1).max()) > self.margin:
            qi, fi, cp = self.index.candidates(local, 2 * self.margin)
            self.anchor, self.pairs = local, (qi, fi)
        else:
            cp = self.index.query_pairs(local, *self.pairs)
        dist = cp.distance * al.s
        surf = al.apply(cp.point)
        diff = self.points - surf
        n_face = self.normals[cp.face] @ al.R.T  # used where the point lies on the surface
        with np.errstate(invalid="ignore", divide="ignore"):
            g = np.where(dist[:, None] > 1e-9, diff / dist[:, None], n_face)
        return dist, surf, g, cp


def refine_alignment(pred_vertices, pred_faces, points, init: NowAlignment, fixed_scale: bool = False,
                     max_iter: int = 30, tol: float = 1e-7, margin: float = 0.25) -> tuple[NowAlignment, int]:
    """Minimise ``sum_i dist(points_i, s R M + t)^2`` over s, R, t (R, t only with ``fixed_scale``).

    ``pred_vertices`` (mm) and ``pred_faces`` define M; ``points`` are the
    cropped scan vertices (mm).  Each iteration linearises the distances
    about the current closest points (Gauss-Newton on a small similarity
    about the points' centroid), and keeps the step only if the re-queried
    objective decreases; otherwise it takes a point-to-point Umeyama step on
    the current correspondences (which never increases the objective).
    Stops when the relative decrease is below ``tol``.  Closest points are
    exact; ``margin`` (mm) only tunes the candidate cache.  Returns the
    alignment and the number of iterations.
    """
    V = np.asarray(pred_vertices, np.float64)
    F = np.asarray(pred_faces, np.int64)
    P = np.asarray(points, np.float64)
    if P.shape[0] < 3:
        return init, 0
    residuals = _Residuals(V, F, P, margin)
    al = init
    dist, surf, g, cp = residuals(al)
    f = float((dist ** 2).sum())
    it = 0
    for it in range(1, max_iter + 1):  # iterations of the optimiser, not a loop over points
        c = P.mean(0)
        a = surf - c
        J = np.concatenate([np.cross(a, g), g] + ([] if fixed_scale else [(g * a).sum(1, keepdims=True)]), 1)
        x = np.linalg.lstsq(J, dist, rcond=None)[0]
        dR = Rotation.from_rotvec(x[:3]).as_matrix()
        ds = 1.0 if fixed_scale else float(np.exp(x[6]))
        cand = NowAlignment(al.s * ds, dR @ al.R, ds * (dR @ (al.t - c)) + c + x[3:6])
        d2, s2, g2, cp2 = residuals(cand)
        f2 = float((d2 ** 2).sum())
        if not f2 < f:  # fall back to a point-to-point step on the current correspondences
            local = np.einsum("nk,nkd->nd", cp.bary, V[F[cp.face]])
            if fixed_scale:
                _, R, t = umeyama(local * al.s, P, with_scale=False)
                cand = NowAlignment(al.s, R, t)
            else:
                s, R, t = umeyama(local, P, with_scale=True)
                cand = NowAlignment(s, R, t)
            d2, s2, g2, cp2 = residuals(cand)
            f2 = float((d2 ** 2).sum())
            if not f2 < f:
                break
        done = (f - f2) <= tol * max(f, 1e-30)
        al, dist, surf, g, cp, f = cand, d2, s2, g2, cp2, f2
        if done:
            break
    return al, it


def evaluate_now(pred_vertices, pred_faces, pred_landmarks, scan_vertices, scan_landmarks, *,
                 pred_scale: float = 1000.0, scan_scale: float = 1.0, metrical: bool = False,
                 refine: bool = True) -> NowResult:
    """NoW error of one prediction against its neutral scan.

    Args:
        pred_vertices (V, 3), pred_faces (F, 3), pred_landmarks (7, 3): the
            predicted mesh and its 7 NoW landmarks, in ``pred_scale`` mm per unit
            (1000: metres, mfnet's output).
        scan_vertices (N, 3), scan_landmarks (7, 3): the scan and its 7
            landmarks, ``scan_scale`` mm per unit.
        metrical: keep the prediction's metric scale (R, t only).
        refine: run :func:`refine_alignment` after the landmark fit.
    Returns:
        :class:`NowResult` with the distances (mm) of the cropped scan vertices.
    """
    pv = np.asarray(pred_vertices, np.float64) * pred_scale
    pl = _check_lmk("predicted landmarks", pred_landmarks) * pred_scale
    sv = np.asarray(scan_vertices, np.float64) * scan_scale
    sl = _check_lmk("scan landmarks", scan_landmarks) * scan_scale
    pts = sv[crop_scan(sv, sl)]
    if pts.shape[0] == 0:
        raise ValueError("no scan vertex lies inside the NoW crop: check that scan and landmarks match")
    al = align_landmarks(pl, sl, scale=1.0 if metrical else None)
    rmse = float(np.sqrt(((al.apply(pl) - sl) ** 2).sum(1).mean()))
    it = 0
    if refine:
        al, it = refine_alignment(pv, pred_faces, pts, al, fixed_scale=metrical)
    d = TriangleIndex(pv, np.asarray(pred_faces, np.int64)).query(al.inverse_apply(pts)).distance * al.s
    return NowResult(d, al, rmse, it, now_statistics([d]))


def now_statistics(distances) -> dict:
    """Median, mean, std (mm) of all distances pooled, and their count."""
    d = np.concatenate([np.asarray(x, np.float64).ravel() for x in distances]) if len(distances) else np.zeros(0)
    d = d[np.isfinite(d)]
    if d.size == 0:
        return {"median": float("nan"), "mean": float("nan"), "std": float("nan"), "n": 0}
    return {"median": float(np.median(d)), "mean": float(d.mean()), "std": float(d.std()), "n": int(d.size)}


def cumulative_curve(distances, max_mm: float = CURVE_MAX_MM, steps: int = 801) -> tuple[np.ndarray, np.ndarray]:
    """Fraction of pooled distances <= x for x in linspace(0, max_mm, steps)."""
    d = np.sort(np.concatenate([np.asarray(x, np.float64).ravel() for x in distances]))
    d = d[np.isfinite(d)]
    x = np.linspace(0.0, max_mm, steps)
    y = np.searchsorted(d, x, side="right") / max(d.size, 1)
    return x, y


def plot_cumulative(curves: dict, path, max_mm: float = CURVE_MAX_MM, title: str = "NoW cumulative error") -> None:
    """PNG of cumulative error curves ``{label: list of distance arrays}`` (matplotlib, Agg backend)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4), dpi=120)
    for label, dists in curves.items():
        x, y = cumulative_curve(dists, max_mm)
        ax.plot(x, 100 * y, label=label)
    ax.set_xlim(0, max_mm)
    ax.set_ylim(0, 100)
    ax.set_xlabel("error (mm)")
    ax.set_ylabel("scan vertices (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
