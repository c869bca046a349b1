"""Held-out evaluation of a network on synthetic subjects with known ground truth.

``shape_mm``: identity only — the predicted and true shape codes, both with neutral expression and
pose, compared with :func:`mfnet.evaluate.synthetic.vertex_error_mm` (pupil-normalised, rigidly
aligned, face region). ``full_mm``: shape + expression. ``mean_face_mm``: the same error for the
model's mean face (what an uninformative predictor scores). ``rotation_deg``: geodesic error of the
per-view head rotations.
"""
from __future__ import annotations

import numpy as np
import torch

from ..evaluate.synthetic import vertex_error_mm
from ..headmodel.lbs import axis_angle_to_matrix


def _region(model) -> np.ndarray | None:
    face = model.masks.get("face")
    return None if face is None else face.cpu().numpy()


@torch.no_grad()
def evaluate_synthetic(net, model, dataset, batch_size: int = 8) -> dict[str, float]:
    """Mean errors of ``net`` over every item of a :class:`~mfnet.data.datasets.SyntheticMultiView`."""
    net = net.module if hasattr(net, "module") else net
    was_training = net.training
    net.eval()
    dev = next(net.parameters()).device
    mdev, mdt = model.v_template.device, model.v_template.dtype
    region = _region(model)
    res = {"shape_mm": [], "full_mm": [], "mean_face_mm": [], "rotation_deg": []}
    zero_e = torch.zeros(1, model.n_expr, device=mdev, dtype=mdt)
    mean = model(torch.zeros(1, model.n_shape, device=mdev, dtype=mdt), zero_e)
    try:
        for start in range(0, len(dataset), batch_size):
            items = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
            out = net(torch.stack([it["images"] for it in items]).to(dev))
            for b, it in enumerate(items):
                gt_s = it["shape"][None].to(mdev, mdt)
                gt_e = it["expression"][None].to(mdev, mdt)
                ps, pe = out.shape[b:b + 1].to(mdev, mdt), out.expression[b:b + 1].to(mdev, mdt)
                gt_n, pr_n = model(gt_s, zero_e), model(ps, zero_e)
                gt_f, pr_f = model(gt_s, gt_e), model(ps, pe)

                def err(p, g):
                    return vertex_error_mm(p.vertices[0].cpu().numpy(), g.vertices[0].cpu().numpy(),
                                           p.landmarks[0].cpu().numpy(), g.landmarks[0].cpu().numpy(), region).mean_mm

                res["shape_mm"].append(err(pr_n, gt_n))
                res["full_mm"].append(err(pr_f, gt_f))
                res["mean_face_mm"].append(err(mean, gt_n))
                R_gt = axis_angle_to_matrix(it["view_rotations"].to(out.rotation))
                rel = out.rotation[b].transpose(-1, -2) @ R_gt
                cos = ((rel.diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2).clamp(-1, 1)
                res["rotation_deg"].extend(torch.rad2deg(torch.acos(cos)).tolist())
    finally:
        net.train(was_training)
    return {k: float(np.mean(v)) for k, v in res.items()}
