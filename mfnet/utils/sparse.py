"""A fixed sparse linear map with autograd: gathers and scatters with precomputed weights.

Many per-step operations of the fitter are fixed between refreshes: sampling surface points at
barycentric coordinates of known faces, accumulating face normals onto vertices, differencing two
lookups. Written with advanced indexing their backward passes are scatter-adds, which are slow on
CPU; as a sparse matrix ``W`` with its transpose stored beside it, forward and backward are one CSR
product each (measured: docs/benchmarks.md).
"""
from __future__ import annotations

import warnings

import torch


class _SparseMatmul(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, W, WT):  # noqa: D401  (x: dense (N, C))
        ctx.WT = WT
        return W @ x

    @staticmethod
    def backward(ctx, grad):
        return ctx.WT @ grad.contiguous(), None, None


class FixedSparse:
    """``W (M, N)`` given by entries ``(rows, cols, values)`` (duplicates add up); ``self(x)`` is
    ``W @ x`` for dense ``x (N, C)`` with gradients to ``x`` (not to ``W``)."""

    def __init__(self, rows: torch.Tensor, cols: torch.Tensor, values: torch.Tensor, shape: tuple[int, int]):
        idx = torch.stack([rows.reshape(-1).long(), cols.reshape(-1).long()])
        with warnings.catch_warnings():  # CSR support is labelled beta; the product we use is stable
            warnings.simplefilter("ignore")
            coo = torch.sparse_coo_tensor(idx, values.reshape(-1), shape).coalesce()
            self.W = coo.to_sparse_csr()
            self.WT = coo.t().coalesce().to_sparse_csr()
        self.shape = tuple(shape)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] != self.shape[1]:
            raise ValueError(f"FixedSparse: expected {self.shape[1]} rows, got {x.shape[0]}")
        if x.dtype != self.W.dtype:
            raise TypeError(f"FixedSparse: built for {self.W.dtype}, got {x.dtype}")
        return _SparseMatmul.apply(x.contiguous(), self.W, self.WT)
