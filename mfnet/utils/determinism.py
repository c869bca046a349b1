"""Bit-identical results on the CPU for a given thread count.

PyTorch's CPU backward of an advanced-indexing gather (``x[idx]`` with many indices, e.g. the flow
loss's per-sample corner lookups) accumulates with parallel atomic float adds when more than one
thread runs: the summation order, and so the last bits of the gradient, change from run to run, and
an optimisation of a few hundred steps turns those bits into millimetres (measured: two identical
default reconstructions differed by up to 3.9 mm). PyTorch's deterministic mode makes those kernels
serial; on the CPU it costs nothing measurable here. :func:`deterministic` switches it on for a
block (CPU only: on CUDA some kernels have no deterministic version and cuBLAS needs extra set-up,
so GPU results are repeatable only to rounding).
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch

__all__ = ["deterministic"]


@contextlib.contextmanager
def deterministic(device: torch.device | str | None = "cpu") -> Iterator[None]:
    """Run the block with PyTorch's deterministic algorithms when ``device`` is the CPU."""
    if torch.device(device or "cpu").type != "cpu":
        yield
        return
    was, was_warn = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(was, warn_only=was_warn)
