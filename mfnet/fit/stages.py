"""The fit as a list of stages: parameter groups + weighted terms + steps, run by one solver.

:func:`build_stages` turns a :class:`~mfnet.fit.config.FitConfig` into the coarse-to-fine
sequence ``pose`` → ``shape`` → ``flow`` → ``light`` → ``photo`` (a single view: ``pose`` → ``shape``, with
the silhouette term of :mod:`mfnet.fit.silhouette`, which several views have in the ``photo`` stage only);
:func:`run_stage` runs one
with Adam (cosine-decayed learning rates), keeping the expression within the model's bounds and
the jaw within its anatomical range after every step.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Callable

import torch

from ..render.shading import SH_CONSTANTS
from .config import FitConfig
from .silhouette import SilhouetteTerm
from .terms import DenseTerm, FitState, FlowTerm, LandmarkTerms, LossTerm, PhotometricTerm, PriorTerm

GROUPS = ("camera", "shape", "expression", "jaw", "light", "distance")


@dataclass
class Stage:
    """``groups``: what moves (of :data:`GROUPS`); ``terms``: (term, factor) pairs summed in order;
    ``lr_scale``: on every learning rate but the lights'; ``on_end(history)`` runs after the stage."""

    name: str
    iters: int
    groups: tuple[str, ...]
    terms: list[tuple[LossTerm, float]]
    lr_scale: float = 1.0
    on_end: Callable[[list[float]], None] | None = field(default=None, repr=False)

    def losses(self, state: FitState, step: int) -> dict[str, torch.Tensor]:
        """The weighted terms at ``step`` (refreshing those that are due first)."""
        out: dict[str, torch.Tensor] = {}
        state.begin_step()
        for term, factor in self.terms:
            if term.refresh_every is not None and step % term.refresh_every == 0:
                term.refresh(state, step)
            parts = term.parts(state, step)
            out.update({k: v * factor if factor != 1.0 else v for k, v in parts.items()})
        return out


def build_stages(cfg: FitConfig, state: FitState, face_region, photo_region, flow_fn) -> list[Stage]:
    """The stages of ``cfg`` for ``state``'s views (flow and photometric stages need two views or more;
    a stage whose own term has weight 0 is left out)."""
    w, n = cfg.weights, len(state.views)
    camera, head = ("camera",), ("camera", "shape", "expression", "jaw")
    # the camera distance moves only with the dense multi-view terms: estimated from the detector's
    # landmarks it is biased, and the shape follows it (measured: docs/benchmarks.md)
    dense = ("distance",) if cfg.distance.estimate else ()
    lmk: list[tuple[LossTerm, float]] = []
    if w.landmarks > 0 or w.eye > 0 or w.lip > 0:
        lmk.append((LandmarkTerms(w.landmarks, w.eye, w.lip), 1.0))
    if w.dense > 0 and lmk and DenseTerm.available(state.model, state.views):
        lmk.append((DenseTerm(state.model, w.dense), 1.0))
    w_shape = w.reg_shape if n > 1 else w.reg_shape_single_view
    prior = [(PriorTerm(w_shape, w.reg_expression), 1.0)] if (w_shape > 0 or w.reg_expression > 0) else []
    if state.heads is not None:
        weighted = w.reg_shape > 0 or w.reg_shape_single_view > 0 or w.reg_expression > 0
        prior = [(PriorTerm(*head_prior_weights(state.heads, w)), 1.0)] if weighted else []
    sil: list[tuple[LossTerm, float]] = []
    photometric = n > 1 and w.photo > 0 and cfg.iters.photo > 0
    if ((n == 1 or (cfg.silhouette.multi_view and photometric)) and w.silhouette > 0 and state.heads is None
            and silhouette_region(cfg, state.model) is not None and segmentation_available()):
        sil = [(silhouette_term(cfg, state), 1.0)]
    # several views: the outline (its far side) only in the photometric stage; in the landmark and flow stages it
    # made the result jump with invisible changes of the photos (docs/benchmarks.md)
    early_sil = sil if n == 1 else []
    stages = [Stage("pose", cfg.iters.pose, camera, lmk),
              Stage("shape", cfg.iters.shape, head, lmk + prior + early_sil)]
    if state.heads is not None:
        return stages  # the dense multi-view terms assume one head
    if n > 1 and w.multiop > 0 and cfg.iters.flow > 0:
        flow = FlowTerm(w.multiop, cfg.flow, face_region, flow_fn, cfg.seed)
        stages.append(Stage("flow", cfg.iters.flow, head + dense, lmk + prior + early_sil + [(flow, 1.0)]))
    if photometric:
        photo = PhotometricTerm(w.photo, cfg.photo, photo_region, cfg.iters.photo, cfg.seed)
        photo_prior = (PriorTerm(cfg.photo.w_reg, cfg.photo.w_reg_expression)
                       if cfg.photo.w_reg > 0 or cfg.photo.w_reg_expression > 0 else None)

        def set_noise_scale(history: list[float]) -> None:
            if photo_prior is not None:
                photo_prior.scale = noise_scale(history[-1] / max(w.photo, 1e-12), cfg.photo.noise_ref)

        stages += [Stage("light", min(60, max(1, cfg.iters.photo // 4)), ("light",), [(photo.for_lights(), 1.0)],
                         on_end=set_noise_scale),  # lights settle fast
                   Stage("photo", cfg.iters.photo, head + ("light",) + dense,
                         [(t, cfg.photo.w_landmarks) for t, _ in lmk] + ([(photo_prior, 1.0)] if photo_prior else [])
                         + [(t, cfg.silhouette.photo_factor) for t, _ in sil] + [(photo, 1.0)],
                         lr_scale=cfg.photo.lr_scale)]
    return stages


def segmentation_available() -> bool:
    """Person masks can be made; else the silhouette term is left out, with a warning."""
    from ..detect.segment import available

    if available():
        return True
    warnings.warn("the silhouette term is off: person masks need mediapipe "
                  "(scripts/setup.sh installs it); --set weights.silhouette=0 silences this", stacklevel=2)
    return False


def silhouette_region(cfg: FitConfig, model) -> str | None:
    """The vertex mask the silhouette term uses: ``silhouette.region``, else the model's ``face``
    (FLAME's masks have no narrow face), else None (no term)."""
    return next((r for r in (cfg.silhouette.region, "face") if r in model.masks), None)


def silhouette_term(cfg: FitConfig, state: FitState) -> SilhouetteTerm:
    """The single-view silhouette term on :func:`silhouette_region` (:mod:`mfnet.fit.silhouette`)."""
    o = cfg.silhouette
    region = torch.zeros(state.model.num_vertices, dtype=torch.bool, device=state.model.faces.device)
    region[state.model.masks[silhouette_region(cfg, state.model)].to(region.device)] = True
    far = o.far_side_min_yaw if len(state.views) > 1 and o.far_side_min_yaw >= 0 else None
    return SilhouetteTerm(cfg.weights.silhouette, region, o.tau, o.band, o.refresh_every, o.threshold, far)


def head_prior_weights(heads: torch.Tensor, w) -> tuple[torch.Tensor, torch.Tensor]:
    """(H,) identity and expression prior weights for views showing ``heads`` (N,) of H heads, such
    that each head moves as in a fit of its own views alone: the landmark terms average over all N
    views, so a head seen in n_h of them gets n_h / N of its own fit's gradient, and its prior (the
    multi- or single-view weight by n_h) is scaled by n_h / N too; Adam's steps do not depend on a
    common factor of a parameter's gradient."""
    count = torch.bincount(heads).double()
    share = count / len(heads)
    w_shape = share * torch.where(count > 1, w.reg_shape, w.reg_shape_single_view)
    return w_shape.float(), (share * w.reg_expression).float()


def noise_scale(residual: float, ref: float) -> float:
    """Factor on the photometric stage's identity prior for photos whose photometric residual after the
    light stage is ``residual``: ``clip((residual / ref) ** 2, 1, 10)`` (1 when ``ref`` is 0). The
    prior's weight against a Gaussian likelihood grows with the noise variance: noisier photos (real
    skin, highlights, hair, compression) pull the identity less far from the mean than clean renders."""
    if ref <= 0 or not math.isfinite(residual) or residual <= 0:
        return 1.0
    return float(min(10.0, max(1.0, (residual / ref) ** 2)))


def initial_lights(n: int, device, dtype) -> torch.Tensor:
    """(n, 9, 3) SH lights to start from: mostly ambient, some light from the camera side."""
    sh = torch.zeros(n, 9, 3, device=device, dtype=dtype)
    sh[:, 0] = 0.7 / SH_CONSTANTS[0]
    sh[:, 2] = 0.3 / SH_CONSTANTS[2]
    return sh


def param_groups(stage: Stage, state: FitState, cfg: FitConfig) -> list[dict]:
    """Adam parameter groups of ``stage`` (a fixed identity is left out)."""
    lr, groups = cfg.lr, []
    if "camera" in stage.groups:
        groups += state.rig.param_groups(lr)
    if "distance" in stage.groups:
        groups += state.rig.distance_groups(lr)
    own = {"shape": (state.shape, lr.shape), "expression": (state.expression, lr.expression),
           "jaw": (state.jaw, lr.rotation)}
    groups += [{"params": [own[g][0]], "lr": own[g][1]} for g in ("shape", "expression", "jaw")
               if g in stage.groups and own[g][0].requires_grad]
    for g in groups:
        g["lr"] = g["lr"] * stage.lr_scale
    if "light" in stage.groups:
        groups.append({"params": [state.light], "lr": lr.light})
    return groups


def run_stage(stage: Stage, state: FitState, cfg: FitConfig, on_step: Callable[[float], None] | None = None,
              ) -> list[float]:
    """Run ``stage`` on ``state`` (in place); returns the total loss after each step."""
    opt = torch.optim.Adam(param_groups(stage, state, cfg), fused=True)  # fused update: less per-step overhead
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=stage.iters, eta_min=0.0)
    history: list[float] = []
    for step in range(stage.iters):
        loss = sum(stage.losses(state, step).values())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        project(state, cfg)
        history.append(loss.item())
        if on_step is not None:
            on_step(history[-1])
    if stage.on_end is not None:
        stage.on_end(history)
    return history


@torch.no_grad()
def project(state: FitState, cfg: FitConfig) -> None:
    """Keep the expression within the model's bounds, the jaw within its anatomical range and the
    cameras in front of the head."""
    bounds = state.model.expression_bounds
    if bounds is not None:
        state.expression.clamp_(*bounds)
    side = math.radians(cfg.jaw.side_deg)
    state.jaw[..., 0].clamp_(math.radians(cfg.jaw.min_deg), math.radians(cfg.jaw.max_deg))
    state.jaw[..., 1:].clamp_(-side, side)
    state.rig.constrain()
