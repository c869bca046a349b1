"""Choices shared by the command line, the one-call API and training, written once (light: no torch
until a device is resolved)."""
from __future__ import annotations

from ..errors import MfnetError

#: photos of one person that one reconstruction takes at the most
MAX_VIEWS = 16
#: how a reconstruction is made: optimisation, the network's prediction, or the prediction refined
METHODS = ("fit", "net", "net+fit")


def check_method(method: str) -> str:
    """``method`` if it is one of :data:`METHODS`, else a one-line :class:`MfnetError`."""
    if method not in METHODS:
        raise MfnetError(f"unknown method {method!r}: use 'fit', 'net' or 'net+fit'")
    return method


def resolve_device(device: str | None, option: str = "--device"):
    """A ``torch.device`` for ``'cpu'``, ``'cuda'``, ``'cuda:N'`` or ``'auto'`` / ``None`` (CUDA when
    available); asking for CUDA on a machine without it is a one-line :class:`MfnetError` that names
    ``option`` (the command-line option or config key the device came from)."""
    import torch

    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise MfnetError(f"{option} {device}: CUDA is not available on this machine; use {option} cpu")
    return torch.device(device)
