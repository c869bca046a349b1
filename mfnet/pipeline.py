"""`mfnet.reconstruct`: N uncalibrated photos of one person -> one textured head.

images -> detection + crops (:mod:`mfnet.fit.views`) -> head model -> multi-view fit
(:mod:`mfnet.fit.fitter`) -> fused UV texture (:mod:`mfnet.fit.texture`) -> :class:`Reconstruction`.
"""
from __future__ import annotations

import logging
import os
import time
import warnings
from dataclasses import replace
from typing import Sequence

import numpy as np
import torch

from .errors import MfnetError
from .types import Reconstruction, Views
from .utils.affine import apply_affine

log = logging.getLogger(__name__)


def load_identity(path: str | os.PathLike, n_shape: int) -> torch.Tensor:
    """The shape code of an earlier reconstruction's params.npz."""
    from .utils.io import read_identity

    shape = read_identity(path)
    if shape.shape[0] < n_shape:
        raise MfnetError(f"{path}: has {shape.shape[0]} shape coefficients, the model needs {n_shape} "
                         "(was it made with another head model?)")
    return torch.from_numpy(shape[:n_shape])


def reconstruct(images: Sequence, model=None, preset: str = "default", device: str | None = "cpu",
                backend: str = "mediapipe", identity: str | os.PathLike | None = None, progress: bool = True,
                views: Views | None = None, method: str = "fit", checkpoint: str | os.PathLike | None = None,
                cameras: str | os.PathLike | None = None, check_identity: bool = True, focal: float | None = None,
                **overrides) -> Reconstruction:
    """Reconstruct one head from 1-16 photos (paths, RGB arrays or ImageViews) of the same person.

    model: a name, an .npz path or a loaded :class:`~mfnet.headmodel.HeadModel` (default: the open
    ICT-FaceKit model; a loaded model is not changed); preset: 'fast' | 'default' | 'best';
    identity: a params.npz whose shape is kept fixed; method: 'fit' (optimisation), 'net' (the MFNet
    network's prediction from ``checkpoint``) or 'net+fit' (the prediction refined by optimisation);
    overrides: fit settings by section (``**{"iters.photo": 0}``, ``weights={"landmarks": 0.5}``,
    ``seed=1``: :func:`mfnet.fit.config.apply_overrides`) and ``crop_size`` / ``texture_size``;
    cameras: a cams.json of a calibrated rig (OpenCV K, R, t per view, see :mod:`mfnet.fit.calibrated`):
    full perspective, one world head pose; check_identity: warn when the photos seem to show
    different people (:mod:`mfnet.fit.identity`); focal: the cameras' 35 mm-equivalent focal length in mm
    (default: each photo's EXIF, where it records one; ``--set distance.focal=false`` ignores both).

    On the CPU the result is bit-identical for the same photos, settings and thread count.
    """
    from .utils.determinism import deterministic
    from .utils.options import resolve_device

    dev = resolve_device(device)
    with deterministic(dev):
        return _reconstruct(images, model, preset, dev, backend, identity, progress, views, method, checkpoint,
                            cameras, check_identity, focal, **overrides)


def _reconstruct(images, model, preset, dev, backend, identity, progress, views, method, checkpoint, cameras,
                 check_identity, focal, **overrides) -> Reconstruction:
    from .fit.config import get_preset
    from .utils.options import check_method

    check_method(method)
    say = log.info if progress else log.debug
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    settings = get_preset(preset, **overrides)
    model = _prepare_model(model, dev, backend)
    timings["load_model"] = time.perf_counter() - t0
    views, caught = _prepare_views(images, views, settings.pipeline.crop_size, backend, focal, say, timings)
    fitter, init, rig = _initialise(model, views, settings.fit, method, checkpoint, cameras, identity, progress,
                                    timings)
    t = time.perf_counter()
    say("fitting the head to %d view(s) (preset %s) ...", len(views), preset)
    res = fitter.fit(views, init=init)
    timings["fit"] = time.perf_counter() - t
    say("fitted in %.1f s", timings["fit"])
    timings.update({f"fit.{k}": v for k, v in res.timings.items()})
    t = time.perf_counter()
    rec = _assemble(model, views, res, rig, caught, check_identity, timings)
    if model.has_uvs:
        say("fusing the texture ...")
        rec.texture = _texture(model, views, res.posed_vertices, res.views, settings.pipeline.texture_size)
    timings["texture"] = time.perf_counter() - t - timings.get("identity_check", 0.0)  # not counted twice
    say("texture and landmarks in %.1f s", timings["texture"])
    timings["total"] = time.perf_counter() - t0
    return rec


def _prepare_model(model, dev: torch.device, backend: str):
    """The head model on ``dev`` with the landmark embedding of ``backend``: a shallow copy, so that
    the caller's model is left as it was."""
    from .headmodel.model import HeadModel
    from .calibrate.install import load_model as load_head_model  # installs the open model on first use

    model = (model if isinstance(model, HeadModel) else load_head_model(model)).shallow_copy().to(dev)
    if not model.use_landmark_embedding(backend):
        log.info("%s has no landmark embedding calibrated for %s: using its own landmarks "
                 "(run `mfnet models calibrate %s --backend %s` for better accuracy)", model.name, backend,
                 model.name, backend)
        model.use_landmark_embedding("static")
    return model


def _prepare_views(images, views, crop_size: int, backend: str, focal, say, timings) -> tuple[Views, list[str]]:
    """Detect and crop (unless ``views`` are given, when ``focal`` replaces their focal lengths); returns
    them and the warnings raised on the way."""
    from .fit.views import crop_focal, prepare_views

    t = time.perf_counter()
    if views is None:
        say("detecting faces in %d photo(s) ...", len(images))
    with warnings.catch_warnings(record=True) as wlist:
        warnings.simplefilter("always")
        if views is None:
            views = prepare_views(images, crop_size=crop_size, backend=backend, focal_35mm=focal)
        elif focal is not None:
            exif = [p.focal_px for p in views.photos] if views.photos else [None] * len(views)
            views = replace(views, focal_px=crop_focal(views.original_sizes, exif, views.crop_to_original, focal))
    for w in wlist:
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    timings["detect"] = time.perf_counter() - t
    say("detected faces in %d photo(s) in %.1f s", len(views), timings["detect"])
    if views.focal_px is not None:
        say("focal length known for %d of %d photo(s) (%s): their camera distances follow from it",
            int(views.focal_px.isfinite().sum()), len(views), "--focal" if focal is not None else "EXIF")
    return views, [str(w.message) for w in wlist]


def _initialise(model, views: Views, cfg, method, checkpoint, cameras, identity, progress, timings):
    """The fitter (weak-perspective or calibrated rig, fixed identity), its start (the network's
    prediction for 'net' / 'net+fit') and the calibrated rig's (K, R, t) in photo pixels, or None."""
    from .fit.fitter import MultiViewFitter

    fixed = load_identity(identity, model.n_shape) if identity is not None else None
    init = rig = None
    if method != "fit":
        if checkpoint is None:
            raise MfnetError(f"--method {method} needs a network checkpoint (a .pt file written by `mfnet train`)")
        from .net.checkpoint import init_from_network

        t = time.perf_counter()
        init = init_from_network(checkpoint, views, model)
        timings["network"] = time.perf_counter() - t
        if method == "net":  # the prediction as is: no optimisation steps
            cfg = replace(cfg, iters=replace(cfg.iters, pose=0, shape=0, flow=0, photo=0))
    if cameras is not None:
        from .fit.calibrated import crop_cameras, load_cameras_json

        if method != "fit":
            raise MfnetError("--cameras works with --method fit only")
        rig = load_cameras_json(cameras, views.names)
    fitter = MultiViewFitter(model, cfg, fixed_shape=fixed, progress=progress,
                             cameras=None if rig is None else crop_cameras(*rig, views))
    return fitter, init, rig


def _assemble(model, views: Views, res, rig, caught: list[str], check_identity: bool, timings) -> Reconstruction:
    """The :class:`Reconstruction` of a fit: canonical and neutral heads, landmarks, warnings."""
    from .fit.checks import consistency_warnings, identity_warnings, roll_warnings
    from .fit.neutral import neutral_head

    head, vp, n = res.head, res.views, len(views)
    neutral = neutral_head(model, head)
    with torch.no_grad():
        canon = model(head.shape[None], head.expression[None], head.pose(vp.rotation.new_zeros(1, 3)))
        neutral_v = model(neutral.shape[None], neutral.expression[None], neutral.pose(vp.rotation.new_zeros(1, 3)))
    fitted = apply_affine(res.landmarks2d.cpu().numpy(), views.crop_to_original)
    detected = (np.stack([d.points for d in views.detections]).astype(np.float64) if views.detections
                else apply_affine(views.landmarks.cpu().numpy(), views.crop_to_original))
    caught = caught + consistency_warnings(fitted, detected, views) + roll_warnings(vp.rotation, views.names)
    if check_identity and n > 1:
        t_id = time.perf_counter()
        caught += identity_warnings(model, views)
        timings["identity_check"] = time.perf_counter() - t_id
    calibrated = None
    if rig is not None:  # a calibrated rig: its (K, R, t) and the head's world pose
        calibrated = {"K": rig[0], "R": rig[1], "t": rig[2], "head_rotation": res.rig.rotation.detach()[0].cpu().numpy(),
                      "head_translation": res.rig.translation.detach().cpu().numpy()}
    return Reconstruction(
        model_name=model.name, head=head.detach(), views=vp.detach(), vertices=canon.vertices[0].cpu().numpy(),
        faces=model.faces.cpu().numpy(), names=list(views.names), crop_size=views.size,
        crop_to_original=views.crop_to_original, detected_landmarks=detected, fitted_landmarks=fitted,
        landmarks3d=canon.landmarks[0].cpu().numpy(),
        vt=model.vt.cpu().numpy() if model.has_uvs else None, ft=model.ft.cpu().numpy() if model.has_uvs else None,
        history=res.history, timings=timings, warnings=caught,
        posed_vertices=res.posed_vertices.cpu().numpy(), neutral_shape=neutral.shape.cpu().numpy(),
        neutral_vertices=neutral_v.vertices[0].cpu().numpy(),
        photos=[_original_pixels(v) for v in views.photos] if views.photos else None, calibrated_cameras=calibrated,
        model_meta=dict(model.data_meta), person_outlines=_outlines(res.person_masks, views.crop_to_original))


def _outlines(masks, crop_to_original) -> list[list[np.ndarray]] | None:
    """(N, S, S) crop masks -> per view, the pieces of their outlines inside the crop (where the mask
    meets the crop's border is no outline) as open (K, 2) polylines of original-photo pixels."""
    if masks is None:
        return None
    import cv2

    out = []
    for m, A in zip(masks.cpu().numpy().astype(np.uint8), np.asarray(crop_to_original)):
        S, pieces = m.shape[0], []
        for c in cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)[0]:
            p = c[:, 0]
            inner = ((p > 0) & (p < S - 1)).all(1)
            cuts = np.flatnonzero(np.diff(np.r_[0, inner.astype(np.int8), 0]))  # starts and ends of inner runs
            pieces += [apply_affine(p[a:b].astype(np.float64) + 0.5, A) for a, b in cuts.reshape(-1, 2) if b - a > 2]
        out.append(pieces)
    return out


def _original_pixels(view) -> np.ndarray:
    """The photo at its original resolution (working images of huge photos were downscaled)."""
    H, W = view.original_size
    if view.image.shape[:2] == (H, W):
        return view.image
    import cv2

    return cv2.resize(view.image, (W, H), interpolation=cv2.INTER_LINEAR)


def _texture(model, views: Views, posed_vertices: torch.Tensor, vp, texture_size: int) -> np.ndarray:
    """Fuse a UV texture from crops re-sampled at a resolution matching the texture size; each view
    contributes its face region only (:mod:`mfnet.fit.texture`)."""
    from .detect import face_crop
    from .fit.texture import fuse_texture

    images, landmarks = views.images, views.landmarks
    if views.crops and views.photos:
        size = max(views.size, min(texture_size, 1024))
        crops = [face_crop(d, size=size, scale=views.crop_scale) for d in views.detections]
        hi = np.stack([c.warp(p.image, p.scale_xy, border="replicate") for c, p in zip(crops, views.photos)])
        images = torch.from_numpy(hi).permute(0, 3, 1, 2).to(posed_vertices) / 255.0
        landmarks = torch.from_numpy(np.stack([c.to_crop(d.points.astype(np.float64)) + 0.5
                                               for c, d in zip(crops, views.detections)]))
    with torch.no_grad():
        canonical = model(torch.zeros(1, model.n_shape, device=posed_vertices.device,
                                      dtype=posed_vertices.dtype)).vertices[0]
    return fuse_texture(images, posed_vertices, model.faces, model.vt, model.ft, vp.cameras(), texture_size,
                        landmarks=landmarks, canonical=canonical, eyeballs=model.masks.get("eyeballs"))
