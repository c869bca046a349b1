"""Head-model layer speed: full LBS forward+backward, the landmarks-only path, and an einsum
formulation of the same LBS for comparison (what the first version used).

    .venv/bin/python benchmarks/bench_headmodel.py [--threads 2] [--batch 3]
"""
from __future__ import annotations

import argparse
import statistics

import torch
from _common import run_times  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

from mfnet.calibrate.install import load_model
from mfnet.headmodel.lbs import batch_rigid_transform


def timeit(fn, n=20, warmup=3):
    """Median milliseconds."""
    return statistics.median(run_times(fn, n, warmup)) * 1000


def einsum_lbs(m, coeffs, rot):
    """The same LBS written with einsum contractions (slow on CPU for these shapes)."""
    v_shaped = m.v_template[None] + torch.einsum("bk,vck->bvc", coeffs, m.shapedirs)
    J = torch.einsum("jv,bvk->bjk", m.J_regressor, v_shaped)
    _, A = batch_rigid_transform(rot, J, m.parents)
    T = torch.einsum("vj,bjmn->bvmn", m.lbs_weights, A)
    return (T[..., :3, :3] @ v_shaped[..., None])[..., 0] + T[..., :3, 3]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    m = load_model()
    B = args.batch
    shape = torch.zeros(B, m.n_shape, requires_grad=True)
    expr = torch.zeros(B, m.n_expr, requires_grad=True)
    pose = (torch.randn(B, 15) * 0.1).requires_grad_()

    def full():
        m(shape, expr, pose).vertices.sum().backward()

    def lmk():
        m(shape, expr, pose, landmarks_only=True).landmarks.sum().backward()

    def ein():
        rot = m.pose_to_matrices(pose)
        einsum_lbs(m, torch.cat([shape, expr], 1), rot).sum().backward()

    rows = [("full forward+backward (matmul LBS)", timeit(full)), ("landmarks-only forward+backward", timeit(lmk)),
            ("full forward+backward (einsum LBS, reference)", timeit(ein, n=5))]
    print(f"model {m.name}: {m.num_vertices} vertices, {m.n_shape}+{m.n_expr} components, batch {B}, "
          f"{args.threads} threads")
    print("| path | median ms |\n| --- | --- |")
    for name, ms in rows:
        print(f"| {name} | {ms:.1f} |")


if __name__ == "__main__":
    main()
