"""Landmark losses of the MFNet paper (§3.5.2–3.5.4), per view, on iBUG-68 points.

All take predicted ``pred (N, 68, 2)`` (the model's landmarks projected into each view) and
detected ``target (N, 68, 2)`` in the same pixel frame, plus optional per-point weights
``weights (N, 68)`` (visibility / confidence; the paper's MF_a face-mask restriction).
Distances are divided by ``norm (N,)`` (e.g. the face size in pixels) so the loss does not
depend on image resolution. Each returns a scalar: the mean over views.
"""
from __future__ import annotations

import torch

from ..headmodel.landmarks import EYELID_PAIRS, LIP_PAIRS


def _norm(norm: torch.Tensor | None, ref: torch.Tensor) -> torch.Tensor:
    if norm is None:
        return torch.ones(ref.shape[0], dtype=ref.dtype, device=ref.device)
    return torch.as_tensor(norm, dtype=ref.dtype, device=ref.device).reshape(-1)


def _weights(weights: torch.Tensor | None, ref: torch.Tensor) -> torch.Tensor:
    if weights is None:
        return torch.ones(ref.shape[:2], dtype=ref.dtype, device=ref.device)
    return weights.to(ref)


def single_view_landmark_loss(pred: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None = None,
                              norm: torch.Tensor | None = None) -> torch.Tensor:
    """Eq. 7: L1 distance between detected and re-projected landmarks of the same view."""
    w = _weights(weights, pred)
    d = (pred - target).abs().sum(-1) * w  # (N, 68)
    return (d.sum(1) / w.sum(1).clamp_min(1e-8) / _norm(norm, pred)).mean()


def _pair_offset_loss(pred, target, pairs, weights, norm):
    i = torch.tensor([a for a, _ in pairs], device=pred.device)
    j = torch.tensor([b for _, b in pairs], device=pred.device)
    d_pred = pred[:, i] - pred[:, j]
    d_tgt = target[:, i] - target[:, j]
    w = _weights(weights, pred)
    wp = w[:, i] * w[:, j]
    err = (d_tgt - d_pred).abs().sum(-1) * wp
    return (err.sum(1) / wp.sum(1).clamp_min(1e-8) / _norm(norm, pred)).mean()


def eye_loss(pred: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None = None,
             norm: torch.Tensor | None = None) -> torch.Tensor:
    """Eq. 8: relative upper/lower eyelid offsets, detected vs re-projected (eye closure)."""
    return _pair_offset_loss(pred, target, EYELID_PAIRS, weights, norm)


def lip_loss(pred: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None = None,
             norm: torch.Tensor | None = None) -> torch.Tensor:
    """Eq. 9: relative upper/lower lip offsets (mouth opening), inner and outer lips."""
    return _pair_offset_loss(pred, target, LIP_PAIRS, weights, norm)


def regularisation(shape: torch.Tensor, expression: torch.Tensor, w_shape: float = 1.0,
                   w_expression: float = 1.0) -> torch.Tensor:
    """Eq. 10: squared L2 norm of the shape and expression codes (a Gaussian prior)."""
    return w_shape * (shape ** 2).sum() + w_expression * (expression ** 2).sum()
