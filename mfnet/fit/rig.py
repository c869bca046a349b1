"""Camera rigs of the fit: each owns its parameters, their initialisation, the cameras the losses
project with and the per-view records it hands on.

* :class:`WeakPerspectiveRig` — uncalibrated photos: a head rotation and a weak-perspective
  scale/translation per view (MFNet §3.5), seen from one estimated finite distance (the inverse
  distance ``k``, shared by the views: :class:`~mfnet.render.cameras.WeakPerspectiveCameras`).
* :class:`CalibratedRig` — known OpenCV cameras (``--cameras``): one world head pose (rotation
  about the root joint + translation) seen by every fixed perspective camera.
"""
from __future__ import annotations

import warnings

import cv2
import torch

from ..errors import MfnetError
from ..headmodel.lbs import axis_angle_to_matrix, matrix_to_axis_angle
from ..headmodel.model import HeadModel
from ..render.cameras import PerspectiveCameras, WeakPerspectiveCameras
from ..types import HeadParams, ViewParams, Views
from .config import DistanceOptions, LearningRates
from ..ibug import INNER
from ..utils.rotation import FLIP
from .init import init_rotations, weak_perspective_lsq


def _landmarks(model: HeadModel, head: HeadParams, rotations: torch.Tensor, translation=None,
               dynamic_contour: bool = True) -> torch.Tensor:
    """(N, L, 3) landmarks of ``head`` posed with ``rotations (N, 3)`` (+ ``translation (N, 3)``)."""
    return model(*head.codes(), head.pose(rotations), translation=translation,
                 dynamic_contour=dynamic_contour, landmarks_only=True).landmarks


def _plausible_focal(views: Views, scale: torch.Tensor, max_inv_distance: float) -> torch.Tensor:
    """(N,) the views' focal lengths in half-crop units, NaN where unknown or where, with the face's size
    in the photo (``scale``), it would put the camera nearer than ``1 / max_inv_distance`` (a wrong
    EXIF block or ``--focal``: warned and ignored, the view's distance is then estimated)."""
    focal = (views.focal_px / (views.size / 2.0)).to(scale)
    k = scale / focal
    bad = torch.isfinite(focal) & ~(k <= max_inv_distance)
    for i in torch.nonzero(bad).flatten().tolist():
        warnings.warn(f"{views.names[i]}: its focal length (EXIF or --focal) would put the camera "
                      f"{100.0 / float(k[i]):.0f} cm from the head; ignored, the distance is estimated instead "
                      f"(check --focal)", stacklevel=4)
    return torch.where(bad, torch.full_like(focal, float("nan")), focal)


class WeakPerspectiveRig:
    """Per view: head rotation (N, 3) axis-angle, log scale (N,), image-plane translation (N, 2)
    crop-normalised; for all views: the inverse camera distance ``inv_distance`` (1,), 1/model
    units, estimated within [0, ``max_inv_distance``] when ``estimate_distance`` (else held) by the
    stages that move the ``distance`` group (:func:`distance_groups`).

    ``focal`` (N,): each camera's focal length in units of half the crop side (NaN where unknown). A
    pinhole at distance D of focal length f shows the plane z = 0 at the scale f / D, so a view with
    a known focal length has its own inverse distance ``k = scale / focal``, in every stage; the shared
    ``inv_distance`` serves the others."""

    def __init__(self, rotation: torch.Tensor, log_scale: torch.Tensor, translation: torch.Tensor,
                 inv_distance: float | torch.Tensor = 0.0, estimate_distance: bool = False,
                 max_inv_distance: float = 3.0, focal: torch.Tensor | None = None):
        self.rotation = rotation.detach().clone().requires_grad_()
        self.log_scale = log_scale.detach().clone().requires_grad_()
        self.translation = translation.detach().clone().requires_grad_()
        self.focal = None
        if focal is not None and bool(torch.isfinite(focal).any()):
            self.focal = focal.to(rotation).reshape(-1)
        known_all = self.focal is not None and bool(torch.isfinite(self.focal).all())
        k = torch.as_tensor(inv_distance, dtype=rotation.dtype, device=rotation.device).reshape(-1)[:1].clone()
        self.inv_distance = k.requires_grad_(estimate_distance and not known_all)
        self.max_inv_distance = float(max_inv_distance)

    @classmethod
    def initialise(cls, model: HeadModel, views: Views, head: HeadParams, init: ViewParams | None = None,
                   dynamic_contour: bool = True, distance: DistanceOptions | None = None) -> "WeakPerspectiveRig":
        """From ``init`` (e.g. the network's prediction) or from the landmarks: rotations by PnP on the
        mean head, then the least-squares weak-perspective scale/translation; the inverse distance
        starts at ``distance.start`` (0, orthographic, without ``distance``)."""
        dev, dt = model.v_template.device, model.v_template.dtype
        distance = distance or DistanceOptions(start=0.0, estimate=False)
        with torch.no_grad():
            if init is not None:
                rot, s, t = init.rotation.to(dev, dt), init.scale.to(dev, dt), init.trans.to(dev, dt)
            else:
                mean = model(*(c[:1] for c in head.codes())).landmarks[0]  # per-view heads start alike
                rot = init_rotations(mean, views.landmarks, views.size).to(dev, dt)
                posed = _landmarks(model, head, rot, dynamic_contour=dynamic_contour)
                s, t = weak_perspective_lsq(posed, views.landmarks, views.landmark_weights, views.size)
        use = distance.focal and views.focal_px is not None and (len(views) > 1 or distance.focal_single_view)
        focal = _plausible_focal(views, s, distance.max) if use else None
        return cls(rot, s.log(), t, distance.start, distance.estimate, distance.max, focal)

    def param_groups(self, lr: LearningRates) -> list[dict]:
        return [{"params": [self.rotation], "lr": lr.rotation}, {"params": [self.log_scale], "lr": lr.scale},
                {"params": [self.translation], "lr": lr.translation}]

    def distance_groups(self, lr: LearningRates) -> list[dict]:
        """The inverse distance's parameter group (none when it is held)."""
        return [{"params": [self.inv_distance], "lr": lr.inv_distance}] if self.inv_distance.requires_grad else []

    @torch.no_grad()
    def constrain(self) -> None:
        """Keep the camera in front of the head: inverse distance within [0, ``max_inv_distance``]."""
        self.inv_distance.clamp_(0.0, self.max_inv_distance)

    def _inv_distances(self, detach: bool) -> torch.Tensor | None:
        """(N,) the inverse distance per view; None when it is 0 and held (MFNet's orthographic cameras)
        and no focal length is known."""
        k = self.inv_distance
        if self.focal is None and not k.requires_grad and not bool(k.ne(0).any()):
            return None
        k = (k.detach() if detach else k).expand(self.rotation.shape[0])
        if self.focal is None:
            return k
        scale = self.log_scale.detach().exp() if detach else self.log_scale.exp()
        known = torch.isfinite(self.focal)
        return torch.where(known, scale / torch.where(known, self.focal, torch.ones_like(self.focal)), k)

    def rotations(self) -> torch.Tensor:
        """(N, 3) the head's rotation as each camera sees it."""
        return self.rotation

    def translations(self) -> torch.Tensor | None:
        """(N, 3) translation applied to the posed head, or None."""
        return None

    def cameras(self, detach: bool = False) -> WeakPerspectiveCameras:
        s, t = self.log_scale.exp(), self.translation
        k = self._inv_distances(detach)
        return WeakPerspectiveCameras(s.detach(), t.detach(), k) if detach else WeakPerspectiveCameras(s, t, k)

    def view_params(self, model: HeadModel, head: HeadParams, size: int, dynamic_contour: bool = True) -> ViewParams:
        with torch.no_grad():
            k = self._inv_distances(detach=True)
            return ViewParams(self.rotation.detach(), self.log_scale.detach().exp(), self.translation.detach(),
                              inv_distance=None if k is None else k.clone())

    def fitted_landmarks(self, model: HeadModel, head: HeadParams, posed_landmarks: torch.Tensor,
                         size: int) -> torch.Tensor:
        """(N, L, 2) crop pixels: the landmarks of the head posed per view (``posed_landmarks``
        (N, L, 3), rotated by :meth:`view_params`' rotations) through these cameras."""
        with torch.no_grad():
            return self.cameras(detach=True).project(posed_landmarks, (size, size))[..., :2]


class CalibratedRig:
    """Fixed perspective cameras (in crop pixels) and one head pose in their world frame: rotation
    (1, 3) about the model's root joint and translation (3,), model units."""

    def __init__(self, cameras: PerspectiveCameras, rotation: torch.Tensor, translation: torch.Tensor):
        self.fixed = cameras
        self.rotation = rotation.detach().clone().requires_grad_()
        self.translation = translation.detach().clone().requires_grad_()

    @classmethod
    def initialise(cls, model: HeadModel, views: Views, head: HeadParams, cameras: PerspectiveCameras,
                   ) -> "CalibratedRig":
        """Head pose from PnP in the view with the most frontal face, moved into the world frame."""
        dev, dt = model.v_template.device, model.v_template.dtype
        cameras = cameras.to(dev, dt)
        with torch.no_grad():
            out = model(head.shape[None], head.expression[None])
        X = out.landmarks[0].double().cpu().numpy()[list(INNER)]
        i = int(torch.argmax(views.landmark_weights.sum(1)))
        K = cameras.K[i].double().cpu().numpy()
        uv = views.landmarks[i].double().cpu().numpy()[list(INNER)] - 0.5  # OpenCV pixel centres
        ok, rvec, tvec = cv2.solvePnP(X, uv, K, None, flags=cv2.SOLVEPNP_EPNP)
        if not ok:
            raise MfnetError("could not place the head in the calibrated rig from the landmarks")
        R_pnp = cv2.Rodrigues(rvec)[0]
        Rc, tc = cameras.R[i].double().cpu().numpy(), cameras.t[i].double().cpu().numpy()
        R_world = Rc.T @ R_pnp
        T_world = Rc.T @ (tvec[:, 0] - tc)
        J0 = out.joints[0, 0].double().cpu().numpy()
        transl = T_world - J0 + R_world @ J0  # the model rotates about its root joint J0
        rot = torch.as_tensor(cv2.Rodrigues(R_world)[0][:, 0], device=dev, dtype=dt)[None]
        return cls(cameras, rot, torch.as_tensor(transl, device=dev, dtype=dt))

    def param_groups(self, lr: LearningRates) -> list[dict]:
        return [{"params": [self.rotation], "lr": lr.rotation}, {"params": [self.translation], "lr": lr.translation}]

    def distance_groups(self, lr: LearningRates) -> list[dict]:
        """None: the cameras are fixed."""
        return []

    def constrain(self) -> None:
        """Nothing to keep in range: the cameras are fixed."""

    def rotations(self) -> torch.Tensor:
        return self.rotation.expand(len(self.fixed), 3)

    def translations(self) -> torch.Tensor:
        return self.translation.expand(len(self.fixed), 3)

    def cameras(self, detach: bool = False) -> PerspectiveCameras:
        return self.fixed

    def view_params(self, model: HeadModel, head: HeadParams, size: int, dynamic_contour: bool = True) -> ViewParams:
        """Weak-perspective stand-ins per view (for overlays and exports): the head rotation seen by
        each camera and the scale/translation that best match the perspective landmarks."""
        with torch.no_grad():
            rot = self.rotation.detach()
            flip = torch.as_tensor(FLIP, dtype=rot.dtype, device=rot.device)
            view_rot = matrix_to_axis_angle(flip @ self.fixed.R @ axis_angle_to_matrix(rot)[0])  # (n, 3)
            world = _landmarks(model, head, self.rotations().detach(), self.translations().detach(), dynamic_contour)
            posed = _landmarks(model, head, view_rot, dynamic_contour=dynamic_contour)
            target = self.fixed.project(world, (size, size))[..., :2]
            s, t = weak_perspective_lsq(posed, target, torch.ones_like(target[..., 0]), size)
        return ViewParams(view_rot, s, t)

    def fitted_landmarks(self, model: HeadModel, head: HeadParams, posed_landmarks: torch.Tensor,
                         size: int) -> torch.Tensor:
        """(N, L, 2) crop pixels: the head as placed in the rig, through the real (perspective)
        cameras (``posed_landmarks``, the weak-perspective stand-in's, are not used)."""
        n = len(self.fixed)
        with torch.no_grad():
            world = model(head.shape.expand(n, -1), head.expression.expand(n, -1),
                          head.pose(self.rotations().detach()), translation=self.translations().detach()).landmarks
            return self.fixed.project(world, (size, size))[..., :2]

    def __len__(self) -> int:
        return len(self.fixed)
