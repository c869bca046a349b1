"""Flow backends: RAFT construction/loading with user weights, and clear errors."""
from __future__ import annotations

import pytest
import torch

from mfnet.errors import MfnetError
from mfnet.flow.raft import RaftFlow, make_flow_fn


def test_raft_loads_user_weights_and_returns_pixel_flow(tmp_path):
    from torchvision.models.optical_flow import raft_small

    torch.manual_seed(0)
    path = tmp_path / "raft_small.pth"
    ref = raft_small(weights=None)
    torch.save(ref.state_dict(), path)
    flow = make_flow_fn(f"raft:{path}")
    assert isinstance(flow, RaftFlow)
    for p, q in zip(flow.net.state_dict().values(), ref.state_dict().values()):
        assert torch.equal(p, q)
    a = torch.rand(2, 3, 130, 134)  # not multiples of 8: padded internally
    out = flow(a, a)
    assert out.shape == (2, 130, 134, 2) and torch.isfinite(out).all()


def test_flow_spec_errors(tmp_path):
    with pytest.raises(MfnetError, match="no such RAFT weights"):
        make_flow_fn(f"raft:{tmp_path / 'missing.pth'}")
    bad = tmp_path / "bad.pth"
    torch.save({"foo": torch.zeros(1)}, bad)
    with pytest.raises(MfnetError, match="not a torchvision RAFT"):
        make_flow_fn(f"raft:{bad}")
    with pytest.raises(MfnetError, match="unknown flow backend"):
        make_flow_fn("farneback")
