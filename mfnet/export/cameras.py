"""Per-view cameras for export: weak perspective (crop pixels) -> OpenCV pinhole K, R, t (original pixels).

Conventions
-----------
* The fitted camera of view ``i`` is DECA's weak perspective in the square renderer crop of side
  ``c`` (see :mod:`mfnet.render.cameras`): with ``h = c / 2``::

      x_r = h + s h (P_x + t_x),   y_r = h - s h (P_y + t_y)

  where ``P`` is the *posed* head of that view and pixel centres sit at +0.5.
* ``crop_to_original[i]`` (2x3, ``[M | b]``) maps renderer crop pixels to original-photo pixels
  whose pixel centres are whole numbers (OpenCV).
* The posed head is the canonical head ``X`` (``Reconstruction.vertices``) rotated by the view
  rotation ``R_v`` about a pivot (the model's root joint): ``P = R_v X + d`` with
  ``d = (I - R_v) pivot``.  :func:`rigid_offsets` recovers ``d`` from posed vertices;
  :func:`estimate_pivot` estimates the pivot from the fitted 2D landmarks when no posed
  vertices are available.

The OpenCV camera (``x ~ K (R X + t)``, X = canonical mesh, i.e. what ``mesh.obj`` holds)
is exact for cameras fitted at a finite distance (``inv_distance``); it
approximates an orthographic camera (inverse distance 0) with a long focal length: ``f = focal_factor * c`` crop
pixels, placed at the distance ``Z0 = f / (s h)`` from the head centre so that the projections
agree exactly on the plane through the head centre.  Elsewhere the relative error is about
``depth offset / Z0`` of the distance from the crop centre (< 1 % of the face size for
``focal_factor=50``).  ``R = Q_z · diag(1, -1, -1) · R_v`` where ``Q_z`` is the in-plane rotation
of the crop affine (from its RQ decomposition), so ``K`` is upper triangular with any crop
rotation moved into ``R``.
"""
from __future__ import annotations

import cv2
import numpy as np

from ..ibug import INNER
from ..utils.affine import apply_affine
from ..utils.rotation import FLIP, euler_degrees  # noqa: F401  (euler_degrees: part of this module's interface)

__all__ = ["axis_angle_to_matrix", "matrix_to_axis_angle", "rigid_offsets", "estimate_pivot", "posed_from_pivot",
           "pivot_from_offsets", "weak_to_opencv", "project_weak", "project_opencv", "apply_affine", "euler_degrees"]

STATIC_LANDMARKS = list(INNER)  # iBUG points whose embedding does not follow the head yaw


def axis_angle_to_matrix(r: np.ndarray) -> np.ndarray:
    """(..., 3) axis-angle -> (..., 3, 3) rotation matrices (Rodrigues)."""
    r = np.asarray(r, np.float64)
    flat = r.reshape(-1, 3)
    out = np.stack([cv2.Rodrigues(v.reshape(3, 1))[0] for v in flat]) if len(flat) else np.zeros((0, 3, 3))
    return out.reshape(r.shape[:-1] + (3, 3))


def matrix_to_axis_angle(R: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotation matrices -> (..., 3) axis-angle."""
    R = np.asarray(R, np.float64)
    flat = R.reshape(-1, 3, 3)
    out = np.stack([cv2.Rodrigues(m)[0].reshape(3) for m in flat]) if len(flat) else np.zeros((0, 3))
    return out.reshape(R.shape[:-2] + (3,))


def inv_distances(views) -> np.ndarray:
    """(N,) the fitted cameras' inverse distances (1/m) of ``views`` (:class:`~mfnet.types.ViewParams`),
    0 for orthographic cameras."""
    n = len(views.rotation)
    k = getattr(views, "inv_distance", None)
    if k is None:
        return np.zeros(n)
    return np.asarray(k.detach().cpu().numpy() if hasattr(k, "detach") else k, np.float64).reshape(n)


def project_weak(posed: np.ndarray, scale, trans, crop_size: int, crop_to_original: np.ndarray,
                 inv_distance=None) -> np.ndarray:
    """Weak-perspective projection of posed points (N, V, 3) to original-photo pixels (N, V, 2);
    ``inv_distance`` (N,): the cameras' finite distance (:class:`mfnet.render.cameras.WeakPerspectiveCameras`)."""
    P = np.asarray(posed, np.float64)
    s = np.asarray(scale, np.float64).reshape(-1, 1)
    if inv_distance is not None:
        s = s / (1.0 - np.asarray(inv_distance, np.float64).reshape(-1, 1) * P[..., 2])
    t = np.asarray(trans, np.float64).reshape(-1, 1, 2)
    h = crop_size / 2.0
    x = h + s * h * (P[..., 0] + t[..., 0])
    y = h - s * h * (P[..., 1] + t[..., 1])
    return apply_affine(np.stack([x, y], -1), crop_to_original)


def project_opencv(points: np.ndarray, K: np.ndarray, R: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Pinhole projection ``K (R X + t)`` of (V, 3) or (N, V, 3) points for N cameras -> (N, V, 2)."""
    X = np.asarray(points, np.float64)
    K, R, t = (np.asarray(a, np.float64) for a in (K, R, t))
    X = np.broadcast_to(X, (len(R),) + X.shape[-2:])
    Xc = np.einsum("nij,nvj->nvi", R, X) + t[:, None, :]
    p = np.einsum("nij,nvj->nvi", K, Xc)
    return p[..., :2] / p[..., 2:3]


def rigid_offsets(canonical: np.ndarray, posed: np.ndarray, R_view: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Offsets ``d`` (N, 3) with ``posed[i] ~ R_view[i] X + d[i]`` and the RMS residual (N,) in metres."""
    X = np.asarray(canonical, np.float64)
    rot = np.einsum("nij,vj->nvi", np.asarray(R_view, np.float64), X)
    diff = np.asarray(posed, np.float64) - rot
    d = diff.mean(1)
    rms = np.sqrt(((diff - d[:, None]) ** 2).sum(-1).mean(-1))
    return d, rms


def posed_from_pivot(canonical: np.ndarray, R_view: np.ndarray, pivot: np.ndarray) -> np.ndarray:
    """(N, V, 3) posed heads: the canonical head rotated by each view rotation about ``pivot``."""
    X = np.asarray(canonical, np.float64) - np.asarray(pivot, np.float64)
    return np.einsum("nij,vj->nvi", np.asarray(R_view, np.float64), X) + np.asarray(pivot, np.float64)


def estimate_pivot(landmarks3d: np.ndarray, fitted_2d: np.ndarray, R_view: np.ndarray, scale, trans,
                   crop_size: int, crop_to_original: np.ndarray, prior: np.ndarray,
                   inv_distance=None) -> tuple[np.ndarray, float]:
    """Least-squares rotation centre from the fitted landmarks (original pixels).

    Uses the 51 static iBUG points (the jaw contour may follow the head yaw). The pivot only
    shifts each view by a constant ``(I - R_v) pivot``, so it is observable only when views are
    rotated; a small ridge pulls it to ``prior`` (e.g. the mesh centroid) when it is not.
    Returns ``(pivot, rms_px)`` where ``rms_px`` is the remaining reprojection RMS (pixels).
    """
    L = np.asarray(landmarks3d, np.float64)[STATIC_LANDMARKS]
    R_view = np.asarray(R_view, np.float64)
    A = np.asarray(crop_to_original, np.float64)
    s = np.asarray(scale, np.float64).reshape(-1)
    h = crop_size / 2.0
    base = project_weak(np.einsum("nij,vj->nvi", R_view, L), s, trans, crop_size, A, inv_distance)  # pivot = 0
    target = np.asarray(fitted_2d, np.float64)[:, STATIC_LANDMARKS]
    rows, rhs = [], []
    for i in range(len(R_view)):
        # d(x_orig)/d(pivot) = M_i @ diag(s h, -s h) @ (I - R_v)[:2]
        J = A[i, :, :2] @ np.diag([s[i] * h, -s[i] * h]) @ (np.eye(3) - R_view[i])[:2]
        r = np.nanmean(target[i] - base[i], 0) if np.isfinite(target[i]).any() else np.zeros(2)  # uniform shift
        rows.append(J)
        rhs.append(r)
    J, r = np.concatenate(rows), np.concatenate(rhs)
    JtJ = J.T @ J
    lam = 1e-3 * np.trace(JtJ) / 3.0 + 1e-12
    prior = np.asarray(prior, np.float64)
    pivot = np.linalg.solve(JtJ + lam * np.eye(3), J.T @ r + lam * prior)
    posed = posed_from_pivot(L, R_view, pivot)
    res = project_weak(posed, s, trans, crop_size, A, inv_distance) - target
    sq = (res ** 2).sum(-1)
    return pivot, float(np.sqrt(np.nanmean(sq))) if np.isfinite(sq).any() else float("nan")


def _rq2(M: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """M (2x2) = U @ Q with U upper triangular (U[1,1] > 0) and Q a rotation."""
    d = float(np.hypot(M[1, 0], M[1, 1]))
    if d < 1e-12:
        raise ValueError("degenerate crop_to_original affine")
    c, s_ = M[1, 1] / d, M[1, 0] / d
    Q = np.array([[c, -s_], [s_, c]])
    return M @ Q.T, Q


def weak_to_opencv(scale, trans, crop_size: int, crop_to_original: np.ndarray, R_view: np.ndarray,
                   offsets: np.ndarray, centre: np.ndarray, focal_factor: float = 50.0, inv_distance=None):
    """OpenCV ``K (N,3,3), R (N,3,3), t (N,3)`` for the canonical head, in original-photo pixels.

    ``offsets`` (N, 3): the posed head is ``R_view X + offsets``; ``centre`` (N, 3): the head centre
    in each posed frame (where the pinhole matches the weak perspective exactly). A view with
    ``inv_distance`` k > 0 (N,) is a pinhole at distance 1/k already: its camera is exact, with the
    focal length ``s h / k`` (``focal_factor`` and ``centre`` are not used for it).
    """
    s = np.asarray(scale, np.float64).reshape(-1)
    tr = np.asarray(trans, np.float64).reshape(-1, 2)
    A = np.asarray(crop_to_original, np.float64).reshape(-1, 2, 3)
    R_view = np.asarray(R_view, np.float64).reshape(-1, 3, 3)
    offsets = np.asarray(offsets, np.float64).reshape(-1, 3)
    centre = np.asarray(centre, np.float64).reshape(-1, 3)
    n = len(s)
    h = crop_size / 2.0
    f = float(focal_factor) * crop_size
    k = np.zeros(n) if inv_distance is None else np.asarray(inv_distance, np.float64).reshape(-1)
    K, R, t = np.zeros((n, 3, 3)), np.zeros((n, 3, 3)), np.zeros((n, 3))
    for i in range(n):
        if not s[i] > 0:
            raise ValueError(f"view {i}: weak-perspective scale must be positive, got {s[i]}")
        if k[i] > 0:  # the fitted pinhole: distance 1/k from the plane z = 0 of the posed frame
            f_i, t_p = s[i] * h / k[i], np.array([tr[i, 0], -tr[i, 1], 1.0 / k[i]])
        else:
            f_i = f
            z0 = f / (s[i] * h)  # camera distance from the head centre
            # camera in the posed frame: Xc = FLIP P + t_p ; Xc_z = z0 at the head centre
            t_p = np.array([tr[i, 0], -tr[i, 1], z0 + centre[i, 2]])
        K_crop = np.array([[f_i, 0.0, h], [0.0, f_i, h], [0.0, 0.0, 1.0]])
        A3 = np.vstack([A[i], [0.0, 0.0, 1.0]])
        KA = A3 @ K_crop  # upper-left block = f M, generally not triangular
        U, Q = _rq2(A[i, :, :2])
        Qz = np.eye(3)
        Qz[:2, :2] = Q
        K[i] = KA
        K[i, :2, :2] = f_i * U
        R[i] = Qz @ FLIP @ R_view[i]
        t[i] = Qz @ (FLIP @ offsets[i] + t_p)
    return K, R, t


def pivot_from_offsets(offsets: np.ndarray, R_view: np.ndarray, prior: np.ndarray) -> np.ndarray:
    """Rotation centre ``p`` with ``offsets[i] ~ (I - R_view[i]) p`` (ridge towards ``prior``)."""
    A = np.eye(3)[None] - np.asarray(R_view, np.float64)
    AtA = np.einsum("nji,njk->ik", A, A)
    Atd = np.einsum("nji,nj->i", A, np.asarray(offsets, np.float64))
    lam = 1e-3 * np.trace(AtA) / 3.0 + 1e-12
    return np.linalg.solve(AtA + lam * np.eye(3), Atd + lam * np.asarray(prior, np.float64))
