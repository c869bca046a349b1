"""UV texture fused from all views (paper eqs. 3-4, beyond: visibility- and angle-weighted, skin only),
with the rest filled plausibly.

Each view contributes only inside its face region (the detected jaw contour closed over the raised
brows, eyes and mouth included): hair, background and clothes around the face are not painted onto
scalp, ears or neck. Texels no view contributes to get the face's median skin tone, blended smoothly
into the seen skin; small holes inside the seen area are inpainted. Eyeballs (when the model marks
them) get an eye: sclera, iris and pupil colours measured inside the eye contours of the photos.
"""
from __future__ import annotations

import cv2
import numpy as np
import torch

from ..render.texture import extract_texture, rasterize_uv

JAW, BROWS = list(range(0, 17)), list(range(26, 16, -1))
EYES = (list(range(36, 42)), list(range(42, 48)))


def face_region_mask(landmarks: np.ndarray, size: int, forehead: float = 0.45) -> np.ndarray:
    """(S, S) bool: inside the jaw contour closed over the brows raised by ``forehead`` x the brow-to-chin
    height (the forehead). ``landmarks`` (68, 2) in the image's pixels (centres at +0.5)."""
    p = np.asarray(landmarks, np.float64)
    up = p[8] - p[BROWS].mean(0)  # chin - brows: "down" in the image
    top = p[BROWS] - forehead * up
    poly = np.round(np.vstack([p[JAW], top]) * 16).astype(np.int32)
    mask = np.zeros((size, size), np.uint8)
    cv2.fillPoly(mask, [cv2.convexHull(poly)], 1, lineType=cv2.LINE_8, shift=4)
    return mask.astype(bool)


def eye_colours(images: np.ndarray, landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(sclera, iris) RGB in [0, 1] from the pixels inside the eye contours of all views, or None.
    images (N, S, S, 3) float; landmarks (N, 68, 2)."""
    pix = []
    for img, lm in zip(images, landmarks):
        m = np.zeros(img.shape[:2], np.uint8)
        for eye in EYES:
            cv2.fillPoly(m, [np.round(lm[eye] * 16).astype(np.int32)], 1, shift=4)
        pix.append(img[m.astype(bool)])
    pix = np.concatenate(pix) if pix else np.zeros((0, 3))
    if len(pix) < 20:
        return None
    lum = pix @ np.array([0.299, 0.587, 0.114])
    order = np.argsort(lum)
    k = max(3, len(pix) // 5)
    return np.median(pix[order[-k:]], 0), np.median(pix[order[:k]], 0)


@torch.no_grad()
def fuse_texture(images: torch.Tensor, posed_vertices: torch.Tensor, faces: torch.Tensor, vt: torch.Tensor,
                 ft: torch.Tensor, cameras, tex_size: int = 512, sharpness: float = 4.0,
                 landmarks: torch.Tensor | None = None, canonical: torch.Tensor | None = None,
                 eyeballs: torch.Tensor | None = None) -> np.ndarray:
    """(N, 3, S, S) crops + per-view posed vertices -> (T, T, 3) uint8 texture.

    Each texel is a weighted mean over the views that see it, weight = cos(angle)^sharpness, so the
    most frontal view dominates. ``landmarks`` (N, 68, 2) crop pixels: restrict each view to its face
    region (:func:`face_region_mask`). ``canonical`` (V, 3) + ``eyeballs`` (vertex indices): paint the
    eyeballs from the photos' eye colours.
    """
    N, _, S, _ = images.shape
    if landmarks is not None:
        masks = np.stack([face_region_mask(lm, S) for lm in landmarks.cpu().numpy()])
        mask_t = torch.from_numpy(masks).to(images)[:, None]
        tex, vis = extract_texture(torch.cat([images * mask_t, mask_t], 1), posed_vertices, faces, vt, ft, cameras,
                                   tex_size)  # premultiplied: pixels outside the region never mix in
        inside = tex[:, 3:4].clamp(0, 1)
        tex = tex[:, :3] / inside.clamp_min(1e-3) * (inside > 0.5)
        vis = vis * (inside > 0.5)
    else:
        tex, vis = extract_texture(images, posed_vertices, faces, vt, ft, cameras, tex_size)
    w = vis.clamp_min(0) ** sharpness
    wsum = w.sum(0)
    fused = (tex * w).sum(0) / wsum.clamp_min(1e-8)  # (3, T, T)
    seen = (wsum[0] > 1e-6).cpu().numpy()
    img = (fused.permute(1, 2, 0).clamp(0, 1).cpu().numpy() * 255 + 0.5).astype(np.uint8)
    if not seen.any():
        img = np.full_like(img, 128)
    else:
        img = _fill_unseen(img, seen)
    if canonical is not None and eyeballs is not None and landmarks is not None and len(eyeballs):
        cols = eye_colours(images.permute(0, 2, 3, 1).cpu().numpy(), landmarks.cpu().numpy())
        if cols is not None:
            _paint_eyeballs(img, canonical, faces, vt, ft, eyeballs, *cols)
    return img


def _fill_unseen(img: np.ndarray, seen: np.ndarray, band: int = 12) -> np.ndarray:
    """Small holes inside the seen area inpainted; everything else the median seen colour (the skin
    tone), blended into the seen skin over ``band`` texels."""
    px = img[seen].astype(np.float64)
    lum = px @ np.array([0.299, 0.587, 0.114])
    skin = np.median(px[lum >= np.median(lum)], 0)  # the lighter half: skin, not brows, beard or lashes
    closed = cv2.morphologyEx(seen.astype(np.uint8), cv2.MORPH_CLOSE, np.ones((9, 9), np.uint8)).astype(bool)
    holes = closed & ~seen
    out = img.copy()
    out[~seen] = skin.astype(np.uint8)
    if holes.any():
        out = cv2.inpaint(out, holes.astype(np.uint8), 3, cv2.INPAINT_TELEA)
        seen = seen | holes
    # smooth seam: unseen texels near the seen area fade from the blurred seen colours to the skin tone
    dist = cv2.distanceTransform((~seen).astype(np.uint8), cv2.DIST_L2, 3)
    near = (~seen) & (dist < band)
    if near.any():
        wgt = cv2.GaussianBlur(seen.astype(np.float32), (0, 0), band / 2)
        colour = cv2.GaussianBlur(np.where(seen[..., None], out, 0).astype(np.float32), (0, 0), band / 2)
        mix = colour / np.maximum(wgt, 1e-6)[..., None]
        t = np.clip(1 - dist / band, 0, 1)[..., None]
        blended = t * mix + (1 - t) * skin
        out[near] = np.clip(blended[near] + 0.5, 0, 255).astype(np.uint8)
    return out


def _paint_eyeballs(img: np.ndarray, canonical: torch.Tensor, faces: torch.Tensor, vt: torch.Tensor,
                    ft: torch.Tensor, eyeballs: torch.Tensor, sclera: np.ndarray, iris: np.ndarray,
                    iris_deg: float = 32.0, pupil_deg: float = 12.0) -> None:
    """Paint the texels of eyeball faces: iris and pupil inside cones about each eyeball's forward (+z)
    axis, sclera elsewhere (ICT-style eyeball meshes: about 12 mm radius, 6 mm iris)."""
    T = img.shape[0]
    frags = rasterize_uv(vt, ft, (T, T))
    tpix, tface, tbary = frags.packed()
    V = canonical.shape[0]
    is_eye = torch.zeros(V, dtype=torch.bool, device=faces.device)
    is_eye[eyeballs.to(faces.device)] = True
    on_eye = is_eye[faces[tface]].all(1)
    if not bool(on_eye.any()):
        return
    tri = faces[tface[on_eye]]
    pts = (canonical[tri] * tbary[on_eye].to(canonical)[..., None]).sum(1).double()  # (M, 3)
    ev = canonical[eyeballs.to(canonical.device)].double()
    out = np.zeros(len(pts), np.float64)
    for side in (ev[:, 0] < 0, ev[:, 0] >= 0):  # two eyeballs, split by the sign of x
        if not bool(side.any()):
            continue
        centre = ev[side].mean(0)
        own = (pts[:, 0] < 0) if bool((ev[side][:, 0] < 0).all()) else (pts[:, 0] >= 0)
        d = pts[own] - centre
        cosz = (d[:, 2] / d.norm(dim=-1).clamp_min(1e-12)).clamp(-1, 1)
        out[own.cpu().numpy()] = np.degrees(np.arccos(cosz.cpu().numpy()))
    angle = out
    colour = np.where(angle[:, None] < pupil_deg, 0.15 * iris, np.where(angle[:, None] < iris_deg, iris, sclera))
    flat = img.reshape(-1, 3)
    flat[tpix[on_eye].cpu().numpy()] = np.clip(colour * 255 + 0.5, 0, 255).astype(np.uint8)
