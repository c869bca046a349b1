"""Micro-benchmarks of the fitter's per-step building blocks, old formulation against new.

    .venv/bin/python benchmarks/bench_kernels.py [--threads 2]

* blend shapes: ``coeffs @ dirs`` with the directions stored (3V, K) and multiplied through a
  transposed view (before) or stored (K, 3V) (:func:`mfnet.headmodel.lbs.flat_dirs`, now); one
  coefficient row (all views share the head) or three;
* barycentric lookups of per-vertex features (the photometric term's 2K lookups): advanced
  indexing, torch's own sparse-CSR product, :class:`mfnet.utils.sparse.FixedSparse`;
* vertex normals of the whole head for 3 views: index_add (:func:`vertex_normals`) against
  :class:`mfnet.render.shading.VertexNormals`.

Forward + backward, median of 30 after 3 warm-up calls, milliseconds.
"""
from __future__ import annotations

import argparse
import statistics
import warnings

import torch

from mfnet.calibrate.install import load_model
from mfnet.render.shading import VertexNormals, vertex_normals
from mfnet.utils.sparse import FixedSparse

from _common import run_times  # noqa: E402  (benchmarks/ is on sys.path when run as a script)


def _ms(fn, runs: int = 30) -> float:
    return 1e3 * statistics.median(run_times(fn, runs, warmup=3))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")
    model = load_model()
    K = model.shapedirs.shape[2]
    print(f"torch threads {args.threads}; ICT-FaceKit head: {model.num_vertices} vertices, {K} coefficients\n")
    print("| case | before, ms | now, ms |\n| --- | --- | --- |")
    for V in (6000, model.num_vertices):
        dirs = model.shapedirs[:V].reshape(V * 3, K).contiguous()
        flat = dirs.T.contiguous()
        for rows in (3, 1):
            c = torch.randn(rows, K, requires_grad=True)
            old = _ms(lambda: (c @ dirs.T).sum().backward())
            new = _ms(lambda: (c @ flat).sum().backward())
            print(f"| blend shapes, {V} vertices, {rows} coefficient row(s) | {old:.2f} | {new:.2f} |")
    g = torch.Generator().manual_seed(0)
    n, V, L = 3, 6000, 18000  # 3 views, a face-sized vertex subset, 6 view pairs x 1500 points x 2 sides
    feats = torch.randn(n * V, 8, requires_grad=True)
    cols = torch.randint(0, n * V, (L, 3), generator=g)
    w = torch.rand(L, 3, generator=g)
    rows = torch.arange(L)[:, None].expand(L, 3)
    csr = torch.sparse_coo_tensor(torch.stack([rows.reshape(-1), cols.reshape(-1)]), w.reshape(-1),
                                  (L, n * V)).coalesce().to_sparse_csr()
    fixed = FixedSparse(rows, cols, w, (L, n * V))
    idx = _ms(lambda: (feats[cols] * w[..., None]).sum(1).sum().backward())
    tcsr = _ms(lambda: (csr @ feats).sum().backward())
    fx = _ms(lambda: fixed(feats).sum().backward())
    print(f"| {L} barycentric lookups of 8 features (indexing / torch CSR autograd) | {idx:.2f} / {tcsr:.2f} "
          f"| {fx:.2f} |")
    verts = model(torch.randn(3, model.n_shape) * 0.5).vertices.detach().requires_grad_()
    vn = VertexNormals(model.faces, model.num_vertices)
    old = _ms(lambda: vertex_normals(verts, model.faces).sum().backward())
    new = _ms(lambda: vn(verts).sum().backward())
    print(f"| vertex normals, whole head, 3 views | {old:.2f} | {new:.2f} |")


if __name__ == "__main__":
    main()
