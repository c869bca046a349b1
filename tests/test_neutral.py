"""The neutral head: the identity projection of a fit (mfnet.fit.neutral) and its export."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from mfnet.fit.neutral import neutral_head, neutral_shape
from mfnet.headmodel.model import HeadModel
from mfnet.types import HeadParams
from synthetic_model import make_synthetic_model


@pytest.fixture(scope="module")
def model():
    return HeadModel(make_synthetic_model(n_verts=120, n_shape=6, n_expr=4, seed=3), dtype=torch.float64)


def _face(model, head):
    z = torch.zeros(1, 3, dtype=torch.float64)
    return model(head.shape[None], head.expression[None], head.pose(z)).vertices[0]


def test_a_neutral_fit_keeps_its_identity(model):
    g = torch.Generator().manual_seed(0)
    beta = torch.randn(model.n_shape, generator=g, dtype=torch.float64)
    head = HeadParams(beta, torch.zeros(model.n_expr, dtype=torch.float64), torch.zeros(3, dtype=torch.float64))
    torch.testing.assert_close(neutral_shape(model, head, prior=1e-12), beta, atol=1e-6, rtol=1e-6)


def test_projection_is_the_least_squares_identity(model):
    """With expression, the projected identity explains the fitted head better than the fit's own
    shape code does (its expression-zero head), and no perturbation of it does better."""
    g = torch.Generator().manual_seed(1)
    beta = torch.randn(model.n_shape, generator=g, dtype=torch.float64)
    psi = torch.rand(model.n_expr, generator=g, dtype=torch.float64)
    head = HeadParams(beta, psi, torch.tensor([0.1, 0.0, 0.0], dtype=torch.float64))
    target = _face(model, head)
    b = neutral_shape(model, head, prior=1e-12)

    def err(shape):
        return float(((_face(model, HeadParams(shape, psi * 0, head.jaw * 0)) - target) ** 2).sum())

    assert err(b) < err(beta)
    for k in range(model.n_shape):
        d = torch.zeros_like(b)
        d[k] = 1e-3
        assert err(b) <= err(b + d) and err(b) <= err(b - d)
    n = neutral_head(model, head)
    assert torch.count_nonzero(n.expression) == 0 and torch.count_nonzero(n.jaw) == 0


def test_export_writes_the_neutral_head(tmp_path):
    from test_export_reconstruction import make_record

    from mfnet.export.mesh import read_obj
    from mfnet.export.reconstruction import write_reconstruction

    rec, posed, _, _ = make_record()
    rec.neutral_shape = np.arange(4, dtype=np.float64)
    rec.neutral_vertices = rec.vertices + 0.001
    out = write_reconstruction(rec, tmp_path / "o", posed_vertices=posed, report=False, neutral=True)
    mesh = read_obj(out / "neutral.obj")
    np.testing.assert_allclose(mesh["vertices"], rec.neutral_vertices, atol=1e-6)
    assert (out / "neutral.ply").exists() and "mtllib mesh.mtl" in (out / "neutral.obj").read_text()
    with np.load(out / "params.npz") as z:
        np.testing.assert_array_equal(z["neutral_shape"], rec.neutral_shape)
    assert not (write_reconstruction(rec, tmp_path / "p", posed_vertices=posed, report=False) / "neutral.obj").exists()
