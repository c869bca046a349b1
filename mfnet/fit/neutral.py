"""The neutral head of a fit: the identity that explains the fitted face without expression.

Zeroing the expression and jaw of a fit is not a neutral face: the fit lets expression blendshapes
carry identity (a per-coefficient prior cannot tell a cheek bone from a cheek raise), so the
"expression-zero" mesh loses what the photos showed (real scans, NoW protocol, default preset:
0.88-1.15 mm against 0.75-1.01 mm for the fitted meshes; docs/benchmarks.md). :func:`neutral_shape` instead projects the fitted
face onto the identity space: the shape code whose expression-free, jaw-closed head is nearest (least
squares over the face region, ridge prior ``prior``) to the fitted head. For a neutral sitter that keeps
the fitted geometry; for a smiling one, what identity cannot express (the smile) is left out. It trusts
the fitted face: after a landmark-only fit (whose expression is landmark noise) it can be worse than
the expression-zero mesh (James, preset fast: 1.38 vs 1.19 mm).

    shape_n = argmin_b || S_face b - (X_fit - T)_face ||^2 + prior ||b||^2      (closed form)
"""
from __future__ import annotations

import torch

from ..types import HeadParams

__all__ = ["neutral_shape", "neutral_head"]


@torch.no_grad()
def neutral_shape(model, head: HeadParams, region: torch.Tensor | None = None, prior: float = 1e-6) -> torch.Tensor:
    """(S,) identity code for the neutral head of ``head`` (see the module doc).

    ``region``: vertex indices compared (default the model's ``face`` mask, else all vertices);
    ``prior``: ridge weight in m² per unit code² (1e-6: a code of 1 costs like 1 mm² of residual)."""
    dev = model.v_template.device
    idx = region if region is not None else model.masks.get("face")
    idx = torch.arange(model.num_vertices, device=dev) if idx is None else idx.to(dev)
    z = torch.zeros(1, 3, device=dev, dtype=model.v_template.dtype)
    fitted = model(head.shape[None].to(dev), head.expression[None].to(dev), head.pose(z)).vertices[0]
    A = model.shapedirs[idx, :, : model.n_shape].double().reshape(-1, model.n_shape)  # (3R, S)
    b = (fitted[idx] - model.v_template[idx]).double().reshape(-1)
    eye = torch.eye(model.n_shape, dtype=torch.float64, device=dev)
    return torch.linalg.solve(A.T @ A + prior * eye, A.T @ b).to(model.v_template.dtype)


@torch.no_grad()
def neutral_head(model, head: HeadParams, **kwargs) -> HeadParams:
    """``head`` with the projected identity (:func:`neutral_shape`), no expression, the jaw closed."""
    shape = neutral_shape(model, head, **kwargs)
    return HeadParams(shape, torch.zeros_like(head.expression), torch.zeros_like(head.jaw), head.neck, head.eyes)
