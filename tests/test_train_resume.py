"""Exact resume: a run killed with SIGKILL mid-training and resumed ends bit-identical to an
uninterrupted run of the same length (CPU, deterministic settings, view dropout and flow loss on)."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from synthetic_model import make_synthetic_model

REPO = Path(__file__).resolve().parents[1]


def tiny_config(tmp_path: Path, steps: int = 10, **over) -> Path:
    """A seconds-long training config on a 60-vertex random head model."""
    model = tmp_path / "tiny_head.npz"
    if not model.exists():
        make_synthetic_model(n_verts=80, n_shape=4, n_expr=3).save(model)
    cfg = {"head_model": str(model), "seed": 3, "deterministic": True, "threads": 1, "progress": False,
           "ckpt_every": 2, "keep_checkpoints": 10, "log_every": 1, "image_every": 3,
           "data": {"kind": "synthetic", "n_subjects": 6, "yaws": [-30.0, 0.0, 30.0], "image_size": 32,
                    "cache_items": True},
           "net": {"backbone": "resnet18", "fusion": "meanmax", "image_size": 32, "hidden": 32, "tex_dim": 4,
                   "view_dropout": 0.3},
           "loss": {"flow_every": 2, "dynamic_contour": False},
           "optim": {"batch_size": 2, "steps": steps, "lr": 1e-3, "lr_step": 3, "lr_gamma": 0.7}}
    for k, v in over.items():
        cfg[k] = v
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _run(args, **kw):
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "mfnet", "train", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300, **kw)


def _load(path):
    return torch.load(path, map_location="cpu", weights_only=True)


def test_resume_after_kill_matches_uninterrupted_run(tmp_path):
    cfg = tiny_config(tmp_path, steps=10)
    ref = _run([str(cfg), "--out", str(tmp_path / "ref")])
    assert ref.returncode == 0, ref.stderr[-2000:]
    ref_ckpt = _load(tmp_path / "ref" / "checkpoints" / "last.pt")
    assert ref_ckpt["step"] == 10

    # the same config, started for "forever" and killed with SIGKILL once step 4 is checkpointed
    out = tmp_path / "killed"
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-m", "mfnet", "train", str(cfg), "--out", str(out), "--steps", "100000"],
                            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    t0 = time.time()
    while not (out / "checkpoints" / "step_0000004.pt").exists():
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert time.time() - t0 < 240, "training never reached step 4"
        time.sleep(0.02)
    proc.kill()  # kill -9, mid-run
    proc.wait()
    assert proc.returncode == -9
    at = _load(out / "checkpoints" / "last.pt")["step"]
    assert 4 <= at < 10, at

    res = _run([str(cfg), "--out", str(out), "--resume"])
    assert res.returncode == 0, res.stderr[-2000:]
    got = _load(out / "checkpoints" / "last.pt")
    assert got["step"] == 10
    for k, v in ref_ckpt["model"].items():
        assert torch.equal(v, got["model"][k]), f"parameter {k} differs after resume"
    for (i, a), (_, b) in zip(ref_ckpt["optimizer"]["state"].items(), got["optimizer"]["state"].items()):
        assert torch.equal(a["exp_avg"], b["exp_avg"]) and torch.equal(a["exp_avg_sq"], b["exp_avg_sq"])
    assert got["scheduler"] == ref_ckpt["scheduler"]
    # logs: CSV scalars (or TensorBoard events) and image grids were written
    logs = out / "logs"
    assert (logs / "scalars.csv").exists() or any(logs.glob("events.*"))


def test_resume_errors(tmp_path, capsys):
    from mfnet.cli.main import main

    cfg = tiny_config(tmp_path, steps=2)
    assert main(["train", str(cfg), "--out", str(tmp_path / "none"), "--resume"]) == 2
    assert "nothing to resume from" in capsys.readouterr().err
    assert main(["train", str(tmp_path / "missing.yaml")]) == 2
    assert "no such config file" in capsys.readouterr().err


@pytest.mark.parametrize("text, message", [
    ("optim: {lrate: 0.1}", "unknown key 'optim.lrate'"),
    ("data: {kind: imagenet}", "data.kind"),
    ("net: {init: deca}", "init_path"),
    ("progress: 3", "true or false"),
    ("optim: {lr: fast}", "must be a number"),
    ("data: [1, 2]", "must be a mapping"),
])
def test_config_errors(tmp_path, text, message):
    from mfnet.train import ConfigError, load_config

    p = tmp_path / "bad.yaml"
    p.write_text(text)
    with pytest.raises(ConfigError, match=message.replace(".", r"\.").replace("(", r"\(")) as e:
        load_config(p)
    assert str(p) in str(e.value)


def test_config_roundtrip(tmp_path):
    from mfnet.train import TrainConfig, dump_config, load_config

    p = tmp_path / "c.yaml"
    p.write_text(dump_config(TrainConfig()))
    cfg = load_config(p)
    assert cfg == TrainConfig() and cfg.optim.lr == 1e-3 and cfg.loss.weights.lip == 0.5 and cfg.loss.weights.reg_shape == 1e-4
