"""Calibrated rigs: known OpenCV cameras (K, R, t) per view, full perspective.

``cams.json``::

    {"units": "m",                       # or "mm" (translations are converted to metres)
     "cameras": [{"image": "front.jpg",  # matched to the photos by file name (else by order)
                  "K": [[fx, 0, cx], [0, fy, cy], [0, 0, 1]],
                  "R": [[...], [...], [...]], "t": [tx, ty, tz]}, ...]}

OpenCV convention: ``x ~ K (R X + t)`` in original-photo pixels (pixel centres at integers), X in
the rig's world frame. The head then has one world pose (rotation about its root joint +
translation) shared by all views instead of a free weak-perspective camera per view.
"""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import torch

from ..errors import MfnetError
from ..headmodel.lbs import axis_angle_to_matrix, matrix_to_axis_angle
from ..render.cameras import PerspectiveCameras
from ..types import ViewParams, Views
from .fitter import MultiViewFitter
from .init import INNER, weak_perspective_lsq


class CameraFileError(MfnetError):
    """A cameras.json file is missing, malformed or does not match the photos."""


def load_cameras_json(path: str | Path, names: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(K (N,3,3), R (N,3,3), t (N,3) metres) in the order of ``names`` (the photos kept)."""
    path = Path(path)
    if not path.exists():
        raise CameraFileError(f"{path}: no such cameras file (see `mfnet reconstruct --help` for its format)")
    try:
        doc = json.loads(path.read_text())
        units = str(doc.get("units", "m"))
        cams = doc["cameras"]
        scale = {"m": 1.0, "mm": 1e-3, "cm": 1e-2}[units]
        entries = [(str(c.get("image", "")), np.asarray(c["K"], np.float64).reshape(3, 3),
                    np.asarray(c["R"], np.float64).reshape(3, 3), np.asarray(c["t"], np.float64).reshape(3) * scale)
                   for c in cams]
    except (ValueError, KeyError, TypeError) as exc:
        raise CameraFileError(f"{path}: not a valid cameras file ({exc!r}); expected "
                              '{"units": "m", "cameras": [{"image": ..., "K": 3x3, "R": 3x3, "t": [3]}, ...]}') from None
    by_name = {Path(e[0]).name: e for e in entries if e[0]}
    picked = []
    for i, n in enumerate(names):
        e = by_name.get(Path(n).name)
        if e is None:
            if len(entries) != len(names):
                raise CameraFileError(f"{path}: no camera for {Path(n).name} and {len(entries)} cameras for "
                                      f"{len(names)} photos: name each camera's image, or list one per photo in order")
            e = entries[i]
        picked.append(e)
    for _, _, R, _ in picked:
        if not np.allclose(R @ R.T, np.eye(3), atol=1e-4) or np.linalg.det(R) < 0:
            raise CameraFileError(f"{path}: a camera's R is not a rotation matrix")
    return (np.stack([p[1] for p in picked]), np.stack([p[2] for p in picked]), np.stack([p[3] for p in picked]))


def crop_cameras(K: np.ndarray, R: np.ndarray, t: np.ndarray, views: Views) -> PerspectiveCameras:
    """The rig's cameras expressed in each view's crop (renderer pixels)."""
    to_crop = np.stack([np.linalg.inv(np.vstack([m, [0, 0, 1]])) for m in views.crop_to_original])
    return PerspectiveCameras(torch.as_tensor(to_crop @ K), torch.as_tensor(R), torch.as_tensor(t))


class CalibratedFitter(MultiViewFitter):
    """:class:`MultiViewFitter` with fixed perspective cameras and one shared head pose."""

    def __init__(self, model, cameras: PerspectiveCameras, config=None, fixed_shape=None, progress=True):
        super().__init__(model, config, fixed_shape=fixed_shape, progress=progress)
        dev, dt = model.v_template.device, model.v_template.dtype
        self.rig = cameras.to(dev, dt)

    def _init_camera_params(self, views: Views, shape, expr, jaw, init) -> dict[str, torch.Tensor]:
        """Head pose from PnP in the view with the most frontal face, moved into the world frame."""
        m = self.model
        out = m(shape[None], expr[None])
        X = out.landmarks[0].double().cpu().numpy()[INNER]
        i = int(torch.argmax(views.landmark_weights.sum(1)))
        K = self.rig.K[i].double().cpu().numpy()
        uv = views.landmarks[i].double().cpu().numpy()[INNER] - 0.5  # OpenCV pixel centres
        ok, rvec, tvec = cv2.solvePnP(X, uv, K, None, flags=cv2.SOLVEPNP_EPNP)
        if not ok:
            raise MfnetError("could not place the head in the calibrated rig from the landmarks")
        R_pnp = cv2.Rodrigues(rvec)[0]
        Rc, tc = self.rig.R[i].double().cpu().numpy(), self.rig.t[i].double().cpu().numpy()
        R_world = Rc.T @ R_pnp
        T_world = Rc.T @ (tvec[:, 0] - tc)
        J0 = out.joints[0, 0].double().cpu().numpy()
        transl = T_world - J0 + R_world @ J0  # the model rotates about its root joint J0
        dev, dt = m.v_template.device, m.v_template.dtype
        rot = torch.as_tensor(cv2.Rodrigues(R_world)[0][:, 0], device=dev, dtype=dt)[None]
        return {"rot": rot, "transl": torch.as_tensor(transl, device=dev, dtype=dt)}

    def _cameras(self, params, detach: bool = False):
        return self.rig

    def _view_rotations(self, params, n: int) -> torch.Tensor:
        return params["rot"].expand(n, 3)

    def _translation(self, params, n: int) -> torch.Tensor:
        return params["transl"].expand(n, 3)

    def _view_params(self, params, n: int) -> ViewParams:
        """Weak-perspective stand-ins per view (for overlays and exports): the head rotation seen by
        each camera and the scale/translation that best match the perspective landmarks."""
        flip = torch.diag(torch.tensor([1.0, -1.0, -1.0], dtype=params["rot"].dtype, device=params["rot"].device))
        view_rot = matrix_to_axis_angle(flip @ self.rig.R @ axis_angle_to_matrix(params["rot"])[0])  # (n, 3)
        head = (params["shape"], params["expr"], params["jaw"])
        world = self._forward(*head, self._view_rotations(params, n), landmarks_only=True,
                              translation=self._translation(params, n)).landmarks
        posed = self._forward(*head, view_rot, landmarks_only=True).landmarks
        size = self._crop_size
        target = self.rig.project(world, (size, size))[..., :2]
        s, t = weak_perspective_lsq(posed, target, torch.ones_like(target[..., 0]), size)
        return ViewParams(view_rot, s, t)

    def fit(self, views: Views, init=None):
        """Fit (a network ``init`` is not used: the rig fixes the cameras)."""
        self._crop_size = views.size
        return super().fit(views, init=None)  # camera_params: head 'rot' (1, 3) and 'transl' (3,) in the rig
