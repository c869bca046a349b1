"""Training configuration: dataclasses loadable from YAML (``mfnet train CONFIG``).

Example (every key is optional; ``mfnet train --print-config`` prints all of them)::

    out_dir: runs/multipie
    head_model: null            # default open model (ict-facekit), or a name / .npz
    data: {kind: multipie, root: /data/Multi-PIE/data, image_size: 224, n_views: 3, workers: 4}
    net: {backbone: resnet50, fusion: concat, init: deca, init_path: ~/deca_model.tar}
    loss: {weights: {multiop: 1.0, landmarks: 1.0, eye: 1.0, lip: 0.5, reg_shape: 1.0e-4}}
    optim: {lr: 1.0e-3, batch_size: 8, steps: 45000}
    ckpt_every: 1000

Loss weights (:class:`mfnet.losses.weights.LossWeights`, the same names as the fit's ``weights``
section) default to the paper's eq. 11 (λ1..λ5 = 1, 1, 1, 0.5, 1e-4) and the learning rate to its
1e-3 (Adam).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import MfnetError
from ..losses.weights import LossWeights


class ConfigError(MfnetError):
    """A training configuration file is missing or has bad keys / values."""


@dataclass
class DataConfig:
    kind: str = "synthetic"  # synthetic (on the fly) | synthetic_folder | folder | multipie | facescape
    root: str | None = None
    n_subjects: int = 10000  # synthetic on the fly
    yaws: list[float] | None = None  # synthetic: fixed yaws; None = random front/left/right triplets
    shape_scale: float = 1.0  # synthetic: std of the random shape codes
    expression_scale: float = 1.0  # synthetic: strength of the random expressions (0: neutral)
    image_size: int = 224
    n_views: int = 3
    cache_dir: str | None = None  # landmark cache of photo datasets (default ROOT/.mfnet-cache)
    cache_items: bool = False  # keep rendered synthetic items in memory (fixed yaws only)
    workers: int = 0
    seed: int = 0


@dataclass
class NetSection:
    backbone: str = "resnet50"
    fusion: str = "concat"
    tex_dim: int = 50
    hidden: int = 512
    image_size: int = 224
    view_dropout: float = 0.0
    init: str = "none"  # none | deca | imagenet
    init_path: str | None = None


@dataclass
class LossConfig:
    weights: LossWeights = field(default_factory=LossWeights.paper)  # λ1..λ5 of eq. 11 (+ texture code)
    flow_every: int = 1  # compute the flow loss every k steps (0: never)
    flow_start: int = 0  # first step with the flow loss (landmarks alone before)
    flow_preset: str = "medium"
    covisibility: str = "zbuffer"  # or 'landmarks' (the paper's MB ⊙ MF)
    max_points_per_pair: int = 1500
    dynamic_contour: bool = True


@dataclass
class OptimConfig:
    lr: float = 1e-3
    weight_decay: float = 0.0
    lr_step: int = 0  # multiply lr by lr_gamma every lr_step steps (0: constant)
    lr_gamma: float = 0.5
    grad_clip: float = 10.0  # 0: off
    batch_size: int = 8  # subjects per step and process
    steps: int = 45000
    amp: bool = True  # mixed precision, GPU only


@dataclass
class TrainConfig:
    out_dir: str = "runs/mfnet"
    head_model: str | None = None
    device: str = "auto"  # auto | cpu | cuda
    seed: int = 0
    deterministic: bool = False
    threads: int = 0  # torch CPU threads (0: torch default)
    ckpt_every: int = 1000
    keep_checkpoints: int = 3
    log_every: int = 20
    image_every: int = 500
    eval_every: int = 0  # synthetic held-out evaluation (0: off)
    eval_subjects: int = 16
    progress: bool = True
    data: DataConfig = field(default_factory=DataConfig)
    net: NetSection = field(default_factory=NetSection)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _build(base, values: dict, where: str, source: str):
    """A copy of the dataclass instance ``base`` with ``values`` (nested sections recursively)."""
    if not isinstance(values, dict):
        raise ConfigError(f"{source}: '{where}' must be a mapping, got {type(values).__name__}")
    names = [f.name for f in dataclasses.fields(base)]
    kwargs = {}
    for key, val in values.items():
        if key not in names:
            raise ConfigError(f"{source}: unknown key '{where + '.' if where else ''}{key}'; known keys: "
                              f"{', '.join(names)}")
        default = getattr(base, key)
        if dataclasses.is_dataclass(default):
            kwargs[key] = _build(default, val or {}, f"{where}.{key}" if where else key, source)
            continue
        if isinstance(default, bool) and not isinstance(val, bool):
            raise ConfigError(f"{source}: '{where + '.' if where else ''}{key}' must be true or false, got {val!r}")
        if isinstance(default, (int, float)) and not isinstance(default, bool) and val is not None:
            try:
                val = type(default)(val) if not (isinstance(default, int) and isinstance(val, float)
                                                  and not val.is_integer()) else val
            except (TypeError, ValueError):
                raise ConfigError(f"{source}: '{where + '.' if where else ''}{key}' must be a number, "
                                  f"got {val!r}") from None
        kwargs[key] = val
    return dataclasses.replace(base, **kwargs)


def config_from_dict(values: dict | None, source: str = "config") -> TrainConfig:
    cfg = _build(TrainConfig(), values or {}, "", source)
    _check(cfg, source)
    return cfg


def load_config(path: str | Path) -> TrainConfig:
    """Read a YAML training config (see the module docstring)."""
    import yaml

    p = Path(path).expanduser()
    if not p.is_file():
        raise ConfigError(f"{p}: no such config file; `mfnet train --print-config > {p.name}` writes one to edit")
    try:
        values = yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML ({str(exc).splitlines()[0]})") from None
    return config_from_dict(values, str(p))


def dump_config(cfg: TrainConfig) -> str:
    import yaml

    return yaml.safe_dump(cfg.to_dict(), sort_keys=False)


def _check(cfg: TrainConfig, source: str) -> None:
    kinds = ("synthetic", "synthetic_folder", "folder", "multipie", "facescape")
    if cfg.data.kind not in kinds:
        raise ConfigError(f"{source}: data.kind {cfg.data.kind!r} is not one of {', '.join(kinds)}")
    if cfg.data.kind != "synthetic" and not cfg.data.root:
        raise ConfigError(f"{source}: data.root is needed for data.kind {cfg.data.kind!r}")
    if cfg.net.init not in ("none", "deca", "imagenet"):
        raise ConfigError(f"{source}: net.init must be none, deca or imagenet, got {cfg.net.init!r}")
    if cfg.net.init != "none" and not cfg.net.init_path:
        raise ConfigError(f"{source}: net.init {cfg.net.init!r} needs net.init_path (the weight file)")
    if cfg.optim.batch_size < 1 or cfg.optim.steps < 0 or cfg.data.n_views < 1:
        raise ConfigError(f"{source}: optim.batch_size and data.n_views must be >= 1 and optim.steps >= 0")
    if cfg.device not in ("auto", "cpu", "cuda"):
        raise ConfigError(f"{source}: device must be auto, cpu or cuda, got {cfg.device!r}")
