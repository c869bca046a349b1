"""Fixed sparse maps (mfnet.utils.sparse) and the sparse vertex normals built on them: equal to the
dense/indexed formulas they replace, with exact gradients."""
from __future__ import annotations

import pytest
import torch

from mfnet.render.shading import VertexNormals, vertex_normals
from mfnet.utils.sparse import FixedSparse


def test_fixed_sparse_equals_the_dense_product_and_adds_duplicates():
    g = torch.Generator().manual_seed(0)
    rows = torch.tensor([0, 0, 1, 2, 2, 2])
    cols = torch.tensor([1, 1, 3, 0, 2, 4])  # (0, 1) twice: the entries add up
    vals = torch.rand(6, generator=g, dtype=torch.float64)
    dense = torch.zeros(3, 5, dtype=torch.float64)
    dense.index_put_((rows, cols), vals, accumulate=True)
    assert dense[0, 1] == vals[0] + vals[1]
    W = FixedSparse(rows, cols, vals, (3, 5))
    x = torch.rand(5, 4, generator=g, dtype=torch.float64, requires_grad=True)
    torch.testing.assert_close(W(x), dense @ x)
    assert torch.autograd.gradcheck(W, (x,))


def test_fixed_sparse_rejects_wrong_rows_and_dtype():
    W = FixedSparse(torch.tensor([0]), torch.tensor([1]), torch.tensor([1.0]), (1, 3))
    with pytest.raises(ValueError, match="expected 3 rows"):
        W(torch.zeros(4, 2))
    with pytest.raises(TypeError, match="float32"):
        W(torch.zeros(3, 2, dtype=torch.float64))


def _bumpy_grid(n=5, dtype=torch.float64):
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, n, dtype=dtype), torch.linspace(-1, 1, n, dtype=dtype),
                            indexing="ij")
    verts = torch.stack([xs, ys, 0.3 * torch.sin(2 * xs) * torch.cos(3 * ys)], -1).reshape(-1, 3)
    faces = torch.tensor([[r * n + c, r * n + c + 1, (r + 1) * n + c] for r in range(n - 1) for c in range(n - 1)]
                         + [[r * n + c + 1, (r + 1) * n + c + 1, (r + 1) * n + c]
                            for r in range(n - 1) for c in range(n - 1)])
    return verts, faces


def test_vertex_normals_match_the_indexed_version_with_exact_gradients():
    verts, faces = _bumpy_grid()
    batch = torch.stack([verts, verts.flip(-1) * torch.tensor([1.0, -1.0, 2.0], dtype=verts.dtype)])
    vn = VertexNormals(faces, verts.shape[0], torch.float64)
    torch.testing.assert_close(vn(batch), vertex_normals(batch, faces))
    flat = torch.stack([verts[:, 0], verts[:, 1], torch.zeros_like(verts[:, 0])], -1)  # a plane: normal +z
    torch.testing.assert_close(vn(flat[None]), torch.tensor([0.0, 0.0, 1.0], dtype=verts.dtype).expand(1, 25, 3))
    assert torch.autograd.gradcheck(vn, (batch.clone().requires_grad_(),))
