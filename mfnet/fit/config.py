"""Settings of the fit, in sections, and the named presets that build them.

``FitConfig(iters=StageIters(...), lr=LearningRates(...), weights=LossWeights(...),
flow=FlowOptions(...), photo=PhotometricOptions(...), jaw=JawLimits(...), distance=DistanceOptions(...),
silhouette=SilhouetteOptions(...))``; the photo size and
texture size are :class:`PipelineSettings` (the pipeline's, not the fit's). A term is switched off
one way: its weight in ``weights`` set to 0.

Overrides name a field by its section: ``iters.photo=0``, ``photo.w_reg=1e-3``,
``weights.landmarks=0``, ``seed=3`` (see :func:`apply_overrides`; the command line's ``--set``
takes the same names).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, replace
from typing import Any, Mapping, Sequence

from ..errors import MfnetError
from ..losses.weights import LossWeights


@dataclass
class StageIters:
    """Optimiser steps per stage (0 skips a stage): ``pose`` (cameras from landmarks), ``shape``
    (+ identity, expression, jaw), ``flow`` (+ multi-view flow), ``photo`` (multi-view photometric
    consistency; preceded by a light stage of a quarter of its steps, at most 60)."""

    pose: int = 60
    shape: int = 150
    flow: int = 40
    photo: int = 200


@dataclass
class LearningRates:
    """Adam learning rates per parameter group, cosine-decayed over each stage."""

    rotation: float = 0.01  # head rotations and the jaw
    scale: float = 0.01  # log of the weak-perspective scale
    translation: float = 0.002
    shape: float = 0.05
    expression: float = 0.02
    light: float = 0.02  # SH lights (light and photo stages)
    inv_distance: float = 0.1  # the uncalibrated rig's inverse camera distance, 1/m


@dataclass
class FlowOptions:
    """The multi-view optical-flow stage (MFNet eq. 6)."""

    every: int = 15  # recompute the flow correspondences every k steps
    method: str = "dis"  # or 'raft:PATH' (torchvision RAFT with user-supplied weights)
    preset: str = "medium"  # DIS preset
    covisibility: str = "zbuffer"  # or 'landmarks' (the paper's MB ⊙ MF)


@dataclass
class PhotometricOptions:
    """The photometric stage (beyond the paper; multi-view only). The detector's landmarks are biased
    (several pixels at ±60°) and a strong prior shrinks the shape towards the mean: at the true
    parameters both cost more than the photometric term gains, so the stage weakens them (measured:
    docs/benchmarks.md) and lets the photos place the surface."""

    # factor on the landmark, eye, lip (and dense) terms during the stage: 0.05 measured on the real scans
    # (5 multi-view cases x 3 seeds, NoW 0.693 -> 0.679 mm against 0.1; synthetic means unchanged)
    w_landmarks: float = 0.05
    w_reg: float = 1e-4  # identity prior during the stage (the landmark stages use weights.reg_shape)
    w_reg_expression: float = 1e-4
    blur: float = 0.5  # Gaussian blur of the photos at the end of the stage, pixels
    blur_start: float = 3.0  # coarse to fine: blur at its start (geometric decay over 3/4 of it)
    min_cos: float = 0.4  # down-weight points seen at a grazing angle (|cos| below this + 0.2)
    lr_scale: float = 1.0  # learning rates of the stage relative to the others (not the lights')
    points: int = 1000  # surface points sampled per ordered view pair
    refresh_every: int = 20  # new samples (and the next blur level) every k steps
    # Standardise each view pair's log albedos before comparing them (measured worse; off).
    normalise: bool = False
    eps_normalised: float = 0.1
    # Residual level (light stage, mean log-albedo difference) up to which the stage keeps its identity
    # prior w_reg; above it the prior grows as (residual / ref)^2, at most 10x. 0: off.
    noise_ref: float = 0.04


@dataclass
class DistanceOptions:
    """How far the uncalibrated cameras are: their inverse distance k (1/m) from the head's origin
    (about 10 cm behind the face), one for all views. Weak perspective (k = 0) assumes a distant
    camera; photos from arm's length (40-70 cm, k 1.5-2) are perspective, and a weak-perspective fit
    explains their distortion with a wrong face (measured on the real scans: docs/benchmarks.md)."""

    start: float = 0.0  # k at the start of the fit (0: weak perspective, MFNet's camera)
    # fit k in the multi-view flow and photometric stages (the landmark stages hold it: from the
    # detector's landmarks alone it is biased); False: held at ``start`` (0 and held: weak perspective)
    estimate: bool = True
    max: float = 3.0  # k at most (a camera at least 33 cm from the head's origin)
    # a view whose focal length is known (the photo's EXIF, or the caller's): its k follows from its scale, in
    # every stage (k = scale / focal; real scans, 3 seeds: lee-30 0.615 -> 0.588 mm, lee-60 0.699 -> 0.664; from the
    # flow stage on only: 0.666 / 0.660, worse)
    focal: bool = True
    # ... also for a single photo, which cannot tell the face's depth from the camera's distance (measured on 7
    # real single views: mean 0.852x -> 0.871x the mean head's error, 4 of 6 renders worse): off, weak perspective
    focal_single_view: bool = False


@dataclass
class SilhouetteOptions:
    """The silhouette term of single-view fits (:mod:`mfnet.fit.silhouette`; weight
    ``weights.silhouette``), part of the shape stage."""

    # the model's vertex mask whose outline counts: the narrow face (measured on 7 real single views against
    # 'face': same mean, worst case 0.95x instead of 0.98x the mean head); a model without it uses 'face'
    region: str = "narrow_face"
    tau: float = 0.03  # robust scale: the penalty is half its maximum this far off, fraction of the crop
    band: float = 1.0  # outline vertices: within this many pixels inside the model's own mask
    refresh_every: int = 10  # steps between new outline vertices
    # segmentation confidence above which a pixel is the person's: the confidence ramps over a few pixels and
    # 0.5 lies outside the real edge (James's photo: 0.5 -> 0.85 moves the outline in by 1-2 px); measured on 7
    # real single views: 0.5, 0.7, 0.8, 0.85, 0.9, 0.95 -> mean 0.860, 0.866, 0.858, 0.852, 0.854, 0.860 of the
    # mean head's error, worst 0.939, 0.986, 0.930, 0.908, 0.904, 0.934; averaged over invisibly perturbed
    # copies, 0.5 vs 0.85: same mean (0.860 / 0.861), James's real photo 0.938 -> 0.909, renders up to +0.02
    # (docs/benchmarks.md)
    threshold: float = 0.85
    # also in multi-view fits: the outline's far side only (below), in the photometric stage only (in the landmark
    # and flow stages it made the result jump with invisible changes of the photos: James +- 0.020 mm). Real scans,
    # 5 seeds x 5 cases: NoW mean 0.673 -> 0.651 mm (james 0.716 -> 0.702, james-cal 0.772 -> 0.726, lee-30 0.598
    # -> 0.574, lee-60 0.663 -> 0.649, lee-lowres 0.618 -> 0.602; docs/benchmarks.md)
    multi_view: bool = True
    # multi-view fits: only the outline on the side each view's head is turned away from, in views turned at least
    # this many degrees (the detector's yaw; negative: the whole outline). The near side's outline runs along ears
    # and hair, a near-frontal view's on both sides; 15 degrees took James's 20-degree view in: 0.718 -> 0.747 mm
    far_side_min_yaw: float = 25.0
    photo_factor: float = 0.05  # factor on the term in the photometric stage (the landmarks' factor there)


@dataclass
class JawLimits:
    """Anatomical range of the jaw, degrees: opening (pitch) from ``min_deg`` to ``max_deg``, sideways
    (yaw, roll) within ±``side_deg``. A jaw rotated past the closed rest pushes the lower lip into the
    upper one; landmark fits did that on real single photos (-4°), costing 0.4 mm on James."""

    min_deg: float = -1.0
    max_deg: float = 35.0
    side_deg: float = 6.0


@dataclass
class FitConfig:
    """Everything the fit (:class:`mfnet.fit.fitter.MultiViewFitter`) needs, in sections."""

    iters: StageIters = field(default_factory=StageIters)
    lr: LearningRates = field(default_factory=LearningRates)
    weights: LossWeights = field(default_factory=LossWeights)
    flow: FlowOptions = field(default_factory=FlowOptions)
    photo: PhotometricOptions = field(default_factory=PhotometricOptions)
    jaw: JawLimits = field(default_factory=JawLimits)
    distance: DistanceOptions = field(default_factory=DistanceOptions)
    silhouette: SilhouetteOptions = field(default_factory=SilhouetteOptions)
    dynamic_contour: bool = True  # the jaw-contour landmarks follow the head's yaw (when the model has a table)
    seed: int = 0


@dataclass
class PipelineSettings:
    """The pipeline's own settings: the square crop the fit sees and the texture's side, pixels."""

    crop_size: int = 256
    texture_size: int = 512


@dataclass
class Preset:
    fit: FitConfig
    pipeline: PipelineSettings


def fast() -> Preset:
    """Landmarks only (pose + shape stages), small crops."""
    return Preset(FitConfig(iters=StageIters(pose=40, shape=80, flow=0, photo=0)), PipelineSettings(192, 256))


def default() -> Preset:
    """Landmarks, multi-view flow, then the photometric stage."""
    return Preset(FitConfig(), PipelineSettings())


def best() -> Preset:
    """Larger crops, longer flow and photometric stages, denser samples. Its photometric stage keeps the
    landmark factor 0.1 (real scans, seed 0: five-case mean 0.642 mm against 0.667 with the default's 0.05)."""
    return Preset(FitConfig(iters=StageIters(pose=80, shape=250, flow=150, photo=900), flow=FlowOptions(every=10),
                            photo=PhotometricOptions(points=1500, refresh_every=10, w_landmarks=0.1)),
                  PipelineSettings(384, 1024))


PRESETS = {"fast": fast, "default": default, "best": best}


def get_preset(name: str = "default", **overrides) -> Preset:
    """The preset ``name`` with ``overrides`` (:func:`apply_overrides`; ``crop_size`` and
    ``texture_size`` set the pipeline's settings)."""
    if name not in PRESETS:
        raise MfnetError(f"unknown preset {name!r}: choose from {', '.join(PRESETS)}")
    p = PRESETS[name]()
    pipe = {k: overrides.pop(k) for k in [k for k in overrides if k in _names(PipelineSettings)]}
    pipe = {k: _convert(v, getattr(p.pipeline, k), k) for k, v in pipe.items()}
    return Preset(apply_overrides(p.fit, overrides), replace(p.pipeline, **pipe))


def get_config(preset: str = "default", **overrides) -> FitConfig:
    """The fit settings of ``preset`` with ``overrides`` (:func:`apply_overrides`)."""
    return get_preset(preset, **overrides).fit


ABLATIONS: dict[str, dict[str, float]] = {  # term name (the paper's Table 3 + ours) -> the weights that remove it
    "multiop": {"weights.multiop": 0.0},
    "singlelmk": {"weights.landmarks": 0.0},
    "eye": {"weights.eye": 0.0},
    "lip": {"weights.lip": 0.0},
    "reg": {"weights.reg_shape": 0.0, "weights.reg_expression": 0.0, "weights.reg_shape_single_view": 0.0,
            "photo.w_reg": 0.0, "photo.w_reg_expression": 0.0},
    "photo": {"weights.photo": 0.0},
    "silhouette": {"weights.silhouette": 0.0},
}


def without(*terms: str) -> dict[str, float]:
    """Overrides that remove ``terms`` (names of :data:`ABLATIONS`) from the fit."""
    out: dict[str, float] = {}
    for t in terms:
        if t not in ABLATIONS:
            raise MfnetError(f"unknown loss term {t!r}: choose from {', '.join(ABLATIONS)}")
        out.update(ABLATIONS[t])
    return out


def apply_overrides(cfg: FitConfig, overrides: Mapping[str, Any]) -> FitConfig:
    """A copy of ``cfg`` with ``overrides``: ``{"iters.photo": 0, "seed": 2}``; a section's value may
    also be a dict of its fields or a whole section object. Strings are converted to the field's type
    (the command line's ``--set KEY=VALUE``). Unknown names raise :class:`MfnetError`."""
    sections = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)
                if dataclasses.is_dataclass(getattr(cfg, f.name))}
    flat: dict[str, Any] = {}
    for key, value in overrides.items():  # a section given as a dict: one entry per field
        if key in sections and isinstance(value, Mapping):
            flat.update({f"{key}.{name}": v for name, v in value.items()})
        else:
            flat[key] = value
    top: dict[str, Any] = {}
    changes: dict[str, dict[str, Any]] = {}
    for key, value in flat.items():
        sec, dot, name = key.partition(".")
        if dot and sec in sections and name in _names(type(sections[sec])):
            changes.setdefault(sec, {})[name] = _convert(value, getattr(sections[sec], name), key)
        elif not dot and key in sections and isinstance(value, type(sections[key])):
            top[key] = value
        elif not dot and key in _names(FitConfig) and key not in sections:
            top[key] = _convert(value, getattr(cfg, key), key)
        else:
            raise MfnetError(f"unknown fit setting {key!r}: choose from {', '.join(setting_names())}")
    out = replace(cfg, **top)
    out = replace(out, **{sec: replace(getattr(out, sec), **vals) for sec, vals in changes.items()})
    d = out.distance
    if not 0.0 < d.max <= 5.0 or not 0.0 <= d.start <= d.max:  # 1 - k z must stay positive on the head
        raise MfnetError(f"distance.start={d.start} / distance.max={d.max}: the inverse camera distance (1/m) must "
                         "satisfy 0 <= start <= max <= 5 (a camera at least 20 cm from the head's origin)")
    return out


def parse_settings(items: Sequence[str]) -> dict[str, str]:
    """``["section.field=value", ...]`` (the repeatable ``--set`` of ``mfnet reconstruct`` and the
    benchmark scripts) as overrides for :func:`get_preset`, which converts and checks each value."""
    out = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq:
            raise MfnetError(f"--set {item!r}: expected SECTION.FIELD=VALUE, e.g. --set iters.photo=0")
        out[key.strip()] = value.strip()
    return out


def setting_names() -> list[str]:
    """Every name :func:`apply_overrides` accepts (``section.field`` or top-level), plus the pipeline's."""
    cfg = FitConfig()
    out = []
    for f in dataclasses.fields(cfg):
        v = getattr(cfg, f.name)
        out += [f"{f.name}.{n}" for n in _names(type(v))] if dataclasses.is_dataclass(v) else [f.name]
    return out + list(_names(PipelineSettings))


def _names(cls) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))


def _convert(value: Any, current: Any, key: str) -> Any:
    """``value`` as the type of the field's current value (strings from the command line)."""
    if not isinstance(value, str) or isinstance(current, str):
        return value
    try:
        if isinstance(current, bool):
            if value.lower() not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                raise ValueError(value)
            return value.lower() in ("1", "true", "yes", "on")
        if isinstance(current, int):
            number = float(value)
            if not number.is_integer():
                raise ValueError(value)
            return int(number)
        return type(current)(value)
    except ValueError:
        raise MfnetError(f"{key}={value!r}: expected a {type(current).__name__}") from None
