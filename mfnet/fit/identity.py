"""Are all photos of one person? One shared head against one head per photo.

Each photo alone can be explained by a head of its own; photos of one person are explained by one
shared head almost as well (only the detector's noise separates them), photos of different people
are not: the shared head's landmark error grows. :func:`identity_consistency` fits the landmarks
jointly and per photo (in one batched fit: the shared head and one head per photo, each moving as
in a fit of its own), with a weak prior so that identity shows, and compares the mean errors
(normalised by face size), with the detector-calibrated landmark embedding the fit uses. Measured
(fast landmark fits, prior 1e-4): one person 1.02 (the real James pair), 1.26-1.29 (synthetic renders
at -30/0/30°); different people 1.38 (James + the astronaut photo), 1.46-1.55 (three synthetic
identities). The warning fires above 1.33; the margin is thin, so it is a hint to check, not a verdict.
"""
from __future__ import annotations

import numpy as np
import torch

from ..types import Views

RATIO_LIMIT = 1.33


def landmark_residuals(model, views: Views, config, heads: list[int] | None = None) -> np.ndarray:
    """(N,) mean landmark error of a landmark-only fit of ``views``, in face sizes (weighted by
    visibility); ``heads``: view i shows head ``heads[i]`` (:class:`~mfnet.fit.fitter.MultiViewFitter`)."""
    from .fitter import MultiViewFitter

    l2 = MultiViewFitter(model, config, progress=False, heads=heads).fit(views).landmarks2d
    lm = views.landmarks.to(l2)
    w = views.landmark_weights.to(l2)
    size = (lm.amax(1) - lm.amin(1)).amax(-1)
    err = ((l2 - lm).norm(dim=-1) * w).sum(1) / w.sum(1).clamp_min(1e-9) / size.clamp_min(1e-9)
    return err.cpu().numpy()


def identity_consistency(model, views: Views) -> float:
    """Shared-head / per-photo-head landmark error ratio (about 1 for one person; see module doc)."""
    from .config import get_config

    # weak-perspective cameras in both fits: a camera distance per single-photo fit would be one more
    # freedom the shared fit lacks (the limits of mfnet.fit.checks were measured without it)
    cfg = get_config("fast", weights={"reg_shape": 1e-4, "reg_shape_single_view": 1e-4, "reg_expression": 1e-4},
                     distance={"start": 0.0, "estimate": False})
    n = len(views)
    # one batched fit: the photos once with a shared head (head 0), then each with its own head
    err = landmark_residuals(model, views.select(list(range(n)) * 2), cfg, heads=[0] * n + list(range(1, n + 1)))
    joint, alone = err[:n], err[n:]
    return float(joint.mean() / max(alone.mean(), 1e-12))
