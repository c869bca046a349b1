"""Network checkpoints (config inside) and inference: photos -> (HeadParams, ViewParams).

A checkpoint is one ``torch.save`` dict loadable with ``weights_only=True``::

    {"format": "mfnet-net", "version": 1, "net_config": {...MFNet kwargs...},
     "model": state_dict, "head_model": name or None, "step": int,
     # training checkpoints also carry:
     "optimizer": ..., "scheduler": ..., "scaler": ..., "rng": {...}, "train_config": {...}}

Writes are atomic (temporary file + rename), so a run killed while saving leaves the previous
checkpoint intact.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F

from ..errors import MfnetError
from ..types import HeadParams, ViewParams, Views
from ..utils.io import atomic_path
from .model import MFNet, build_net

FORMAT = "mfnet-net"
VERSION = 1


class CheckpointError(MfnetError):
    """A network checkpoint is missing, unreadable or does not fit the head model."""


def _unwrap(net):
    return net.module if hasattr(net, "module") else net


def save_checkpoint(path: str | os.PathLike, net: MFNet, *, step: int = 0, head_model: str | None = None,
                    **extra) -> Path:
    """Write ``net`` (weights + config) and any ``extra`` entries (optimizer state, ...) to ``path``."""
    net = _unwrap(net)
    state = {"format": FORMAT, "version": VERSION, "net_config": dict(net.config),
             "model": {k: v.detach().cpu() for k, v in net.state_dict().items()},
             "head_model": head_model, "step": int(step)}
    state.update(extra)
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    return path


def read_checkpoint(path: str | os.PathLike, map_location="cpu") -> dict:
    """The raw checkpoint dict, validated."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise CheckpointError(f"{p}: no such network checkpoint; train one with `mfnet train CONFIG` "
                              f"or give the path of a .pt file it wrote")
    try:
        ckpt = torch.load(p, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch.load raises many types on a bad file (UnpicklingError, KeyError, ...)
        raise CheckpointError(f"{p}: not a readable checkpoint ({type(exc).__name__}); the file may be truncated "
                              f"- use an earlier checkpoint of the run") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{p}: not an mfnet network checkpoint (no format={FORMAT!r}); "
                              f"for DECA / ImageNet weights use them as an init (net.init in the training config)")
    if int(ckpt.get("version", 0)) > VERSION:
        raise CheckpointError(f"{p}: checkpoint version {ckpt['version']} is newer than this mfnet ({VERSION}); "
                              f"upgrade mfnet")
    return ckpt


def load_checkpoint(path: str | os.PathLike, map_location="cpu") -> tuple[MFNet, dict]:
    """Rebuild the network from a checkpoint. Returns ``(net in eval mode, checkpoint dict)``."""
    ckpt = read_checkpoint(path, map_location)
    net = build_net(ckpt["net_config"])
    try:
        net.load_state_dict(ckpt["model"])
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: weights do not match the stored network config "
                              f"({str(exc).splitlines()[0][:160]})") from None
    return net.eval(), ckpt


def _views_tensor(views: Views | torch.Tensor) -> torch.Tensor:
    images = views.images if isinstance(views, Views) else views
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"expected images (N, 3, H, W), got {tuple(images.shape)}")
    return images


@torch.no_grad()
def predict(net: MFNet, views: Views | torch.Tensor) -> tuple[HeadParams, ViewParams]:
    """One subject's codes from its ``views`` (N square crops in [0, 1], any size).

    The weak-perspective cameras are resolution independent, so they apply to the crops as given.
    """
    net = _unwrap(net)
    images = _views_tensor(views)
    dev = next(net.parameters()).device
    was_training = net.training
    net.eval()
    try:
        out = net(images.to(dev, torch.float32)[None])
    finally:
        net.train(was_training)
    return out.head_params(0), out.view_params(0)


def check_head_model(net: MFNet, model, source: str = "network") -> None:
    """Raise if ``net`` regresses codes for a different head model than ``model``."""
    cfg = _unwrap(net).config
    if cfg["n_shape"] != model.n_shape or cfg["n_expr"] != model.n_expr:
        raise CheckpointError(
            f"{source} predicts {cfg['n_shape']} shape / {cfg['n_expr']} expression codes but head model "
            f"{model.name!r} has {model.n_shape} / {model.n_expr}: use the head model the network was trained "
            f"with (--model), or retrain")


def init_from_network(ckpt_path: str | os.PathLike, views: Views, model) -> tuple[HeadParams, ViewParams]:
    """Load a checkpoint and predict (HeadParams, ViewParams) for ``views`` on ``model``'s device/dtype,
    ready to use directly (``--method net``) or as the fitter's starting point (``net+fit``)."""
    net, ckpt = load_checkpoint(ckpt_path)
    check_head_model(net, model, source=str(ckpt_path))
    dev, dt = model.v_template.device, model.v_template.dtype
    net.to(dev)
    if net.fusion == "concat" and len(views) != net.n_views:
        raise CheckpointError(f"{ckpt_path}: this network takes exactly {net.n_views} views (concat fusion) and "
                              f"{len(views)} were given: pass {net.n_views} photos or use a network trained "
                              f"with fusion 'meanmax' / 'attention'")
    head, vp = predict(net, views)
    head = HeadParams(head.shape.to(dev, dt), head.expression.to(dev, dt), head.jaw.to(dev, dt))
    vp = ViewParams(vp.rotation.to(dev, dt), vp.scale.to(dev, dt), vp.trans.to(dev, dt), vp.light.to(dev, dt))
    return head, vp


def resize_views(images: torch.Tensor, size: int) -> torch.Tensor:
    """(N, 3, H, W) -> (N, 3, size, size) with antialiasing when shrinking."""
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    return F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False,
                         antialias=images.shape[-1] > size)
