"""The silhouette term: the face's outer outline onto the photo's person outline.

A landmark fit of one photo has no depth cue: seen from 60-75°, the nose's length and the chin's
and forehead's slope are guesses of the prior, and the detector's nose and contour points are least
reliable there. The outline of the head against the background is a direct cue. :class:`SilhouetteTerm`
segments the person in each crop (:func:`mfnet.detect.segment.person_masks`), and every
``refresh_every`` steps takes the model's face vertices on the outer outline of its own rendered
mask in each view (:func:`outline_vertices`); the loss pulls them onto the person's outline
(:func:`mfnet.losses.silhouette.silhouette_loss`, robust: the jaw's outline above the neck and the
forehead's under hair find no photo outline near them and stop pulling). Only the face region
counts: the back of the head and the neck are hair and clothes in photos. In multi-view fits
(``silhouette.multi_view``) only the outline on the side each view's head is turned away from counts
(:func:`far_side`), in views turned 25° or more: there the face's outline (cheek, nose, chin) is the
person's against the background, a cue to the face's proportions. It joins the photometric stage only
(:func:`mfnet.fit.stages.build_stages`): in the landmark stages it made the result jump with invisible
changes of the photos (docs/benchmarks.md).
"""
from __future__ import annotations

import torch

from ..losses.silhouette import signed_distance, silhouette_loss
from ..render.rasterize import rasterize
from .terms import FitState, LossTerm


@torch.no_grad()
def outline_vertices(screen: torch.Tensor, faces: torch.Tensor, region: torch.Tensor, size: int,
                     band: float = 1.0) -> torch.Tensor:
    """(N, V) bool: the vertices of ``region`` (V,) bool on the outer outline of the mesh's own mask
    in each view: within ``band`` pixels inside it. screen (N, V, 3): projected vertices (pixels,
    depth); faces (F, 3); size: the square image's side."""
    cover = rasterize(screen, faces, size).pix_to_face >= 0  # (N, S, S)
    ij = screen[..., :2].floor().long().clamp(0, size - 1)
    out = []
    for i in range(screen.shape[0]):  # one distance transform per view
        d = signed_distance(cover[i])[ij[i, :, 1], ij[i, :, 0]]
        out.append(region & (d > -band - 0.5))
    return torch.stack(out)


@torch.no_grad()
def far_side(screen: torch.Tensor, region: torch.Tensor, detections, min_yaw: float) -> torch.Tensor:
    """(N, V) bool: the image half of each view on the side the head is turned away from (right of the
    face region's centre when the detector's yaw is positive); none in views turned less than ``min_yaw``
    degrees or without a detector yaw (views prepared without detections). There the face's outline is
    the person's: the near side's runs along ears and hair."""
    x = screen[..., 0]
    xr = x[:, region]
    centre = (xr.amax(1) + xr.amin(1)) / 2
    keep = torch.zeros_like(x, dtype=torch.bool)
    for i, det in enumerate(detections[: x.shape[0]]):  # a few views
        yaw = float(getattr(det, "yaw_deg", float("nan")))
        if yaw == yaw and abs(yaw) >= min_yaw:
            keep[i] = (x[i] - centre[i]) * (1.0 if yaw > 0 else -1.0) > 0
    return keep


class SilhouetteTerm(LossTerm):
    """``weight`` x :func:`~mfnet.losses.silhouette.silhouette_loss` of the face region's outline
    vertices (``region`` (V,) bool) against the person masks of the views' crops; ``tau``: the
    robust scale, a fraction of the crop's side; ``threshold``: the segmentation confidence above which a
    pixel is the person's."""

    name = "silhouette"

    def __init__(self, weight: float, region: torch.Tensor, tau: float = 0.03, band: float = 1.0,
                 refresh_every: int = 10, threshold: float = 0.85, far_side_min_yaw: float | None = None):
        self.weight, self.region, self.tau, self.band = weight, region, tau, band
        self.threshold = threshold
        self.far_side_min_yaw = far_side_min_yaw
        self.refresh_every = max(1, refresh_every)
        self.masks: torch.Tensor | None = None  # (N, S, S) bool person masks of the crops
        self.sdf: torch.Tensor | None = None
        self.subset = self.weights = None

    @torch.no_grad()
    def refresh(self, state: FitState, step: int) -> None:
        from ..detect.segment import person_masks

        S, model = state.views.size, state.model
        if self.sdf is None:
            self.masks = person_masks(state.views.images, self.threshold)
            self.sdf = torch.stack([signed_distance(m) for m in self.masks])
        screen = state.rig.cameras(detach=True).project(state.posed_vertices(), (S, S))
        region = self.region.to(screen.device)
        chosen = outline_vertices(screen, model.faces, region, S, self.band)
        if self.far_side_min_yaw is not None:
            chosen &= far_side(screen, region, state.views.detections, self.far_side_min_yaw)
        used = chosen.any(0).nonzero()[:, 0]
        self.subset = model.vertex_subset(used)
        self.weights = chosen[:, used].to(screen.dtype)

    def __call__(self, state: FitState, step: int) -> torch.Tensor:
        S = state.views.size
        if self.weights.numel() == 0:  # no outline in the face region (a head seen from behind)
            return state.shape.new_zeros(())
        pts = state.rig.cameras().project(state.posed_subset(self.subset), (S, S))[..., :2]
        return self.weight * silhouette_loss(pts, self.sdf, self.weights, self.tau * S)
