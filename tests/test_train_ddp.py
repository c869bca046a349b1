"""Distributed training: 2 CPU processes (gloo) started by torchrun train a couple of steps and end
with identical parameters. Run as a script, this file is the per-rank worker."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _worker(config: str, out: str) -> None:
    import torch
    import torch.distributed as dist

    from mfnet.train import load_config, train

    cfg = load_config(config)
    seen = []
    net = train(cfg, callback=lambda step, terms: seen.append(terms["total"]))
    rank = dist.get_rank()
    torch.save({"params": {k: v.detach().clone() for k, v in net.state_dict().items()}, "losses": seen,
                "world": dist.get_world_size(), "backend": dist.get_backend()}, Path(out) / f"rank{rank}.pt")
    dist.destroy_process_group()


def test_ddp_two_cpu_processes_end_identical(tmp_path):
    import torch

    from test_train_resume import tiny_config

    cfg = tiny_config(tmp_path, steps=3, out_dir=str(tmp_path / "run"))
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                        __file__, str(cfg), str(tmp_path)], cwd=REPO, env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    a, b = (torch.load(tmp_path / f"rank{i}.pt", weights_only=True) for i in (0, 1))
    assert a["world"] == 2 and a["backend"] == "gloo"
    assert len(a["losses"]) == len(b["losses"]) == 3
    assert a["losses"] != b["losses"]  # each rank saw its own share of the data
    for k, v in a["params"].items():
        assert torch.equal(v, b["params"][k]), f"{k} differs between ranks"
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)
    assert ckpt["step"] == 3 and ckpt["world_size"] == 2 and len(ckpt["rng"]) == 2
    assert all(torch.equal(v, a["params"][k]) for k, v in ckpt["model"].items())  # rank 0 wrote the result


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    _worker(sys.argv[1], sys.argv[2])
