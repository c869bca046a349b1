"""Multi-view fitting (MFNet §3.5, eqs. 6–11) by optimisation, coarse to fine.

Shared across views: shape β, expression ψ, jaw pose. Per view: head rotation and
weak-perspective camera. Stages: ``pose`` (cameras from landmarks), ``shape`` (+ β, ψ, jaw with
landmark, eye, lip and regularisation losses), ``flow`` (+ the multi-view optical-flow loss),
and optionally ``light`` + ``photo`` (per-view SH lights, then the multi-view photometric
consistency term of :mod:`mfnet.losses.photometric`; not in the ``fast`` preset).
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field, replace

import torch
from tqdm.auto import tqdm

from ..headmodel.model import HeadModel
from ..losses.flow import build_flow_correspondences, multiview_flow_loss
from ..losses.landmarks import eye_loss, lip_loss, regularisation, single_view_landmark_loss
from ..losses.photometric import (PhotoPlan, SurfaceSamples, covisible_samples, log_images,
                                  photometric_consistency_loss)
from ..render.shading import SH_CONSTANTS, VertexNormals
from ..render.cameras import WeakPerspectiveCameras
from ..types import HeadParams, ViewParams, Views
from ..utils.determinism import deterministic
from .init import init_rotations, weak_perspective_lsq

log = logging.getLogger(__name__)


@dataclass
class FitConfig:
    """Optimisation settings. Loss weights default to the paper's eq. 11 (λ = 1, 1, 1, 0.5) for the flow,
    landmark, eye and lip terms; the regulariser defaults to 1e-2 instead of the paper's 1e-4 (measured)."""

    crop_size: int = 256
    iters_pose: int = 60
    iters_shape: int = 150
    iters_flow: int = 40
    flow_every: int = 15  # recompute flow correspondences every k steps
    lr_rotation: float = 0.01  # Adam learning rates per parameter group (cosine-decayed per stage)
    lr_scale: float = 0.01
    lr_trans: float = 0.002
    lr_shape: float = 0.05
    lr_expression: float = 0.02
    w_multiop: float = 1.0
    w_lmk: float = 1.0
    w_eye: float = 1.0
    w_lip: float = 0.5
    # MediaPipe 478-point mesh term (beyond the paper; needs `mfnet models calibrate --dense`). Off by
    # default: measured no gain over the 68 points (docs/benchmarks.md).
    w_dense: float = 0.0
    # The paper's λ5 is 1e-4; measured on synthetic ground truth with detected landmarks
    # (benchmarks/bench_reconstruct.py --w-reg), 1e-2 is better on every view set here (our landmark
    # loss is a normalised mean, the detector's landmarks are noisy): see docs/benchmarks.md.
    w_reg: float = 1e-2
    w_reg_expression: float = 1e-2
    # The identity prior of a single-view fit (landmarks only). Measured: real scans, 7 single views
    # (Lee Perry-Smith renders at 0/30/60/75° and pitched, one real James photo), NoW median 1.11 -> 1.06 mm
    # on average at 3e-3 vs 1e-2, 1e-3 worse; synthetic 1 view 2.36 / 2.86 -> 2.29 / 2.88 mm (docs/benchmarks.md).
    w_reg_single_view: float = 3e-3
    covisibility: str = "zbuffer"  # or 'landmarks' (the paper's MB ⊙ MF)
    flow_preset: str = "medium"
    flow: str = "dis"  # or 'raft:PATH' (torchvision RAFT with user-supplied weights)
    dynamic_contour: bool = True
    texture_size: int = 512
    seed: int = 0
    disabled_losses: tuple[str, ...] = ()  # any of multiop, singlelmk, eye, lip, reg, photo (ablations)
    # Photometric stage (beyond the paper; multi-view only): per-view SH lights fitted first (a
    # quarter of the steps, at most 60), then shape/expression/pose with the multi-view photometric
    # consistency term. Measured on the synthetic benchmark: docs/benchmarks.md. 0 switches it off.
    iters_photo: int = 200
    w_photo: float = 1.0
    # The detector's landmarks are biased (several pixels at ±60°) and a strong prior shrinks the shape
    # towards the mean: at the true parameters both cost more than the photometric term gains. So the
    # stage weakens them (measured: docs/benchmarks.md) and lets the photos place the surface.
    photo_w_landmarks: float = 0.1  # landmark, eye and lip terms during the stage, relative to w_lmk etc.
    photo_w_reg: float = 1e-4  # regulariser during the stage (the landmark stages use w_reg)
    photo_w_reg_expression: float = 1e-4  # the same for the expression
    photo_blur: float = 0.5  # Gaussian blur of the photos at the end of the stage, pixels
    photo_blur_start: float = 3.0  # coarse to fine: blur at its start (geometric decay over 3/4 of it)
    photo_min_cos: float = 0.4  # down-weight points seen at a grazing angle (|cos| below this + 0.2)
    lr_light: float = 0.02
    photo_lr_scale: float = 1.0  # learning rates of the photometric stage, relative to the others
    photo_points: int = 1000  # surface points sampled per ordered view pair
    photo_refresh_every: int = 20  # new samples (and the next blur level) every k steps of the light/photo stages
    # Standardise each view pair's log albedos before comparing them (removes the term's "shrink into
    # flat skin" direction: mfnet.losses.photometric.photometric_consistency_loss).
    photo_normalise: bool = False
    # Residual level (light stage, mean log-albedo difference) up to which the photometric stage keeps its
    # identity prior photo_w_reg; above it the prior grows as (residual / ref)^2, at most 10x
    # (MultiViewFitter._noise_scale). 0: off.
    photo_noise_ref: float = 0.04
    # Anatomical range of the jaw (degrees): opening (pitch) from jaw_min_deg to jaw_max_deg, sideways
    # (yaw, roll) within ±jaw_side_deg. A jaw rotated past the closed rest pushes the lower lip into the
    # upper one; landmark fits did that on real single photos (-4°), costing 0.4 mm on James.
    jaw_min_deg: float = -1.0
    jaw_max_deg: float = 35.0
    jaw_side_deg: float = 6.0
    photo_eps_normalised: float = 0.1


PRESETS: dict[str, FitConfig] = {
    "fast": FitConfig(crop_size=192, iters_pose=40, iters_shape=80, iters_flow=0, iters_photo=0, texture_size=256),
    "default": FitConfig(),
    "best": FitConfig(crop_size=384, iters_pose=80, iters_shape=250, iters_flow=150, flow_every=10,
                      iters_photo=900, photo_points=1500, photo_refresh_every=10, texture_size=1024),
}


def get_config(preset: str = "default", **overrides) -> FitConfig:
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}: choose from {', '.join(PRESETS)}")
    return replace(PRESETS[preset], **overrides)


@dataclass
class FitResult:
    head: HeadParams
    views: ViewParams
    history: dict[str, list[float]] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    flow_magnitude: list[float] = field(default_factory=list)  # mean |F| (px) at each flow update
    camera_params: dict[str, torch.Tensor] = field(default_factory=dict)  # final raw camera-model parameters


class MultiViewFitter:
    """Fit a :class:`HeadModel` to :class:`Views`. ``fixed_shape`` keeps a known identity."""

    def __init__(self, model: HeadModel, config: FitConfig | None = None, fixed_shape: torch.Tensor | None = None,
                 progress: bool = True):
        self.model = model
        self.cfg = config or FitConfig()
        self.fixed_shape = fixed_shape
        self.progress = progress
        self.bounds = model.expression_bounds
        self._flow = None
        self._photo_scale = 1.0
        face = model.masks.get("face")
        if face is not None:
            inface = torch.zeros(model.num_vertices, dtype=torch.bool, device=model.faces.device)
            inface[face.to(inface.device)] = True
            self.face_region = inface[model.faces].all(1)
        else:
            self.face_region = None
        self.photo_region = self.face_region  # faces the photometric term samples: the face without the lips
        if self.face_region is not None and "lips" in model.masks:  # lips: no texture, next to the mouth opening
            lips = torch.zeros(model.num_vertices, dtype=torch.bool, device=model.faces.device)
            lips[model.masks["lips"].to(lips.device)] = True
            self.photo_region = self.face_region & ~lips[model.faces].any(1)

    # -------------------------------------------------------------- helpers
    def _forward(self, shape, expr, jaw, rot, landmarks_only: bool = False, translation=None):
        head = HeadParams(shape, expr, jaw)
        return self.model(shape[None], expr[None], head.pose(rot), translation=translation,
                          dynamic_contour=self.cfg.dynamic_contour, landmarks_only=landmarks_only)

    def _landmark_terms(self, lmk2d, views: Views, S: int) -> dict[str, torch.Tensor]:
        norm = torch.full((len(views),), S / 2.0, dtype=lmk2d.dtype, device=lmk2d.device)
        w = views.landmark_weights
        off = set(self.cfg.disabled_losses)
        terms = {}
        if "singlelmk" not in off:
            terms["singlelmk"] = self.cfg.w_lmk * single_view_landmark_loss(lmk2d, views.landmarks, w, norm)
        if "eye" not in off:
            terms["eye"] = self.cfg.w_eye * eye_loss(lmk2d, views.landmarks, w, norm)
        if "lip" not in off:
            terms["lip"] = self.cfg.w_lip * lip_loss(lmk2d, views.landmarks, w, norm)
        return terms

    # ----------------------------------------------------------------- fit
    def fit(self, views: Views, init: tuple[HeadParams, ViewParams] | None = None) -> FitResult:
        """Fit; ``init`` (e.g. the network's prediction) replaces the landmark-based start.

        On the CPU the result is bit-identical for the same input, settings and thread count
        (:func:`mfnet.utils.determinism.deterministic`)."""
        with deterministic(self.model.v_template.device):
            return self._fit(views, init)

    def _fit(self, views: Views, init: tuple[HeadParams, ViewParams] | None = None) -> FitResult:
        cfg, model = self.cfg, self.model
        dev, dt = model.v_template.device, model.v_template.dtype
        views = views.to(dev)
        S, N = views.size, len(views)
        torch.manual_seed(cfg.seed)
        self._photo_scale = 1.0
        timings, history, mags = {}, {}, []
        t0 = time.perf_counter()
        shape = (self.fixed_shape.to(dev, dt).clone() if self.fixed_shape is not None
                 else torch.zeros(model.n_shape, device=dev, dtype=dt))
        expr = torch.zeros(model.n_expr, device=dev, dtype=dt)
        jaw = torch.zeros(3, device=dev, dtype=dt)
        if init is not None:
            h0, _ = init
            if self.fixed_shape is None:
                shape = h0.shape.to(dev, dt).clone()
            expr, jaw = h0.expression.to(dev, dt).clone(), h0.jaw.to(dev, dt).clone()
        params = {"shape": shape.requires_grad_(self.fixed_shape is None), "expr": expr.requires_grad_(),
                  "jaw": jaw.requires_grad_()}
        with torch.no_grad():
            cam_params = self._init_camera_params(views, shape, expr, jaw, init)
        params.update({k: v.detach().clone().requires_grad_() for k, v in cam_params.items()})
        cam_keys = list(cam_params)
        timings["init"] = time.perf_counter() - t0

        dense = self._dense_setup(views)
        stages = [("pose", cfg.iters_pose, cam_keys),
                  ("shape", cfg.iters_shape, cam_keys + ["shape", "expr", "jaw"]),
                  ("flow", cfg.iters_flow if N > 1 and "multiop" not in cfg.disabled_losses else 0,
                   cam_keys + ["shape", "expr", "jaw"])]
        if cfg.iters_photo > 0 and N > 1 and "photo" not in cfg.disabled_losses:
            params["sh"] = self._initial_lights(N).requires_grad_()
            stages += [("light", min(60, max(1, cfg.iters_photo // 4)), ["sh"]),  # lights settle fast
                       ("photo", cfg.iters_photo, cam_keys + ["shape", "expr", "jaw", "sh"])]
            photo = {"images": views.images}
        else:
            photo = {}
        total = sum(n for _, n, _ in stages)
        bar = tqdm(total=total, desc="fitting", disable=not self.progress, leave=False, unit="step")
        for name, iters, keys in stages:
            if iters <= 0:
                continue
            ts = time.perf_counter()
            lrs = {"rot": cfg.lr_rotation, "log_s": cfg.lr_scale, "trans": cfg.lr_trans, "shape": cfg.lr_shape,
                   "expr": cfg.lr_expression, "jaw": cfg.lr_rotation, "transl": cfg.lr_trans, "sh": cfg.lr_light}
            if name == "photo":  # a narrow basin: small steps (the lights keep their own rate)
                lrs = {k: v * (1.0 if k == "sh" else cfg.photo_lr_scale) for k, v in lrs.items()}
            opt = torch.optim.Adam([{"params": [params[k]], "lr": lrs[k]} for k in keys if params[k].requires_grad],
                                   fused=True)  # fused update: less per-step overhead
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=iters, eta_min=0.0)
            flow_state = {}
            hist = history.setdefault(name, [])
            for it in range(iters):
                loss = sum(self._stage_terms(name, it, params, views, dense, photo, flow_state, mags).values())
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                self._project(params)
                hist.append(loss.item())
                bar.update(1)
                bar.set_postfix(stage=name, loss=f"{hist[-1]:.4f}", refresh=False)
            timings[name] = time.perf_counter() - ts
            if name == "light":
                self._photo_scale = self._noise_scale(hist[-1] / max(cfg.w_photo, 1e-12))
        bar.close()
        head = HeadParams(params["shape"].detach(), params["expr"].detach(), params["jaw"].detach())
        final = {k: v.detach() for k, v in params.items()}
        with torch.no_grad():
            vp = self._view_params(final, N)
            if "sh" in final:
                vp.light = final["sh"]
        cam = {k: final[k] for k in cam_keys}
        return FitResult(head, vp, history, timings, mags, camera_params=cam)

    def _stage_terms(self, name: str, it: int, params, views: Views, dense, photo: dict, flow_state: dict,
                     mags: list) -> dict[str, torch.Tensor]:
        """The weighted loss terms of stage ``name`` at step ``it`` (``flow_state``: the stage's flow
        correspondences, rebuilt every ``flow_every`` steps; flow magnitudes are appended to ``mags``)."""
        cfg, model = self.cfg, self.model
        S, N, dev = views.size, len(views), params["shape"].device
        rots, transl = self._view_rotations(params, N), self._translation(params, N)
        if name == "light":  # only the lights move: every other term is a constant here
            refresh = it % cfg.photo_refresh_every == 0
            return {"photo": cfg.w_photo * self._photo_term(params, views, rots, transl, photo, refresh=refresh,
                                                            lights_only=True)}
        cams = self._cameras(params)
        out = self._forward(params["shape"], params["expr"], params["jaw"], rots, landmarks_only=True,
                            translation=transl)
        lmk2d = cams.project(out.landmarks, (S, S))[..., :2]
        terms = self._landmark_terms(lmk2d, views, S)
        if dense is not None:
            subset_d, local_d, bary_d = dense
            vd = subset_d(params["shape"][None], params["expr"][None],
                          HeadParams(params["shape"], params["expr"], params["jaw"]).pose(rots))
            if transl is not None:
                vd = vd + transl[:, None]
            pts = (vd[:, local_d] * bary_d[None, :, :, None]).sum(2)
            pred = cams.project(pts, (S, S))[..., :2]
            norm = torch.full((N,), S / 2.0, dtype=pred.dtype, device=dev)
            terms["dense"] = cfg.w_dense * single_view_landmark_loss(pred, views.dense_landmarks,
                                                                     views.dense_weights, norm)
        if name == "photo":  # landmark terms only (added so far)
            terms = {k: v * cfg.photo_w_landmarks for k, v in terms.items()}
        if name != "pose" and "reg" not in cfg.disabled_losses:
            sh = params["shape"] if self.fixed_shape is None else params["shape"] * 0
            w_s, w_e = ((cfg.photo_w_reg * self._photo_scale, cfg.photo_w_reg_expression) if name == "photo"
                        else (cfg.w_reg if N > 1 else cfg.w_reg_single_view, cfg.w_reg_expression))
            terms["reg"] = regularisation(sh, params["expr"], w_s, w_e)
        if name == "photo":
            terms["photo"] = cfg.w_photo * self._photo_term(params, views, rots, transl, photo,
                                                            refresh=it % cfg.photo_refresh_every == 0, step=it)
        if name == "flow":
            pose = HeadParams(params["shape"], params["expr"], params["jaw"]).pose(rots)
            if "corr" not in flow_state or it % cfg.flow_every == 0:
                with torch.no_grad():
                    full = model(params["shape"][None], params["expr"][None], pose,
                                 translation=transl).vertices
                    corr = build_flow_correspondences(
                        full, model.faces, self._cameras(params, detach=True),
                        views.images, views.landmarks, views.landmark_weights, self.face_region,
                        mode=cfg.covisibility, flow_fn=self._flow_fn(), seed=cfg.seed + it)
                mags.append(corr.flow_magnitude)
                used, local = torch.unique(model.faces[corr.face_idx], return_inverse=True)  # pose only these
                flow_state.update(corr=replace(corr, face_idx=torch.arange(len(corr), device=dev)),
                                  subset=model.vertex_subset(used), local=local)
            verts = flow_state["subset"](params["shape"][None], params["expr"][None], pose)
            if transl is not None:
                verts = verts + transl[:, None]
            terms["multiop"] = cfg.w_multiop * multiview_flow_loss(verts, flow_state["local"], cams, S,
                                                                   flow_state["corr"])
        return terms

    def _noise_scale(self, residual: float) -> float:
        """Factor on the identity prior of the photometric stage for photos whose photometric residual
        (after the light stage) is ``residual``: ``clip((residual / photo_noise_ref) ** 2, 1, 10)``.
        The prior's weight against a Gaussian likelihood grows with the noise variance: noisier photos
        (real skin, specular highlights, hair, compression) pull the identity less far from the mean
        than renders as clean as the model's own image formation."""
        ref = self.cfg.photo_noise_ref
        if ref <= 0 or not math.isfinite(residual) or residual <= 0:
            return 1.0
        return float(min(10.0, max(1.0, (residual / ref) ** 2)))

    def _project(self, params) -> None:
        """Keep the expression within the model's bounds and the jaw within its anatomical range
        (after each optimiser step)."""
        cfg = self.cfg
        with torch.no_grad():
            if self.bounds is not None:
                params["expr"].clamp_(*self.bounds)
            jaw, side = params["jaw"], math.radians(cfg.jaw_side_deg)
            jaw[0].clamp_(math.radians(cfg.jaw_min_deg), math.radians(cfg.jaw_max_deg))
            jaw[1:].clamp_(-side, side)

    # ------------------------------------------------- camera model (weak perspective)
    def _init_camera_params(self, views: Views, shape, expr, jaw, init) -> dict[str, torch.Tensor]:
        """Per-view head rotation + weak-perspective scale/translation, from ``init`` or landmarks."""
        dev, dt = self.model.v_template.device, self.model.v_template.dtype
        if init is not None:
            v0 = init[1]
            rot, s, t = v0.rotation.to(dev, dt), v0.scale.to(dev, dt), v0.trans.to(dev, dt)
        else:
            mean = self.model(shape[None], expr[None]).landmarks[0]
            rot = init_rotations(mean, views.landmarks, views.size).to(dev, dt)
            posed = self._forward(shape, expr, jaw, rot, landmarks_only=True).landmarks
            s, t = weak_perspective_lsq(posed, views.landmarks, views.landmark_weights, views.size)
        return {"rot": rot, "log_s": s.log(), "trans": t}

    def _cameras(self, params, detach: bool = False):
        s, t = params["log_s"].exp(), params["trans"]
        return WeakPerspectiveCameras(s.detach(), t.detach()) if detach else WeakPerspectiveCameras(s, t)

    def _view_rotations(self, params, n: int) -> torch.Tensor:
        return params["rot"]

    def _translation(self, params, n: int) -> torch.Tensor | None:
        return None

    def _view_params(self, params, n: int) -> ViewParams:
        return ViewParams(params["rot"], params["log_s"].exp(), params["trans"])

    def _initial_lights(self, n: int) -> torch.Tensor:
        """(n, 9, 3) SH lights to start from: mostly ambient, some light from the camera side."""
        dev, dt = self.model.v_template.device, self.model.v_template.dtype
        sh = torch.zeros(n, 9, 3, device=dev, dtype=dt)
        sh[:, 0] = 0.7 / SH_CONSTANTS[0]
        sh[:, 2] = 0.3 / SH_CONSTANTS[2]
        return sh

    def _photo_sigma(self, step: int) -> float:
        """Blur (pixels) of the photos at photometric step ``step``: coarse to fine, from
        ``photo_blur_start`` down to ``photo_blur`` (reached at 3/4 of the stage), or ``photo_blur`` throughout."""
        cfg = self.cfg
        if not cfg.photo_blur_start or cfg.photo_blur_start <= cfg.photo_blur:
            return cfg.photo_blur
        t = min(1.0, step / max(1.0, 0.75 * cfg.iters_photo))
        return float(cfg.photo_blur_start * (cfg.photo_blur / cfg.photo_blur_start) ** t)

    def _photo_term(self, params, views: Views, rots, transl, state: dict, refresh: bool,
                    lights_only: bool = False, step: int = 0) -> torch.Tensor:
        """Multi-view photometric consistency at the current parameters; ``state`` keeps the sample
        points (refreshed when ``refresh``) and the posing subset between steps. ``lights_only``:
        no gradient through the geometry (the ``light`` stage fits the SH lights alone); ``step``: the
        stage's step, which sets the blur of the photos (:meth:`_photo_sigma`)."""
        model, cfg, N, S = self.model, self.cfg, len(views), views.size
        pose = HeadParams(params["shape"], params["expr"], params["jaw"]).pose(rots)
        if refresh or "samples" not in state:
            sigma = self._photo_sigma(0 if lights_only else step)
            if state.get("sigma") != sigma:
                state.update(sigma=sigma, logs=log_images(state["images"], sigma))
            with torch.no_grad():
                full = model(params["shape"][None], params["expr"][None], pose,
                             translation=transl).vertices
                state["refreshes"] = state.get("refreshes", 0) + 1
                gen = torch.Generator().manual_seed(cfg.seed + state["refreshes"])
                samples = covisible_samples(full, model.faces, self._cameras(params, detach=True), S,
                                            self.photo_region, max_points_per_pair=cfg.photo_points,
                                            generator=gen)
                # pose the sampled faces and every face around their vertices (for the normals)
                touched = torch.zeros(model.num_vertices, dtype=torch.bool, device=full.device)
                touched[model.faces[samples.face_idx].reshape(-1)] = True
                used, ring_faces = torch.unique(model.faces[touched[model.faces].any(1)], return_inverse=True)
                tri = torch.searchsorted(used, model.faces[samples.face_idx])  # sampled faces, subset indices
                local = SurfaceSamples(samples.view_a, samples.view_b, torch.arange(len(samples), device=tri.device),
                                       samples.bary)
                state.update(samples=local, subset=model.vertex_subset(used), tri=tri,
                             normals=VertexNormals(ring_faces, len(used), full.dtype),
                             plan=PhotoPlan.build(local, tri, N, len(used), full.dtype), geometry=None)
        if lights_only and state.get("geometry") is not None:  # geometry frozen: posed once per refresh
            verts, normals = state["geometry"]
        else:
            with torch.set_grad_enabled(torch.is_grad_enabled() and not lights_only):
                verts = state["subset"](params["shape"][None], params["expr"][None], pose)
                if transl is not None:
                    verts = verts + transl[:, None]
                normals = state["normals"](verts)
            if lights_only:
                state["geometry"] = (verts, normals)
        return photometric_consistency_loss(verts, normals, state["tri"], self._cameras(params), S, state["logs"],
                                            params["sh"], state["samples"], min_cos=cfg.photo_min_cos,
                                            plan=state["plan"], normalise=cfg.photo_normalise,
                                            eps_normalised=cfg.photo_eps_normalised)

    def _dense_setup(self, views: Views):
        """Vertex subset + barycentrics for the 478-point MediaPipe term, or None when unavailable."""
        if self.cfg.w_dense <= 0 or views.dense_landmarks is None or "singlelmk" in self.cfg.disabled_losses:
            return None
        emb = self.model.extra_embedding("mediapipe478")
        if emb is None:
            return None
        faces_d, bary_d = emb
        used, local = torch.unique(self.model.faces[faces_d], return_inverse=True)
        return self.model.vertex_subset(used), local, bary_d

    def _flow_fn(self):
        if self._flow is None:
            from ..flow.raft import make_flow_fn

            self._flow = make_flow_fn(self.cfg.flow, self.cfg.flow_preset, self.model.v_template.device)
        return self._flow
