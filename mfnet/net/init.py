"""Initialise the MFNet backbone from weight files the user supplies (nothing is downloaded).

* ``'deca'``: a DECA ``deca_model.tar`` — the paper (§4.1) imports part of DECA's coarse encoder
  ``E_flame`` into its ResNet-50. Keys ``E_flame['encoder.<name>']`` are copied to
  ``net.encoder.<name>`` wherever the name exists and the shapes match (so a ResNet-50 MFNet takes
  the whole backbone; a file for another ResNet, of which less than half the tensors fit, is refused). DECA's regression layers predict a
  different parameter layout and are not used.
* ``'imagenet'``: a torchvision ResNet state dict (e.g. ``resnet50-0676ba61.pth``), with or without
  a ``module.`` / ``encoder.`` prefix; the classifier ``fc`` is skipped.

Both report what was loaded and what was skipped (and why).
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..errors import MfnetError

log = logging.getLogger(__name__)


class InitWeightsError(MfnetError):
    """A weight file for network initialisation is missing or not what was expected."""


@dataclass
class InitReport:
    kind: str
    path: str
    loaded: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # source key -> reason
    missing: list[str] = field(default_factory=list)  # encoder keys that got nothing

    def __str__(self) -> str:
        return (f"{self.kind} init from {self.path}: loaded {len(self.loaded)} tensors, skipped "
                f"{len(self.skipped)}, {len(self.missing)} encoder tensors left at random init")


def _read(path: str | os.PathLike, what: str) -> dict:
    p = Path(path).expanduser()
    if not p.is_file():
        raise InitWeightsError(f"{p}: no such {what} file; give the path of the file you downloaded")
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch.load raises many types on a bad file (UnpicklingError, KeyError, ...)
        raise InitWeightsError(f"{p}: not a readable PyTorch weight file ({type(exc).__name__}: "
                               f"{str(exc).splitlines()[0][:120]}); re-download the {what}") from None
    if not isinstance(obj, dict):
        raise InitWeightsError(f"{p}: expected a dict of tensors, found {type(obj).__name__}; "
                               f"re-download the {what}")
    return obj


def _copy_matching(net, source: dict[str, torch.Tensor], report: InitReport) -> InitReport:
    target = net.encoder.state_dict()
    new = {}
    for key, tensor in source.items():
        if not isinstance(tensor, torch.Tensor):
            report.skipped[key] = "not a tensor"
        elif key not in target:
            report.skipped[key] = "no such encoder tensor"
        elif tuple(target[key].shape) != tuple(tensor.shape):
            report.skipped[key] = f"shape {tuple(tensor.shape)} != {tuple(target[key].shape)}"
        else:
            new[key] = tensor.to(target[key].dtype)
            report.loaded.append(key)
    if not new or len(new) < len(source) / 2:
        raise InitWeightsError(f"{report.path}: only {len(new)} of its {len(source)} backbone tensors fit this "
                               f"{net.config['backbone']} backbone; it was made for another ResNet: use the matching "
                               f"backbone (DECA's E_flame is a resnet50)")
    net.encoder.load_state_dict(new, strict=False)
    report.missing = sorted(set(target) - set(new))
    return report


def load_deca(net, path: str | os.PathLike) -> InitReport:
    """Copy DECA's ``E_flame`` ResNet weights into ``net.encoder`` (name + shape matches)."""
    obj = _read(path, "DECA model (deca_model.tar)")
    enc = obj.get("E_flame")
    if not isinstance(enc, dict):
        keys = ", ".join(list(obj)[:6])
        raise InitWeightsError(f"{path}: no 'E_flame' entry (found: {keys}); this is not DECA's deca_model.tar")
    report = InitReport("deca", str(path))
    source = {}
    for key, tensor in enc.items():
        if key.startswith("encoder."):
            source[key[len("encoder."):]] = tensor
        else:
            report.skipped[key] = "DECA regression layer (different parameter layout)"
    return _copy_matching(net, source, report)


def load_imagenet(net, path: str | os.PathLike) -> InitReport:
    """Copy a torchvision ImageNet ResNet state dict into ``net.encoder`` (``fc`` skipped)."""
    obj = _read(path, "torchvision ResNet weights")
    if "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    report = InitReport("imagenet", str(path))
    source = {}
    for key, tensor in obj.items():
        k = key
        for prefix in ("module.", "encoder."):
            k = k[len(prefix):] if k.startswith(prefix) else k
        if k.startswith("fc."):
            report.skipped[key] = "ImageNet classifier"
        else:
            source[k] = tensor
    return _copy_matching(net, source, report)


def load_init(net, kind: str, path: str | os.PathLike) -> InitReport:
    """Initialise ``net``'s backbone from a user file: ``kind`` is 'deca' or 'imagenet'."""
    loaders = {"deca": load_deca, "imagenet": load_imagenet}
    if kind not in loaders:
        raise InitWeightsError(f"unknown init {kind!r}: use 'deca' (deca_model.tar) or 'imagenet' "
                               f"(a torchvision ResNet .pth)")
    report = loaders[kind](net, path)
    log.info("%s", report)
    return report
