"""torchvision RAFT as a flow backend (differentiable, paper-faithful), with user-supplied weights.

No weights are downloaded: pass the path of a torchvision ``raft_small`` / ``raft_large`` state dict
(e.g. saved from ``torchvision.models.optical_flow.raft_small(weights=...)`` on a machine with
internet). Without weights RAFT is untrained and useless for fitting; it is still constructible
for tests.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from ..errors import MfnetError


class RaftFlow:
    """Callable ``(source (N,3,H,W), target (N,3,H,W)) -> flow (N,H,W,2)`` in pixels."""

    def __init__(self, weights: str | Path | None = None, large: bool = False, iters: int = 12, device=None):
        from torchvision.models.optical_flow import raft_large, raft_small

        self.net = (raft_large if large else raft_small)(weights=None, progress=False)
        if weights is not None:
            path = Path(weights)
            if not path.exists():
                raise MfnetError(f"{path}: no such RAFT weights file (a torchvision raft_{'large' if large else 'small'} "
                                 "state dict); or use the default DIS flow")
            try:
                state = torch.load(path, map_location="cpu", weights_only=True)
                state = state.get("state_dict", state) if isinstance(state, dict) else state
                self.net.load_state_dict(state)
            except Exception as exc:
                raise MfnetError(f"{path}: not a torchvision RAFT {'large' if large else 'small'} state dict ({exc})") from None
        self.net.eval().to(device or "cpu")
        self.iters = iters

    def __call__(self, source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        N, _, H, W = source.shape
        ph, pw = (-H) % 8, (-W) % 8  # RAFT needs sizes divisible by 8
        dev = next(self.net.parameters()).device
        a = F.pad(source, (0, pw, 0, ph), mode="replicate").to(dev) * 2 - 1
        b = F.pad(target, (0, pw, 0, ph), mode="replicate").to(dev) * 2 - 1
        with torch.no_grad():
            flow = self.net(a.float(), b.float(), num_flow_updates=self.iters)[-1]
        return flow[:, :, :H, :W].permute(0, 2, 3, 1).to(source)


def make_flow_fn(spec: str = "dis", preset: str = "medium", device=None):
    """'dis' (default) or 'raft:PATH' / 'raft-large:PATH'."""
    from .dis import dis_flow

    if spec == "dis":
        return lambda a, b: dis_flow(a, b, preset=preset)
    kind, _, path = spec.partition(":")
    if kind in ("raft", "raft-small", "raft-large"):
        return RaftFlow(path or None, large=kind == "raft-large", device=device)
    raise MfnetError(f"unknown flow backend {spec!r}: use 'dis' or 'raft:PATH_TO_WEIGHTS'")
