"""The fit's loss terms, one object each, and the state they read.

A term is called with the :class:`FitState` (current parameters) and the stage's step and returns
its weighted scalar; a term whose data depend on the current geometry (flow correspondences,
photometric samples) rebuilds them in :meth:`LossTerm.refresh`, which the stage calls every
``refresh_every`` steps. Each term wraps one equation of :mod:`mfnet.losses`.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from ..headmodel.model import HeadModel
from ..losses.flow import build_flow_correspondences, multiview_flow_loss
from ..losses.landmarks import eye_loss, lip_loss, regularisation, single_view_landmark_loss
from ..losses.photometric import (PhotoPlan, SurfaceSamples, covisible_samples, log_images,
                                  photometric_consistency_loss)
from ..render.shading import VertexNormals
from ..types import HeadParams, Views
from .config import FlowOptions, PhotometricOptions


@dataclass
class FitState:
    """What the terms read: the model, the views, the camera rig and the head's parameters (shape
    (S,), expression (E,), jaw (3,) axis-angle, or (H, ...) for several heads, ``heads`` mapping
    views to them; ``light`` (N, 9, 3) SH once the light stage starts)."""

    model: HeadModel
    views: Views
    rig: object  # mfnet.fit.rig.WeakPerspectiveRig | CalibratedRig
    shape: torch.Tensor
    expression: torch.Tensor
    jaw: torch.Tensor
    light: torch.Tensor | None = None
    shape_fixed: bool = False  # a known identity (--identity): not optimised, no prior on it
    dynamic_contour: bool = True
    heads: torch.Tensor | None = None  # (N,) long: the head each view shows, of H; None: one shared head

    def __post_init__(self) -> None:
        self.begin_step()

    def begin_step(self) -> None:
        """Take the rig's per-view rotations and translation once for the coming step (every term of
        the step uses the same tensors, so their gradients meet in one node)."""
        self.rotations, self.translations = self.rig.rotations(), self.rig.translations()

    @property
    def head(self) -> HeadParams:
        """The head as the views see it: shared, or (N, ...) per view when there are several heads."""
        if self.heads is None:
            return HeadParams(self.shape, self.expression, self.jaw)
        return HeadParams(self.shape[self.heads], self.expression[self.heads], self.jaw[self.heads])

    def pose(self) -> torch.Tensor:
        """(N, 15) full pose per view."""
        return self.head.pose(self.rotations)

    def landmarks2d(self) -> torch.Tensor:
        """(N, 68, 2) the model's landmarks projected into each crop (renderer pixels)."""
        S = self.views.size
        out = self.model(*self.head.codes(), self.pose(), translation=self.translations,
                         dynamic_contour=self.dynamic_contour, landmarks_only=True)
        return self.rig.cameras().project(out.landmarks, (S, S))[..., :2]

    def posed_subset(self, subset) -> torch.Tensor:
        """(N, K, 3) the vertices of a :class:`~mfnet.headmodel.model.VertexSubset`, posed and placed."""
        verts = subset(*self.head.codes(), self.pose())
        return verts if self.translations is None else verts + self.translations[:, None]

    @torch.no_grad()
    def posed_vertices(self) -> torch.Tensor:
        """(N, V, 3) the whole head, posed and placed (no gradient)."""
        return self.model(*self.head.codes(), self.pose(), translation=self.translations).vertices


class LossTerm:
    """One weighted term. ``refresh_every``: steps between :meth:`refresh` calls (None: never)."""

    name = "term"
    refresh_every: int | None = None

    def refresh(self, state: FitState, step: int) -> None:
        """Rebuild what depends on the current geometry."""

    def __call__(self, state: FitState, step: int) -> torch.Tensor:
        raise NotImplementedError

    def parts(self, state: FitState, step: int) -> dict[str, torch.Tensor]:
        """The weighted value(s) by name (a term made of several equations returns each)."""
        return {self.name: self(state, step)}


class LandmarkTerms(LossTerm):
    """MFNet eqs. 7–9: landmark reprojection, eye and lip closure, from one projection of the 68 points.
    Returns the weighted sum; :meth:`parts` gives each."""

    name = "landmarks"

    def __init__(self, w_landmarks: float, w_eye: float, w_lip: float):
        self.weights = {"singlelmk": w_landmarks, "eye": w_eye, "lip": w_lip}
        self.losses = {"singlelmk": single_view_landmark_loss, "eye": eye_loss, "lip": lip_loss}

    def __call__(self, state: FitState, step: int) -> torch.Tensor:
        return sum(self.parts(state, step).values())

    def parts(self, state: FitState, step: int) -> dict[str, torch.Tensor]:
        views, S = state.views, state.views.size
        lmk2d = state.landmarks2d()
        norm = torch.full((len(views),), S / 2.0, dtype=lmk2d.dtype, device=lmk2d.device)
        return {k: w * self.losses[k](lmk2d, views.landmarks, views.landmark_weights, norm)
                for k, w in self.weights.items() if w > 0}


class DenseTerm(LossTerm):
    """MediaPipe's 478 mesh points against the model's calibrated 478-point embedding."""

    name = "dense"

    def __init__(self, model: HeadModel, weight: float):
        faces_d, self.bary = model.extra_embedding("mediapipe478")
        used, self.local = torch.unique(model.faces[faces_d], return_inverse=True)
        self.subset = model.vertex_subset(used)
        self.weight = weight

    @staticmethod
    def available(model: HeadModel, views: Views) -> bool:
        return views.dense_landmarks is not None and model.extra_embedding("mediapipe478") is not None

    def __call__(self, state: FitState, step: int) -> torch.Tensor:
        views, S = state.views, state.views.size
        vd = state.posed_subset(self.subset)
        pts = (vd[:, self.local] * self.bary[None, :, :, None]).sum(2)
        pred = state.rig.cameras().project(pts, (S, S))[..., :2]
        norm = torch.full((len(views),), S / 2.0, dtype=pred.dtype, device=pred.device)
        return self.weight * single_view_landmark_loss(pred, views.dense_landmarks, views.dense_weights, norm)


class PriorTerm(LossTerm):
    """MFNet eq. 10: squared norms of the identity and expression codes. ``scale`` multiplies the
    identity weight (the photometric stage's noise scaling). With several heads the weights may be
    (H,) tensors, one per head."""

    name = "reg"

    def __init__(self, w_shape: float | torch.Tensor, w_expression: float | torch.Tensor):
        self.w_shape, self.w_expression, self.scale = w_shape, w_expression, 1.0

    def __call__(self, state: FitState, step: int) -> torch.Tensor:
        shape = state.shape * 0 if state.shape_fixed else state.shape
        if state.heads is None:
            return regularisation(shape, state.expression, self.w_shape * self.scale, self.w_expression)
        return ((self.w_shape * self.scale * (shape ** 2).sum(-1)).sum()
                + (self.w_expression * (state.expression ** 2).sum(-1)).sum())


class FlowTerm(LossTerm):
    """MFNet eq. 6: multi-view optical-flow consistency over co-visible face points; the flow
    correspondences are rebuilt every ``options.every`` steps (their mean |F| goes to ``magnitudes``)."""

    name = "multiop"

    def __init__(self, weight: float, options: FlowOptions, face_region, flow_fn, seed: int):
        self.weight, self.options, self.face_region = weight, options, face_region
        self.flow_fn, self.seed = flow_fn, seed
        self.refresh_every = max(1, options.every)
        self.magnitudes: list[float] = []

    @torch.no_grad()
    def refresh(self, state: FitState, step: int) -> None:
        model, views = state.model, state.views
        corr = build_flow_correspondences(
            state.posed_vertices(), model.faces, state.rig.cameras(detach=True), views.images, views.landmarks,
            views.landmark_weights, self.face_region, mode=self.options.covisibility, flow_fn=self.flow_fn(),
            seed=self.seed + step)
        self.magnitudes.append(corr.flow_magnitude)
        used, self.local = torch.unique(model.faces[corr.face_idx], return_inverse=True)  # pose only these
        self.corr = replace(corr, face_idx=torch.arange(len(corr), device=used.device))
        self.subset = model.vertex_subset(used)

    def __call__(self, state: FitState, step: int) -> torch.Tensor:
        verts = state.posed_subset(self.subset)
        return self.weight * multiview_flow_loss(verts, self.local, state.rig.cameras(), state.views.size, self.corr)


@dataclass
class PhotoSamples:
    """What the photometric term keeps between refreshes (shared by its light-stage variant): the
    blurred log photos and their blur, the point samples, the posing subset and its normals, and, in
    the light stage, the held geometry. ``refreshes`` numbers the draws (their seeds)."""

    refreshes: int = 0
    sigma: float | None = None
    logs: torch.Tensor | None = None
    samples: SurfaceSamples | None = None
    subset: object = None  # mfnet.headmodel.model.VertexSubset of the sampled faces and their neighbours
    tri: torch.Tensor | None = None  # (K, 3) sampled faces, subset indices
    normals: VertexNormals | None = None
    plan: PhotoPlan | None = None
    geometry: tuple[torch.Tensor, torch.Tensor] | None = None  # (verts, normals) held by the light stage


class PhotometricTerm(LossTerm):
    """Multi-view photometric consistency (:func:`~mfnet.losses.photometric.photometric_consistency_loss`)
    over surface points seen by pairs of views, sampled anew (and the photos' blur lowered, coarse
    to fine) every ``options.refresh_every`` steps. ``lights_only``: the geometry is held (the light
    stage); :meth:`for_lights` makes that variant sharing the samples and their seed sequence."""

    name = "photo"

    def __init__(self, weight: float, options: PhotometricOptions, region, iters: int, seed: int,
                 lights_only: bool = False, shared: PhotoSamples | None = None):
        self.weight, self.options, self.region, self.iters, self.seed = weight, options, region, iters, seed
        self.lights_only = lights_only
        self.refresh_every = max(1, options.refresh_every)
        self.cache = PhotoSamples() if shared is None else shared

    def for_lights(self) -> "PhotometricTerm":
        return PhotometricTerm(self.weight, self.options, self.region, self.iters, self.seed, True, self.cache)

    def sigma(self, step: int) -> float:
        """Blur (pixels) at ``step``: from ``blur_start`` down to ``blur`` (reached at 3/4 of the stage)."""
        o = self.options
        if not o.blur_start or o.blur_start <= o.blur:
            return o.blur
        t = min(1.0, step / max(1.0, 0.75 * self.iters))
        return float(o.blur_start * (o.blur / o.blur_start) ** t)

    @torch.no_grad()
    def refresh(self, state: FitState, step: int) -> None:
        c, model = self.cache, state.model
        sigma = self.sigma(0 if self.lights_only else step)
        if c.sigma != sigma:
            c.sigma, c.logs = sigma, log_images(state.views.images, sigma)
        full = state.posed_vertices()
        c.refreshes += 1
        gen = torch.Generator().manual_seed(self.seed + c.refreshes)
        samples = covisible_samples(full, model.faces, state.rig.cameras(detach=True), state.views.size,
                                    self.region, max_points_per_pair=self.options.points, generator=gen)
        # pose the sampled faces and every face around their vertices (for the normals)
        touched = torch.zeros(model.num_vertices, dtype=torch.bool, device=full.device)
        touched[model.faces[samples.face_idx].reshape(-1)] = True
        used, ring_faces = torch.unique(model.faces[touched[model.faces].any(1)], return_inverse=True)
        tri = torch.searchsorted(used, model.faces[samples.face_idx])  # sampled faces, subset indices
        local = SurfaceSamples(samples.view_a, samples.view_b, torch.arange(len(samples), device=tri.device),
                               samples.bary)
        c.samples, c.subset, c.tri = local, model.vertex_subset(used), tri
        c.normals = VertexNormals(ring_faces, len(used), full.dtype)
        c.plan = PhotoPlan.build(local, tri, len(state.views), len(used), full.dtype)
        c.geometry = None

    def __call__(self, state: FitState, step: int) -> torch.Tensor:
        c = self.cache
        if self.lights_only and c.geometry is not None:  # geometry held: posed once per refresh
            verts, normals = c.geometry
        else:
            with torch.set_grad_enabled(torch.is_grad_enabled() and not self.lights_only):
                verts = state.posed_subset(c.subset)
                normals = c.normals(verts)
            if self.lights_only:
                c.geometry = (verts, normals)
        o = self.options
        return self.weight * photometric_consistency_loss(
            verts, normals, c.tri, state.rig.cameras(), state.views.size, c.logs, state.light, c.samples,
            min_cos=o.min_cos, plan=c.plan, normalise=o.normalise, eps_normalised=o.eps_normalised)
