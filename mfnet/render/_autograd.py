"""Fused autograd functions for the per-pixel hot paths (first-order gradients).

Writing the backward passes by hand collapses dozens of small autograd nodes
(each allocating an (M, 3) temporary) into a few vectorised expressions and a
single ``index_add`` per input, which roughly halves the backward time on CPU.
Both functions are verified against autograd with ``gradcheck`` in the tests.
"""
from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

__all__ = ["pixel_barycentrics", "blend"]


def _roll1(t: Tensor) -> Tensor:  # column k -> k+1
    return torch.roll(t, -1, 1)


def _roll2(t: Tensor) -> Tensor:  # column k -> k+2
    return torch.roll(t, -2, 1)


class _PixelBary(torch.autograd.Function):
    """Barycentrics (and depth) of M pixel centres inside given screen triangles."""

    @staticmethod
    def forward(ctx, verts: Tensor, vidx: Tensor, p: Tensor, persp: bool):
        M = vidx.shape[0]
        g = verts.index_select(0, vidx.reshape(-1)).view(M, 3, 3)
        x = g[..., 0] - p[:, 0:1]
        y = g[..., 1] - p[:, 1:2]
        z = g[..., 2].contiguous()
        x1, x2, y1, y2 = _roll1(x), _roll2(x), _roll1(y), _roll2(y)
        w = x1 * y2 - y1 * x2  # 2 x signed sub-area opposite each corner
        A = w.sum(1, keepdim=True)
        b = w / A
        if persp:
            u = b / z
            S = u.sum(1, keepdim=True)
            bp = u / S
            depth = 1.0 / S[:, 0]
        else:
            S = None
            bp = b
            depth = (b * z).sum(1)
        ctx.persp = persp
        ctx.n = verts.shape[0]
        ctx.save_for_backward(vidx, x, y, z, b, A, bp, S if S is not None else A)
        return bp, depth

    @staticmethod
    @once_differentiable
    def backward(ctx, gbp: Tensor | None, gdepth: Tensor | None):
        vidx, x, y, z, b, A, bp, S = ctx.saved_tensors
        if gbp is None:
            gbp = torch.zeros_like(bp)
        if gdepth is None:
            gdepth = torch.zeros_like(bp[:, 0])
        gd = gdepth[:, None]
        if ctx.persp:
            gu = (gbp - (gbp * bp).sum(1, keepdim=True)) / S - gd / (S * S)
            gb = gu / z
            gz = -gb * b / z
        else:
            gb = gbp + gd * z
            gz = gd * b
        gw = (gb - (gb * b).sum(1, keepdim=True)) / A
        gw1, gw2 = _roll1(gw), _roll2(gw)
        gx = gw2 * _roll1(y) - gw1 * _roll2(y)
        gy = gw1 * _roll2(x) - gw2 * _roll1(x)
        grad = torch.stack((gx, gy, gz), -1).reshape(-1, 3)
        out = grad.new_zeros(ctx.n, 3).index_add_(0, vidx.reshape(-1), grad)
        return out, None, None, None


def pixel_barycentrics(verts: Tensor, vidx: Tensor, p: Tensor, persp: bool) -> tuple[Tensor, Tensor]:
    """Barycentrics (M, 3) and depth (M,) of pixel centres ``p`` (M, 2).

    ``verts`` (N, 3) are flattened screen vertices, ``vidx`` (M, 3) the corner
    rows of each pixel's triangle.  With ``persp`` the barycentrics are
    perspective-corrected (``b_k / z_k`` renormalised) and depth is
    interpolated as ``1 / sum(b_k / z_k)``; otherwise depth is ``sum b_k z_k``.
    Differentiable w.r.t. ``verts``.
    """
    return _PixelBary.apply(verts, vidx, p, persp)


class _Blend(torch.autograd.Function):
    @staticmethod
    def forward(ctx, bary: Tensor, flat: Tensor, idx: Tensor):
        b = bary.to(flat.dtype)
        a0 = flat.index_select(0, idx[:, 0])
        a1 = flat.index_select(0, idx[:, 1])
        a2 = flat.index_select(0, idx[:, 2])
        out = a0 * b[:, 0:1] + a1 * b[:, 1:2] + a2 * b[:, 2:3]
        ctx.n = flat.shape[0]
        ctx.bdtype = bary.dtype
        ctx.save_for_backward(b, idx, a0, a1, a2)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, g: Tensor):
        b, idx, a0, a1, a2 = ctx.saved_tensors
        gb = gflat = None
        if ctx.needs_input_grad[0]:
            gb = torch.stack(((g * a0).sum(1), (g * a1).sum(1), (g * a2).sum(1)), 1).to(ctx.bdtype)
        if ctx.needs_input_grad[1]:
            src = (b[:, :, None] * g[:, None, :]).reshape(-1, g.shape[1])
            gflat = g.new_zeros(ctx.n, g.shape[1]).index_add_(0, idx.reshape(-1), src)
        return gb, gflat, None


def blend(bary: Tensor, flat: Tensor, idx: Tensor) -> Tensor:
    """``sum_k bary[:, k] * flat[idx[:, k]]`` -> (M, C), differentiable w.r.t. bary and flat."""
    return _Blend.apply(bary, flat, idx)
