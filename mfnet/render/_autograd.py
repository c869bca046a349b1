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

__all__ = ["pixel_barycentrics", "blend", "blend_cm", "normal_shade"]


class _PixelBary(torch.autograd.Function):
    """Barycentrics (and depth) of M pixel centres inside given screen triangles.

    Works on per-corner (M,) vectors ("structure of arrays"): contiguous
    element-wise kernels are several times faster on CPU than ops on (M, 3)
    column slices.
    """

    @staticmethod
    def forward(ctx, verts: Tensor, vidx: Tensor, p: Tensor, persp: bool):
        vt = verts.t().contiguous()  # (3, N): rows x, y, z
        idx = vidx.contiguous()  # (3, M): corner k -> row of verts
        c = [vt.index_select(1, idx[k]) for k in range(3)]
        px, py = p[:, 0].contiguous(), p[:, 1].contiguous()
        x = [ck[0] - px for ck in c]
        y = [ck[1] - py for ck in c]
        z = [ck[2] for ck in c]
        w = [x[(k + 1) % 3] * y[(k + 2) % 3] - y[(k + 1) % 3] * x[(k + 2) % 3] for k in range(3)]
        A = w[0] + w[1] + w[2]
        b = [wk / A for wk in w]
        if persp:
            u = [b[k] / z[k] for k in range(3)]
            S = u[0] + u[1] + u[2]
            bp = [uk / S for uk in u]
            depth = 1.0 / S
        else:
            S = A
            bp = b
            depth = b[0] * z[0] + b[1] * z[1] + b[2] * z[2]
        ctx.persp = persp
        ctx.n = verts.shape[0]
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(idx, *x, *y, *z, *b, A, *bp, S)
        return torch.stack(bp, 1), depth

    @staticmethod
    @once_differentiable
    def backward(ctx, gbp: Tensor | None, gdepth: Tensor | None):
        idx, *t = ctx.saved_tensors
        x, y, z, b, A, bp, S = t[0:3], t[3:6], t[6:9], t[9:12], t[12], t[13:16], t[16]
        if gbp is None and gdepth is None:
            return None, None, None, None
        g = [torch.zeros_like(A)] * 3 if gbp is None else list(gbp.t().contiguous().unbind(0))
        gd = None if gdepth is None else gdepth.contiguous()
        gz = None
        if ctx.persp:
            dot = g[0] * bp[0] + g[1] * bp[1] + g[2] * bp[2]
            if gd is None:
                gb = [(g[k] - dot) / (S * z[k]) for k in range(3)]
            else:
                gS = gd / (S * S)
                gb = [((g[k] - dot) / S - gS) / z[k] for k in range(3)]
            gz = [-gb[k] * b[k] / z[k] for k in range(3)]
        elif gd is None:  # weak perspective, depth unused: z gets no gradient
            gb = g
        else:
            gb = [g[k] + gd * z[k] for k in range(3)]
            gz = [gd * b[k] for k in range(3)]
        dot = gb[0] * b[0] + gb[1] * b[1] + gb[2] * b[2]
        gw = [(gb[k] - dot) / A for k in range(3)]
        # accumulate in a (3, N) layout: index_add_ along dim 1 is much faster on
        # CPU than along dim 0 of an (N, 3) tensor
        out = A.new_zeros(3, ctx.n)
        rows = out if gz is not None else out[0:2]
        for k in range(3):
            k1, k2 = (k + 1) % 3, (k + 2) % 3
            gx = gw[k2] * y[k1] - gw[k1] * y[k2]
            gy = gw[k1] * x[k2] - gw[k2] * x[k1]
            rows.index_add_(1, idx[k], torch.stack((gx, gy) if gz is None else (gx, gy, gz[k]), 0))
        return out.t(), None, None, None


def pixel_barycentrics(verts: Tensor, vidx: Tensor, p: Tensor, persp: bool) -> tuple[Tensor, Tensor]:
    """Barycentrics (M, 3) and depth (M,) of pixel centres ``p`` (M, 2).

    ``verts`` (N, 3) are flattened screen vertices, ``vidx`` (3, M) the corner
    rows of each pixel's triangle (corner-major layout).  With ``persp`` the barycentrics are
    perspective-corrected (``b_k / z_k`` renormalised) and depth is
    interpolated as ``1 / sum(b_k / z_k)``; otherwise depth is ``sum b_k z_k``.
    Differentiable w.r.t. ``verts``.
    """
    return _PixelBary.apply(verts, vidx, p, persp)


class _Blend(torch.autograd.Function):
    @staticmethod
    def forward(ctx, bary: Tensor, flat: Tensor, idx: Tensor):
        b = bary.to(flat.dtype)
        a0 = flat.index_select(0, idx[0])
        a1 = flat.index_select(0, idx[1])
        a2 = flat.index_select(0, idx[2])
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
            gT = g.t().contiguous()  # (C, M): dim-1 index_add_ is the fast path on CPU
            gflat = g.new_zeros(g.shape[1], ctx.n)
            for k in range(3):
                gflat.index_add_(1, idx[k], gT * b[:, k])
            gflat = gflat.t()
        return gb, gflat, None


def blend(bary: Tensor, flat: Tensor, idx: Tensor) -> Tensor:
    """``sum_k bary[:, k] * flat[idx[k]]`` -> (M, C) with ``idx`` (3, M); differentiable w.r.t. bary and flat."""
    return _Blend.apply(bary, flat, idx)


class _BlendCM(torch.autograd.Function):
    """Channel-major blend of several attribute tables: each flat (C_i, N) -> (C_i, M)."""

    @staticmethod
    def forward(ctx, bary: Tensor, idx: Tensor, *flats: Tensor):
        b = bary.to(flats[0].dtype).t().contiguous()  # (3, M)
        outs, saved = [], []
        for flat in flats:
            a = [flat.index_select(1, idx[k]) for k in range(3)]
            outs.append(a[0] * b[0] + a[1] * b[1] + a[2] * b[2])
            saved += a
        ctx.n = [f.shape[1] for f in flats]
        ctx.bdtype = bary.dtype
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(b, idx, *saved)
        return tuple(outs)

    @staticmethod
    @once_differentiable
    def backward(ctx, *grads: Tensor | None):
        b, idx, *saved = ctx.saved_tensors
        gb = None
        gflats = []
        for i, g in enumerate(grads):
            if g is None:
                gflats.append(None)
                continue
            g = g.contiguous()
            a = saved[3 * i : 3 * i + 3]
            if ctx.needs_input_grad[0]:
                part = [(g * a[k]).sum(0) for k in range(3)]
                gb = part if gb is None else [gb[k] + part[k] for k in range(3)]
            if ctx.needs_input_grad[2 + i]:
                gf = g.new_zeros(g.shape[0], ctx.n[i])
                for k in range(3):
                    gf.index_add_(1, idx[k], g * b[k])
                gflats.append(gf)
            else:
                gflats.append(None)
        if gb is not None:
            gb = torch.stack(gb, 1).to(ctx.bdtype)
        return (gb, None, *gflats)


def blend_cm(bary: Tensor, idx: Tensor, *flats: Tensor) -> tuple[Tensor, ...]:
    """Channel-major ``sum_k bary[:, k] * flat[:, idx[k]]`` for each flat (C_i, N) -> (C_i, M).

    ``idx`` is (3, M); returns one (C_i, M) tensor per table.
    """
    return _BlendCM.apply(bary, idx, *flats)


class _NormalShade(torch.autograd.Function):
    """Normalise (3, M) normals and evaluate per-view SH shading, fused."""

    @staticmethod
    def forward(ctx, n: Tensor, L: Tensor, spans: list, consts: tuple):
        r = torch.sqrt(n[0] * n[0] + n[1] * n[1] + n[2] * n[2]).clamp_min(1e-12)
        nh = n / r
        x, y, z = nh[0], nh[1], nh[2]
        c = consts
        H = torch.stack(
            (
                torch.full_like(x, c[0]), c[1] * y, c[2] * z, c[3] * x, (c[4] * x) * y,
                (c[5] * y) * z, (3.0 * c[6]) * (z * z) - c[6], (c[7] * x) * z, c[8] * (x * x - y * y),
            ),
            0,
        )  # (9, M)
        shading = torch.cat([L[k].t() @ H[:, a:e] for k, (a, e) in enumerate(spans)], 1)
        ctx.spans, ctx.consts = spans, consts
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(nh, r, H, L)
        return nh, shading

    @staticmethod
    @once_differentiable
    def backward(ctx, g_nh: Tensor | None, g_sh: Tensor | None):
        nh, r, H, L = ctx.saved_tensors
        c = ctx.consts
        gn = torch.zeros_like(nh) if g_nh is None else g_nh.clone()
        gL = None
        if g_sh is not None:
            g_sh = g_sh.contiguous()
            gH = torch.cat([L[k] @ g_sh[:, a:e] for k, (a, e) in enumerate(ctx.spans)], 1)  # (9, M)
            if ctx.needs_input_grad[1]:
                gL = torch.stack([H[:, a:e] @ g_sh[:, a:e].t() for (a, e) in ctx.spans])
            x, y, z = nh[0], nh[1], nh[2]
            gn[0] += c[3] * gH[3] + c[4] * y * gH[4] + c[7] * z * gH[7] + 2.0 * c[8] * x * gH[8]
            gn[1] += c[1] * gH[1] + c[4] * x * gH[4] + c[5] * z * gH[5] - 2.0 * c[8] * y * gH[8]
            gn[2] += c[2] * gH[2] + c[5] * y * gH[5] + 6.0 * c[6] * z * gH[6] + c[7] * x * gH[7]
        dot = nh[0] * gn[0] + nh[1] * gn[1] + nh[2] * gn[2]
        g_in = (gn - nh * dot) / r
        return g_in, gL, None, None


def normal_shade(n: Tensor, L: Tensor, spans: list, consts: tuple) -> tuple[Tensor, Tensor]:
    """Unit normals ``n / |n|`` (3, M) and SH shading (3, M) = ``L[b]^T H(n / |n|)``.

    ``L`` (B, 9, 3) holds per-view coefficients; the M pixels are sorted by
    view and ``spans[b] = (start, end)``; ``consts`` are the 9 basis constants.
    """
    return _NormalShade.apply(n, L, spans, consts)
