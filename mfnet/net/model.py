"""The MFNet regressor (paper §3.1, §3.3): one shared-weight ResNet per view, fused view features.

Every view goes through the same torchvision ResNet (``weights=None``: weights only ever come from
files the user gives, see :mod:`mfnet.net.init`). The per-view features are fused into ONE set of
subject codes — shape β, expression ψ and jaw pose — while a per-view head regresses what differs
between photos: the head rotation (continuous 6D), a weak-perspective camera (scale, trans), SH
lighting (9×3) and an albedo / texture code.

Fusion:

* ``'concat'`` — the paper: features of a fixed number of views are concatenated (view order
  matters, e.g. [front, left, right]) and fed to fully connected layers;
* ``'meanmax'`` — per-view embeddings pooled by mean and max over the present views;
* ``'attention'`` — per-view embeddings pooled by learned softmax weights.

The last two are invariant to the view order and accept any number of views. ``view_mask``
(B, N) marks present views; during training ``view_dropout`` hides random views from the fusion
(never all of them) so the shared codes do not rely on any single photo.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from ..render.shading import frontal_light
from ..errors import MfnetError
from ..headmodel.lbs import axis_angle_to_matrix, matrix_to_axis_angle, rot6d_to_matrix
from ..types import HeadParams, ViewParams

BACKBONES = {"resnet18": 512, "resnet34": 512, "resnet50": 2048}
FUSIONS = ("concat", "meanmax", "attention")
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
_ROT6D_IDENTITY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


class NetConfigError(MfnetError):
    """The network was asked for something its configuration cannot do."""


@dataclass
class NetOutput:
    """Batched network output for B subjects of N views each."""

    shape: torch.Tensor  # (B, S)
    expression: torch.Tensor  # (B, E)
    jaw: torch.Tensor  # (B, 3) axis-angle
    rotation: torch.Tensor  # (B, N, 3, 3) head rotation in each view
    scale: torch.Tensor  # (B, N)
    trans: torch.Tensor  # (B, N, 2)
    light: torch.Tensor  # (B, N, 9, 3)
    texture: torch.Tensor  # (B, N, T) albedo code

    def pose_matrices(self) -> torch.Tensor:
        """(B*N, 5, 3, 3) FLAME pose [global=view rotation, neck=I, jaw, eye_l=I, eye_r=I]."""
        B, N = self.scale.shape
        eye = torch.eye(3, dtype=self.rotation.dtype, device=self.rotation.device)
        jaw = axis_angle_to_matrix(self.jaw)[:, None].expand(B, N, 3, 3)
        eyes = eye.expand(B, N, 3, 3)
        return torch.stack([self.rotation, eyes, jaw, eyes, eyes], dim=2).reshape(B * N, 5, 3, 3)

    def head_params(self, b: int = 0) -> HeadParams:
        return HeadParams(self.shape[b].detach(), self.expression[b].detach(), self.jaw[b].detach())

    def view_params(self, b: int = 0) -> ViewParams:
        return ViewParams(matrix_to_axis_angle(self.rotation[b].detach()), self.scale[b].detach(),
                          self.trans[b].detach(), self.light[b].detach())


def _small_linear(n_in: int, n_out: int, bias: torch.Tensor | None = None, std: float = 1e-3) -> nn.Linear:
    """Output layer whose untrained prediction is ``bias`` (the prior), with small random slopes."""
    lin = nn.Linear(n_in, n_out)
    nn.init.normal_(lin.weight, std=std)
    with torch.no_grad():
        lin.bias.copy_(bias if bias is not None else torch.zeros(n_out))
    return lin


def _masked_mean(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    w = m.to(x.dtype)[..., None]
    return (x * w).sum(1) / w.sum(1).clamp_min(1.0)


class MFNet(nn.Module):
    """Multi-view FLAME-parameter regressor. ``forward(images (B, N, 3, H, W) in [0, 1])``.

    Args:
        n_shape, n_expr: code sizes of the head model the network drives.
        backbone: 'resnet50' (paper), 'resnet34' or 'resnet18'.
        fusion: 'concat' (paper, exactly ``n_views`` views), 'meanmax' or 'attention' (any count).
        n_views: views per subject for 'concat' (and the default elsewhere).
        tex_dim: size of the per-view albedo code.
        hidden: width of the fully connected layers.
        image_size: images are resized to this before the backbone.
        view_dropout: probability of hiding each view from the fusion while training.
        expression_bounds: (lo, hi) for blendshape activations (ICT), None for PCA codes (FLAME).
        camera_prior: (scale, tx, ty) of the untrained prediction (a head filling the crop).
    """

    def __init__(self, n_shape: int, n_expr: int, backbone: str = "resnet50", fusion: str = "concat",
                 n_views: int = 3, tex_dim: int = 50, hidden: int = 512, image_size: int = 224,
                 view_dropout: float = 0.0, expression_bounds: tuple[float, float] | None = None,
                 camera_prior: tuple[float, float, float] = (5.0, 0.0, 0.0)):
        super().__init__()
        if backbone not in BACKBONES:
            raise NetConfigError(f"unknown backbone {backbone!r}: choose from {', '.join(BACKBONES)}")
        if fusion not in FUSIONS:
            raise NetConfigError(f"unknown fusion {fusion!r}: choose from {', '.join(FUSIONS)}")
        self.config = dict(n_shape=int(n_shape), n_expr=int(n_expr), backbone=backbone, fusion=fusion,
                           n_views=int(n_views), tex_dim=int(tex_dim), hidden=int(hidden),
                           image_size=int(image_size), view_dropout=float(view_dropout),
                           expression_bounds=None if expression_bounds is None else
                           [float(expression_bounds[0]), float(expression_bounds[1])],
                           camera_prior=[float(c) for c in camera_prior])
        self.n_shape, self.n_expr, self.n_views, self.tex_dim = int(n_shape), int(n_expr), int(n_views), int(tex_dim)
        self.fusion, self.image_size, self.view_dropout = fusion, int(image_size), float(view_dropout)
        self.expression_bounds = self.config["expression_bounds"]
        feat = BACKBONES[backbone]
        self.encoder = getattr(torchvision.models, backbone)(weights=None)
        self.encoder.fc = nn.Identity()
        self.register_buffer("pixel_mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

        # per-view head: rotation 6D, log-scale, trans 2, light 27, texture
        self.n_view_out = 6 + 1 + 2 + 27 + self.tex_dim
        s0, tx, ty = self.config["camera_prior"]
        self.register_buffer("log_scale_prior", torch.tensor(float(s0)).log(), persistent=False)
        view_bias = torch.cat([torch.tensor(_ROT6D_IDENTITY), torch.zeros(1), torch.tensor([tx, ty]),
                               frontal_light().reshape(-1), torch.zeros(self.tex_dim)])
        self.view_head = nn.Sequential(nn.Linear(feat, hidden), nn.ReLU(inplace=True),
                                       _small_linear(hidden, self.n_view_out, view_bias))
        # shared head: shape, expression, jaw
        n_shared = self.n_shape + self.n_expr + 3
        shared_bias = torch.zeros(n_shared)
        if self.expression_bounds is not None:
            shared_bias[self.n_shape:self.n_shape + self.n_expr] = -0.1  # softplus(-1)/10 ~ 0.03 activation
        if fusion == "concat":
            self.fuse = nn.Sequential(nn.Linear(feat * self.n_views, hidden), nn.ReLU(inplace=True))
        else:
            self.embed = nn.Sequential(nn.Linear(feat, hidden), nn.ReLU(inplace=True))
            if fusion == "attention":
                self.attn = nn.Linear(hidden, 1)
            self.fuse = nn.Sequential(nn.Linear(hidden * (2 if fusion == "meanmax" else 1), hidden),
                                      nn.ReLU(inplace=True))
        self.shared_head = _small_linear(hidden, n_shared, shared_bias)

    # ------------------------------------------------------------------ pieces
    def features(self, images: torch.Tensor) -> torch.Tensor:
        """(B, N, 3, H, W) in [0, 1] -> (B, N, F) backbone features (one batched pass over all views)."""
        B, N = images.shape[:2]
        x = images.reshape(B * N, *images.shape[2:])
        if x.shape[-1] != self.image_size or x.shape[-2] != self.image_size:
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False,
                              antialias=x.shape[-1] > self.image_size)
        x = (x - self.pixel_mean.to(x.dtype)) / self.pixel_std.to(x.dtype)
        return self.encoder(x).reshape(B, N, -1)

    def _dropout_mask(self, mask: torch.Tensor) -> torch.Tensor:
        """Hide each present view with probability ``view_dropout``; keep at least one per subject."""
        drop = torch.rand(mask.shape, device=mask.device) < self.view_dropout
        kept = mask & ~drop
        none = ~kept.any(1)
        if none.any():  # give back one random present view
            score = torch.rand(mask.shape, device=mask.device) + mask.to(torch.float32)
            first = F.one_hot(score.argmax(1), mask.shape[1]).bool()
            kept = torch.where(none[:, None], first & mask, kept)
        return kept

    def fuse_views(self, feats: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, N, F) features + (B, N) bool mask -> (B, hidden) subject feature."""
        B, N, _ = feats.shape
        if self.fusion == "concat":
            return self.fuse((feats * mask[..., None].to(feats.dtype)).reshape(B, -1))
        e = self.embed(feats)  # (B, N, H)
        if self.fusion == "meanmax":
            neg = torch.finfo(e.dtype).min
            mx = e.masked_fill(~mask[..., None], neg).amax(1)
            return self.fuse(torch.cat([_masked_mean(e, mask), mx], -1))
        logits = self.attn(e)[..., 0].masked_fill(~mask, float("-inf"))
        a = torch.softmax(logits, dim=1)[..., None]
        return self.fuse((a * e).sum(1))

    def forward(self, images: torch.Tensor, view_mask: torch.Tensor | None = None) -> NetOutput:
        if images.dim() == 4:
            images = images[None]
        B, N = images.shape[:2]
        if self.fusion == "concat" and N != self.n_views:
            raise NetConfigError(
                f"this network uses 'concat' fusion for exactly {self.n_views} views and got {N}: pass "
                f"{self.n_views} views, or train a network with fusion='meanmax' or 'attention' for any count")
        mask = torch.ones(B, N, dtype=torch.bool, device=images.device) if view_mask is None else view_mask.bool()
        if self.training and self.view_dropout > 0:
            mask = self._dropout_mask(mask)
        feats = self.features(images)
        v = self.view_head(feats).float()  # (B, N, n_view_out)
        s = self.shared_head(self.fuse_views(feats, mask)).float()
        shape, expr, jaw = s.split([self.n_shape, self.n_expr, 3], dim=-1)
        if self.expression_bounds is not None:
            lo, hi = self.expression_bounds
            expr = (lo + F.softplus(expr, beta=10.0)).clamp(max=hi)
        rot6, log_s, trans, light, tex = v.split([6, 1, 2, 27, self.tex_dim], dim=-1)
        return NetOutput(shape=shape, expression=expr, jaw=jaw, rotation=rot6d_to_matrix(rot6),
                         scale=(self.log_scale_prior + log_s[..., 0]).exp(), trans=trans,
                         light=light.reshape(B, N, 9, 3), texture=tex)


def build_net(config: dict) -> MFNet:
    """An :class:`MFNet` from its ``config`` dict (as stored in checkpoints)."""
    cfg = dict(config)
    known = set(MFNet.__init__.__code__.co_varnames[1:MFNet.__init__.__code__.co_argcount])
    unknown = set(cfg) - known
    if unknown:
        raise NetConfigError(f"unknown network settings {sorted(unknown)}: known are {sorted(known)}")
    return MFNet(**cfg)
