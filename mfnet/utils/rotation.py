"""Rotation conventions shared by the fit, the exports and the benchmarks (numpy; the differentiable
Rodrigues formula is :func:`mfnet.headmodel.lbs.axis_angle_to_matrix`)."""
from __future__ import annotations

import numpy as np

#: head frame (x left of the image, y up, face towards +z) <-> OpenCV camera (y down, looking along
#: +z): a camera in front of the face has ``R = FLIP`` (its own inverse)
FLIP = np.diag([1.0, -1.0, -1.0])
FLIP.setflags(write=False)


def euler_degrees(R: np.ndarray) -> np.ndarray:
    """(..., 3, 3) head rotations -> (..., 3) (yaw about y, pitch about x, roll about z) in degrees,
    for R = Ry(yaw) Rx(pitch) Rz(roll); roll, ``[..., 2]``, is the in-plane rotation of the photo."""
    R = np.asarray(R, np.float64)
    pitch = np.arcsin(np.clip(-R[..., 1, 2], -1.0, 1.0))
    yaw = np.arctan2(R[..., 0, 2], R[..., 2, 2])
    roll = np.arctan2(R[..., 1, 0], R[..., 1, 1])
    return np.degrees(np.stack([yaw, pitch, roll], -1))
