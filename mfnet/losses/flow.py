"""Multi-view optical-flow loss (MFNet §3.5.1, eqs. 5–6), with flow used as correspondences.

For an ordered view pair (a, b): render the current model in view b, texture it with photo a
(each visible surface point is looked up where it projects in photo a), giving I_{a→b}.
Optical flow F from I_{a→b} to photo b, restricted to the co-visible mask MC_{a,b}, says where
each rendered pixel's content really lies in photo b. For a non-differentiable flow (OpenCV DIS)
the flow becomes correspondences: the surface point X hit at pixel p of view b should project to
``p + F(p)`` in view b while still projecting to ``q`` (where its texture came from) in view a.
The loss value at the current geometry equals the paper's |F(MC ⊙ I_b, MC ⊙ I_{a→b})|, and its
gradient flows through both projections.

Co-visibility: ``mode='zbuffer'`` (default, exact: the point is the nearest surface at its pixel
in both views) or ``mode='landmarks'`` (the paper's MB from landmarks detected reliably in both
views, times the rendered face mask MF_b). The mouth is masked in both modes.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from ..flow.dis import dis_flow
from ..headmodel.landmarks import MOUTH_OUTER
from ..render.rasterize import rasterize
from ..render.visibility import covisible_pairs


@dataclass
class FlowCorrespondences:
    """Correspondences of all view pairs, concatenated (K points)."""

    view_a: torch.Tensor  # (K,) long: view whose photo textured the point
    view_b: torch.Tensor  # (K,) long: view it was rendered in
    face_idx: torch.Tensor  # (K,) long
    bary: torch.Tensor  # (K, 3)
    target_a: torch.Tensor  # (K, 2) pixels in view a (where the texture came from)
    target_b: torch.Tensor  # (K, 2) pixels in view b (p + F(p))
    flow_magnitude: float = 0.0  # mean |F| over the points, pixels

    def __len__(self) -> int:
        return int(self.face_idx.shape[0])


def _polygon_mask(points: np.ndarray, size: int) -> np.ndarray:
    mask = np.zeros((size, size), np.uint8)
    if len(points) >= 3:
        hull = cv2.convexHull(np.round(points).astype(np.int32))
        cv2.fillConvexPoly(mask, hull, 1)
    return mask.astype(bool)


def landmark_masks(landmarks: torch.Tensor, weights: torch.Tensor, a: int, b: int, size: int,
                   threshold: float = 0.5) -> np.ndarray:
    """The paper's MB_{a,b} in view b: hull of the landmarks reliable in both views (brows, nose,
    cheek/jaw contour), mouth removed."""
    lm = landmarks[b].detach().cpu().numpy()
    both = ((weights[a] > threshold) & (weights[b] > threshold)).cpu().numpy()
    sel = np.zeros(68, bool)
    sel[:36] = True  # jaw contour, brows, nose
    mb = _polygon_mask(lm[sel & both], size)
    return mb & ~mouth_mask(landmarks[b], size)


def mouth_mask(landmarks_b: torch.Tensor, size: int, dilate: float = 0.15) -> np.ndarray:
    pts = landmarks_b[list(MOUTH_OUTER)].detach().cpu().numpy()
    c = pts.mean(0)
    return _polygon_mask(c + (pts - c) * (1 + dilate), size)


@torch.no_grad()
def build_flow_correspondences(verts: torch.Tensor, faces: torch.Tensor, cameras, images: torch.Tensor,
                               landmarks: torch.Tensor, landmark_weights: torch.Tensor,
                               face_region: torch.Tensor | None = None, mode: str = "zbuffer",
                               flow_fn=dis_flow, max_points_per_pair: int = 3000, max_flow: float = 0.08,
                               depth_tol: float = 2e-3, seed: int = 0) -> FlowCorrespondences:
    """Render, warp, run flow and collect correspondences for every ordered pair of views.

    verts (N, V, 3) posed per view; images (N, 3, S, S) crops; landmarks (N, 68, 2) crop pixels;
    face_region: bool (F,) faces allowed in MF (default: all); max_flow: flows longer than this
    fraction of the crop are treated as outliers; depth_tol in model units (metres: both camera
    models report depth in the model's units).
    """
    if mode not in ("zbuffer", "landmarks"):
        raise ValueError(f"unknown co-visibility mode {mode!r}: use 'zbuffer' or 'landmarks'")
    N, S = verts.shape[0], images.shape[-1]
    sv = cameras.project(verts, (S, S))
    frags = rasterize(sv, faces, (S, S), perspective_correct=cameras.perspective_correct)
    p2f = frags.pix_to_face
    covered = []
    for b in range(N):
        c = p2f[b] >= 0
        if face_region is not None:
            c &= face_region[p2f[b].clamp_min(0)]
        covered.append(c & torch.from_numpy(~mouth_mask(landmarks[b], S)).to(c.device))

    def boxes(a: int, b: int) -> torch.Tensor:  # the paper's MB ⊙ MF: both views' landmark boxes
        return torch.from_numpy(landmark_masks(landmarks, landmark_weights, a, b, S)).to(p2f.device)

    pairs = list(covisible_pairs(sv, frags, faces, S, covered, depth_tol, max_points_per_pair,
                                 torch.Generator().manual_seed(seed), zbuffer=mode == "zbuffer",
                                 pair_mask=boxes if mode == "landmarks" else None))
    if not pairs:
        return _empty(verts)
    warped, targets = zip(*(_warp_pair(images, p) for p in pairs))
    flows = flow_fn(torch.stack(warped), torch.stack(targets))  # (P, S, S, 2)
    return _collect(verts, pairs, flows, max_flow * S)


def _warp_pair(images: torch.Tensor, p) -> tuple[torch.Tensor, torch.Tensor]:
    """The warped image I_{a->b} (photo a sampled where view b's co-visible pixels land in a, placed at
    those pixels) and photo b on the same pixels, both (3, S, S), zero elsewhere."""
    S = images.shape[-1]
    grid = (p.q[:, :2] / S * 2 - 1)[None, None]  # (1, 1, k, 2) normalised (x, y)
    vals = F.grid_sample(images[p.a:p.a + 1], grid.to(images.dtype), align_corners=False)[0, :, 0]  # (3, k)
    img = torch.zeros_like(images[p.b])
    keep_mask = p.mask.clone()
    keep_mask[p.mask] = p.inside
    img[:, p.mask] = vals * p.inside.to(vals.dtype)
    return img, images[p.b] * keep_mask.to(images.dtype)


def _collect(verts: torch.Tensor, pairs, flows: torch.Tensor, max_flow_px: float) -> FlowCorrespondences:
    """The drawn points of every pair with their flow targets (flows shorter than ``max_flow_px``)."""
    S = flows.shape[1]
    ys, xs = torch.meshgrid(torch.arange(S, device=verts.device), torch.arange(S, device=verts.device), indexing="ij")
    pix = torch.stack([xs, ys], -1).to(verts.dtype) + 0.5  # (S, S, 2) pixel centres (x, y)
    out = {k: [] for k in ("a", "b", "f", "w", "ta", "tb")}
    mags = []
    for p, flow in zip(pairs, flows):
        idx = p.mask.nonzero()[p.keep]
        f, w, qa, pb = p.f[p.keep], p.w[p.keep], p.q[p.keep, :2], pix[idx[:, 0], idx[:, 1]]
        if f.numel() == 0:
            continue
        pi = pb.floor().long()
        fl = flow[pi[:, 1], pi[:, 0]]  # (k, 2)
        ok = fl.norm(dim=-1) < max_flow_px
        mags.append(fl[ok].norm(dim=-1))
        out["a"].append(torch.full((int(ok.sum()),), p.a, dtype=torch.long))
        out["b"].append(torch.full((int(ok.sum()),), p.b, dtype=torch.long))
        out["f"].append(f[ok])
        out["w"].append(w[ok])
        out["ta"].append(qa[ok])
        out["tb"].append(pb[ok] + fl[ok])
    if not out["f"]:
        return _empty(verts)
    cat = {k: torch.cat(v) for k, v in out.items()}
    mag = torch.cat(mags)
    return FlowCorrespondences(cat["a"].to(verts.device), cat["b"].to(verts.device), cat["f"], cat["w"], cat["ta"],
                               cat["tb"], float(mag.mean()) if mag.numel() else 0.0)


def _empty(verts: torch.Tensor) -> FlowCorrespondences:
    z = torch.zeros(0, dtype=torch.long, device=verts.device)
    e = verts.new_zeros(0, 2)
    return FlowCorrespondences(z, z, z, verts.new_zeros(0, 3), e, e)


def multiview_flow_loss(verts: torch.Tensor, faces: torch.Tensor, cameras, image_size: int,
                        corr: FlowCorrespondences) -> torch.Tensor:
    """Mean L1 distance (in crop-normalised units, 1 = half the crop) between the current
    projections of the corresponded surface points and their flow targets, in both views."""
    if len(corr) == 0:
        return verts.sum() * 0
    sv = cameras.project(verts, (image_size, image_size))[..., :2]  # (N, V, 2)
    tri = faces[corr.face_idx]  # (K, 3)
    pb = (sv[corr.view_b[:, None], tri] * corr.bary[..., None]).sum(1)
    pa = (sv[corr.view_a[:, None], tri] * corr.bary[..., None]).sum(1)
    err = (pb - corr.target_b).abs().sum(-1) + (pa - corr.target_a).abs().sum(-1)
    return err.mean() / (image_size / 2)
