"""Checks of a finished fit that become the reconstruction's warnings: a view the shared head
explains much worse than the others, photos that seem to show different people, a head rolled
beyond ±45° (a photo stored sideways)."""
from __future__ import annotations

import warnings

import numpy as np
import torch

from ..types import Views


def consistency_warnings(fitted: np.ndarray, detected: np.ndarray, views: Views, ratio: float = 3.0,
                          min_rel: float = 0.04) -> list[str]:
    """Warn about views the shared head explains much worse than the others (another person in
    that photo, or a bad detection): landmark error > ``ratio`` x the median of the other views and
    > ``min_rel`` of the face size."""
    if len(views) < 2:
        return []
    size = np.ptp(detected, axis=1).max(-1)  # (N,) face size in original pixels
    rel = np.linalg.norm(fitted - detected, axis=-1).mean(-1) / np.maximum(size, 1e-6)
    out = []
    for i, r in enumerate(rel):
        others = np.median(np.delete(rel, i))
        if r > min_rel and r > ratio * others:
            msg = (f"{views.names[i]}: the fitted head explains this view much worse than the others "
                   f"(landmark error {100 * r:.1f}% of the face size vs {100 * others:.1f}%): is it the same "
                   "person, and is the face detected correctly?")
            warnings.warn(msg, stacklevel=3)
            out.append(msg)
    return out


def identity_warnings(model, views: Views) -> list[str]:
    from .identity import RATIO_LIMIT, identity_consistency

    ratio = identity_consistency(model, views)
    if ratio <= RATIO_LIMIT:
        return []
    msg = (f"the photos may show different people: one shared head explains their landmarks {ratio:.2f}x worse "
           f"than a head per photo (about 1.0 for one person): {', '.join(map(str, views.names))}")
    warnings.warn(msg, stacklevel=3)
    return [msg]


def roll_warnings(rotation: torch.Tensor, names, limit_deg: float = 45.0) -> list[str]:
    """Warn about views whose fitted head roll (in-plane rotation) is beyond ``limit_deg``: a photo
    stored on its side that detection could not turn upright, or a wrong detection."""
    from ..headmodel.lbs import axis_angle_to_matrix
    from ..utils.rotation import euler_degrees

    roll = euler_degrees(axis_angle_to_matrix(rotation.detach().reshape(-1, 3).double().cpu()).numpy())[:, 2]
    out = []
    for name, r in zip(names, roll.tolist()):
        if abs(r) > limit_deg:
            msg = (f"{name}: the fitted head is rolled by {r:.0f}° in this photo: is the photo stored sideways, "
                   "or is the face detected wrongly? Check overlay and landmarks")
            warnings.warn(msg, stacklevel=3)
            out.append(msg)
    return out
