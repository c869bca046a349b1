"""Overlays of a reconstruction: the fitted head painted over each photo, with the detected and
fitted landmarks and, for single photos, the person's outline the silhouette term used."""
from __future__ import annotations

import cv2
import numpy as np


def _to_photo(points: np.ndarray, photo_hw, original_hw) -> np.ndarray:
    """Original-photo pixels -> pixels of a (possibly downscaled) photo; centres at whole numbers."""
    if original_hw is None or tuple(original_hw) == tuple(photo_hw):
        return points
    sx, sy = original_hw[1] / photo_hw[1], original_hw[0] / photo_hw[0]
    return (points + 0.5) / np.array([sx, sy]) - 0.5


def draw_overlay(photo: np.ndarray, points2d: np.ndarray, posed: np.ndarray, faces: np.ndarray,
                 detected: np.ndarray | None = None, fitted: np.ndarray | None = None, alpha: float = 0.3,
                 max_side: int = 2048, outlines: list[np.ndarray] | None = None) -> np.ndarray:
    """Photo (H, W, 3) uint8 RGB with the mesh painted over it, semi-transparent, plus landmarks.

    ``points2d`` (V, 2): the posed vertices in photo pixels; ``posed`` (V, 3): the posed head
    (z towards the camera), used for depth order (painter's algorithm, far faces first) and
    shading by ``|n_z|``; ``detected`` / ``fitted`` (68, 2) drawn green / red; ``outlines``: the
    person's outline(s) the silhouette term used, (K, 2) photo pixels each, drawn cyan.
    Photos larger than ``max_side`` are downscaled first.
    """
    img = np.asarray(photo, np.uint8)
    img = np.ascontiguousarray(np.repeat(img[..., None], 3, -1) if img.ndim == 2 else img[..., :3])
    k = 1.0
    if max(img.shape[:2]) > max_side:
        k = max_side / max(img.shape[:2])
        img = cv2.resize(img, (round(img.shape[1] * k), round(img.shape[0] * k)), interpolation=cv2.INTER_AREA)

    def sc(p):
        return None if p is None else (np.asarray(p, np.float64) + 0.5) * k - 0.5

    pts, faces = sc(points2d), np.asarray(faces, np.int64)
    P = np.asarray(posed, np.float64)
    n = np.cross(P[faces[:, 1]] - P[faces[:, 0]], P[faces[:, 2]] - P[faces[:, 0]])
    shade = np.abs(n[:, 2]) / np.maximum(np.linalg.norm(n, axis=1), 1e-20)
    order = np.argsort(P[faces].mean(1)[:, 2], kind="stable")  # far (small z) first
    tri = np.round(pts[faces] * 16).astype(np.int64)  # 4 fractional bits for cv2 'shift'
    ok = np.isfinite(pts[faces]).all((1, 2)) & (np.abs(tri) < 2 ** 30).all((1, 2))
    layer, mask = img.copy(), np.zeros(img.shape[:2], np.uint8)
    base = np.array([215.0, 205.0, 200.0])
    for f in order[ok[order]]:
        c = tuple(int(v) for v in base * (0.25 + 0.75 * shade[f]))
        poly = tri[f].astype(np.int32)
        cv2.fillConvexPoly(layer, poly, c, lineType=cv2.LINE_AA, shift=4)
        cv2.fillConvexPoly(mask, poly, 255, shift=4)
    m = (mask > 0)[..., None]
    out = np.where(m, (1 - alpha) * img + alpha * layer, img).round().astype(np.uint8)
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)  # the head's outline
    cv2.drawContours(out, contours, -1, (255, 255, 255), max(1, round(img.shape[0] / 600)), cv2.LINE_AA)
    person = [np.round(sc(c) * 16).astype(np.int32)[:, None] for c in outlines or () if np.isfinite(c).all()]
    cv2.polylines(out, person, False, (0, 200, 255), max(1, round(img.shape[0] / 600)), cv2.LINE_AA, shift=4)
    lmk = [p for p in (detected, fitted) if p is not None]
    spans = [np.nanmax(p, 0) - np.nanmin(p, 0) for p in map(sc, lmk) if np.isfinite(p).any()]
    span = max((float(np.max(d)) for d in spans), default=100.0)
    r = max(2, int(round(0.01 * span))) if np.isfinite(span) else 2
    for p, color in ((sc(detected), (0, 220, 0)), (sc(fitted), (255, 30, 30))):
        if p is None:
            continue
        for x, y in p[np.isfinite(p).all(1)]:
            cv2.circle(out, (int(round(x * 16)), int(round(y * 16))), r * 16, color, -1, cv2.LINE_AA, shift=4)
    fs = max(0.4, out.shape[0] / 900)
    legend = [("detected", (0, 220, 0)), ("fitted", (255, 30, 30))] + ([("person outline", (0, 200, 255))]
                                                                         if person else [])
    for j, (text, color) in enumerate(legend):
        org = (int(10 * fs), int((j + 1) * 30 * fs))
        cv2.putText(out, text, org, cv2.FONT_HERSHEY_SIMPLEX, fs, (0, 0, 0), max(1, int(3 * fs)), cv2.LINE_AA)
        cv2.putText(out, text, org, cv2.FONT_HERSHEY_SIMPLEX, fs, color, max(1, int(fs)), cv2.LINE_AA)
    return out
