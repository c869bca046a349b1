"""Self-supervised training loss of MFNet (paper eq. 11) for a batch of B subjects × N views.

Terms (reused from :mod:`mfnet.losses`): landmark (eq. 7), eye (eq. 8), lip (eq. 9), multi-view
optical flow (eq. 6, flow turned into correspondences, co-visible masks) and regularisation
(eq. 10: shape, expression and albedo codes). Weights default to the paper's λ = 1, 1, 1, 0.5, 1e-4.
The head model runs once for all B·N views; only the flow term loops over subjects (its
correspondences come from a non-differentiable optical flow per view pair).
"""
from __future__ import annotations

import torch

from ..fit.fitter import face_regions
from ..flow.dis import dis_flow
from ..losses.flow import build_flow_correspondences, multiview_flow_loss
from ..losses.landmarks import eye_loss, lip_loss, regularisation, single_view_landmark_loss
from ..net.model import NetOutput
from ..render.cameras import WeakPerspectiveCameras
from .config import LossConfig


class TrainLoss:
    """``loss(out, batch, step) -> (total, {term: value}, landmarks2d (B, N, 68, 2))``."""

    def __init__(self, model, cfg: LossConfig | None = None, seed: int = 0):
        self.model, self.cfg, self.seed = model, cfg or LossConfig(), seed
        self.face_region = face_regions(model)[0]

    def uses_flow(self, step: int, n_views: int) -> bool:
        c = self.cfg
        return c.weights.multiop > 0 and c.flow_every > 0 and n_views > 1 and step >= c.flow_start \
            and (step - c.flow_start) % c.flow_every == 0

    def head(self, out: NetOutput, landmarks_only: bool = True):
        """Run the head model for every (subject, view); outputs are (B*N, ...)."""
        B, N = out.scale.shape
        shape = out.shape[:, None].expand(B, N, -1).reshape(B * N, -1)
        expr = out.expression[:, None].expand(B, N, -1).reshape(B * N, -1)
        return self.model(shape, expr, out.pose_matrices(), pose_repr="matrix",
                          dynamic_contour=self.cfg.dynamic_contour, landmarks_only=landmarks_only)

    def __call__(self, out: NetOutput, batch: dict, step: int = 0):
        c = self.cfg
        images = batch["images"]
        B, N = out.scale.shape
        S = images.shape[-1]
        dev = out.shape.device
        flow = self.uses_flow(step, N)
        head = self.head(out, landmarks_only=not flow)
        cams = WeakPerspectiveCameras(out.scale.reshape(-1), out.trans.reshape(-1, 2))
        lmk2d = cams.project(head.landmarks, (S, S))[..., :2]
        target = batch["landmarks"].to(dev).reshape(B * N, 68, 2)
        weights = batch["landmark_weights"].to(dev).reshape(B * N, 68)
        norm = torch.full((B * N,), S / 2.0, device=dev)
        w, terms = c.weights, {}
        if w.landmarks:
            terms["singlelmk"] = w.landmarks * single_view_landmark_loss(lmk2d, target, weights, norm)
        if w.eye:
            terms["eye"] = w.eye * eye_loss(lmk2d, target, weights, norm)
        if w.lip:
            terms["lip"] = w.lip * lip_loss(lmk2d, target, weights, norm)
        if w.reg_shape or w.reg_expression or w.reg_texture:
            terms["reg"] = (regularisation(out.shape, out.expression, w.reg_shape, w.reg_expression)
                            + w.reg_texture * (out.texture ** 2).sum()) / B
        if flow:
            terms["multiop"] = w.multiop * self.flow_term(out, head.vertices, images.to(dev), target, weights, step)
        total = sum(terms.values())
        return total, terms, lmk2d.reshape(B, N, 68, 2)

    def flow_term(self, out: NetOutput, verts: torch.Tensor, images, target, weights, step: int) -> torch.Tensor:
        """Eq. 6 per subject (all ordered view pairs), averaged over the batch."""
        B, N = out.scale.shape
        S = images.shape[-1]
        verts = verts.reshape(B, N, *verts.shape[1:])
        target, weights = target.reshape(B, N, 68, 2), weights.reshape(B, N, 68)
        preset = self.cfg.flow_preset
        losses = []
        for b in range(B):
            cams = WeakPerspectiveCameras(out.scale[b], out.trans[b])
            with torch.no_grad():
                corr = build_flow_correspondences(
                    verts[b].detach(), self.model.faces, WeakPerspectiveCameras(cams.scale.detach(), cams.trans.detach()),
                    images[b].float(), target[b], weights[b], self.face_region, mode=self.cfg.covisibility,
                    flow_fn=lambda a, t: dis_flow(a, t, preset=preset),
                    max_points_per_pair=self.cfg.max_points_per_pair, seed=self.seed + step * B + b)
            losses.append(multiview_flow_loss(verts[b], self.model.faces, cams, S, corr))
        return torch.stack(losses).mean()
