"""Multi-view fitting (MFNet §3.5, eqs. 6–11) by optimisation, coarse to fine.

Shared across views: shape β, expression ψ, jaw pose; the cameras are a rig
(:mod:`mfnet.fit.rig`: weak perspective per view, or a calibrated rig with one head pose). The
fit is a list of stages (:mod:`mfnet.fit.stages`): ``pose`` (cameras from landmarks), ``shape``
(+ β, ψ, jaw with landmark, eye, lip and regularisation terms), ``flow`` (+ the multi-view
optical-flow term) and ``light`` + ``photo`` (per-view SH lights, then multi-view photometric
consistency; not in the ``fast`` preset). Each term is an object of :mod:`mfnet.fit.terms`.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from ..headmodel.model import HeadModel
from ..render.cameras import PerspectiveCameras
from ..types import HeadParams, ViewParams, Views
from ..utils.determinism import deterministic
from .config import FitConfig
from .rig import CalibratedRig, WeakPerspectiveRig
from .stages import build_stages, initial_lights, run_stage
from .terms import FitState

log = logging.getLogger(__name__)


@dataclass
class FitResult:
    """What the fit found. ``posed_vertices`` (N, V, 3): the head as each view sees it, in the frame
    ``views.cameras()`` projects; ``landmarks2d`` (N, 68, 2): its landmarks projected by the fit's own
    cameras (the rig's perspective cameras when calibrated), crop pixels; ``rig``: the camera rig."""

    head: HeadParams
    views: ViewParams
    posed_vertices: torch.Tensor
    landmarks2d: torch.Tensor
    rig: WeakPerspectiveRig | CalibratedRig
    crop_size: int  # the crops' side, pixels
    history: dict[str, list[float]] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    flow_magnitude: list[float] = field(default_factory=list)  # mean |F| (px) at each flow update
    person_masks: torch.Tensor | None = None  # (N, S, S) bool: the silhouette term's person masks of the crops

    def project(self, points: torch.Tensor) -> torch.Tensor:
        """(N, P, 3) points in the frame of ``posed_vertices`` -> (N, P, 2) crop pixels of each view."""
        S = int(self.crop_size)
        return self.views.cameras().project(points, (S, S))[..., :2]


def face_regions(model: HeadModel) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """(F,) bool faces of the model's 'face' mask, and the same without the lips (what the
    photometric term samples: lips have no texture and border the mouth opening); None without masks."""
    face = model.masks.get("face")
    if face is None:
        return None, None
    dev = model.faces.device
    inface = torch.zeros(model.num_vertices, dtype=torch.bool, device=dev)
    inface[face.to(dev)] = True
    region = inface[model.faces].all(1)
    if "lips" not in model.masks:
        return region, region
    lips = torch.zeros(model.num_vertices, dtype=torch.bool, device=dev)
    lips[model.masks["lips"].to(dev)] = True
    return region, region & ~lips[model.faces].any(1)


class MultiViewFitter:
    """Fit a :class:`HeadModel` to :class:`Views`. ``fixed_shape`` keeps a known identity;
    ``cameras`` (crop-pixel :class:`PerspectiveCameras`) fixes a calibrated rig. ``heads`` (N,)
    fits several heads at once, view i showing head ``heads[i]`` of 0..H-1, each as its views would
    fit alone (landmark stages only, weak perspective; :func:`mfnet.fit.stages.head_prior_weights`):
    one batched fit in place of H small ones (:mod:`mfnet.fit.identity`)."""

    def __init__(self, model: HeadModel, config: FitConfig | None = None, fixed_shape: torch.Tensor | None = None,
                 progress: bool = True, cameras: PerspectiveCameras | None = None, heads: list[int] | None = None):
        if heads is not None and (fixed_shape is not None or cameras is not None
                                  or sorted(set(heads)) != list(range(max(heads, default=-1) + 1))):
            raise ValueError("heads: view i shows head heads[i], every head 0..H-1 in some view; "
                             "free heads under weak perspective only (no fixed_shape or cameras)")
        self.model = model
        self.cfg = config or FitConfig()
        self.fixed_shape = fixed_shape
        self.progress = progress
        self.cameras = cameras
        self.heads = heads
        self.face_region, self.photo_region = face_regions(model)
        self._flow = None

    def fit(self, views: Views, init: tuple[HeadParams, ViewParams] | None = None) -> FitResult:
        """Fit; ``init`` (e.g. the network's prediction) replaces the landmark-based start (not with a
        calibrated rig, which fixes the cameras). On the CPU the result is bit-identical for the same
        input, settings and thread count (:func:`mfnet.utils.determinism.deterministic`)."""
        with deterministic(self.model.v_template.device):
            return self._fit(views.to(self.model.v_template.device), None if self.cameras is not None else init)

    def initial_state(self, views: Views, init: tuple[HeadParams, ViewParams] | None = None) -> FitState:
        """The starting parameters: the mean head (or ``init``/the fixed identity) and the rig."""
        model, dev, dt = self.model, self.model.v_template.device, self.model.v_template.dtype
        shape = (self.fixed_shape.to(dev, dt).clone() if self.fixed_shape is not None
                 else torch.zeros(model.n_shape, device=dev, dtype=dt))
        expr, jaw = torch.zeros(model.n_expr, device=dev, dtype=dt), torch.zeros(3, device=dev, dtype=dt)
        if init is not None:
            h0 = init[0]
            if self.fixed_shape is None:
                shape = h0.shape.to(dev, dt).clone()
            expr, jaw = h0.expression.to(dev, dt).clone(), h0.jaw.to(dev, dt).clone()
        heads = None
        if self.heads is not None:
            if len(self.heads) != len(views):
                raise ValueError(f"heads: {len(self.heads)} entries for {len(views)} views")
            heads = torch.as_tensor(self.heads, dtype=torch.long, device=dev)
            shape, expr, jaw = (t.expand(max(self.heads) + 1, -1).clone() for t in (shape, expr, jaw))
        head = HeadParams(shape, expr, jaw) if heads is None else HeadParams(shape[heads], expr[heads], jaw[heads])
        if self.cameras is not None:
            rig = CalibratedRig.initialise(model, views, head, self.cameras)
        else:
            rig = WeakPerspectiveRig.initialise(model, views, head, None if init is None else init[1],
                                                self.cfg.dynamic_contour, self.cfg.distance)
        return FitState(model, views, rig, shape.requires_grad_(self.fixed_shape is None), expr.requires_grad_(),
                        jaw.requires_grad_(), shape_fixed=self.fixed_shape is not None,
                        dynamic_contour=self.cfg.dynamic_contour, heads=heads)

    def stages(self, state: FitState):
        """The stages this fitter runs on ``state`` (:func:`mfnet.fit.stages.build_stages`)."""
        return build_stages(self.cfg, state, self.face_region, self.photo_region, self._flow_fn)

    def _fit(self, views: Views, init) -> FitResult:
        torch.manual_seed(self.cfg.seed)
        t0 = time.perf_counter()
        state = self.initial_state(views, init)
        timings, history = {"init": time.perf_counter() - t0}, {}
        stages = [s for s in self.stages(state) if s.iters > 0]
        if any("light" in s.groups for s in stages):
            m = self.model.v_template
            state.light = initial_lights(len(views), m.device, m.dtype).requires_grad_()
        bar = tqdm(total=sum(s.iters for s in stages), desc="fitting", disable=not self.progress, leave=False,
                   unit="step")
        for stage in stages:
            ts = time.perf_counter()

            def tick(loss: float, name=stage.name) -> None:
                bar.update(1)
                bar.set_postfix(stage=name, loss=f"{loss:.4f}", refresh=False)

            history[stage.name] = run_stage(stage, state, self.cfg, tick)
            timings[stage.name] = time.perf_counter() - ts
        bar.close()
        res = self._result(state, history, timings, _flow_mags(stages))
        res.person_masks = next((t.masks for s in stages for t, _ in s.terms if getattr(t, "masks", None) is not None),
                                None)
        return res

    @torch.no_grad()
    def _result(self, state: FitState, history, timings, mags) -> FitResult:
        model, S, n = self.model, state.views.size, len(state.views)
        head = HeadParams(state.shape.detach(), state.expression.detach(), state.jaw.detach())
        seen = head if state.heads is None else state.head.detach()  # per view with several heads
        vp = state.rig.view_params(model, seen, S, self.cfg.dynamic_contour)
        if state.light is not None:
            vp.light = state.light.detach()
        shape, expression = seen.codes()
        posed = model(shape.expand(n, -1), expression.expand(n, -1), seen.pose(vp.rotation))
        lmk2d = state.rig.fitted_landmarks(model, seen, posed.landmarks, S)
        return FitResult(head, vp, posed.vertices, lmk2d, state.rig, S, history, timings, mags)

    def _flow_fn(self):
        if self._flow is None:
            from ..flow.raft import make_flow_fn

            self._flow = make_flow_fn(self.cfg.flow.method, self.cfg.flow.preset, self.model.v_template.device)
        return self._flow


def _flow_mags(stages) -> list[float]:
    """Mean flow magnitudes (px) at each flow update, over the stages' flow terms."""
    seen, out = set(), []
    for s in stages:
        for t, _ in s.terms:
            if id(t) not in seen and hasattr(t, "magnitudes"):
                seen.add(id(t))
                out += t.magnitudes
    return out
