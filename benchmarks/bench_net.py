"""Benchmark of the learned path (MFNet network), CPU by default.

Run from the repository root:

    .venv/bin/python benchmarks/bench_net.py [--threads 2] [--train-steps 300] [--no-write]

1. Inference: ``mfnet.net.predict`` of a 3-view ResNet-50 MFNet (concat fusion, 224 px, random
   init) — median over ``--runs`` after warm-up; also with ``channels_last``.
2. Training step (forward + eq. 11 losses + backward + Adam) on CPU: ResNet-50 at 224 px, batch 2
   subjects x 3 views, landmarks only and with the multi-view flow loss; and the small test-sized
   setting (ResNet-18, 64 px, batch 4).
3. A short documented training run: ICT-FaceKit face region (20 shape modes), synthetic subjects
   rendered on the fly (random frontal anchor + left/right yaws, 64 px), ResNet-18 meanmax, batch 4,
   Adam 1e-3, landmark losses + flow every 4 steps; held-out error on 16 unseen synthetic subjects
   (yaws -40/0/40) before and after training (``mfnet.train.evaluate_synthetic``).

The Markdown is printed and written into docs/benchmarks.md under ``## Network`` (other sections
are left untouched). Needs the ICT-FaceKit data (``MFNET_ICT_DIR`` or ../shared/data/ict-facekit).
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_render import machine  # noqa: E402

from mfnet.data.datasets import SyntheticMultiView  # noqa: E402
from mfnet.headmodel import HeadModel  # noqa: E402
from mfnet.headmodel.ict import convert_ict  # noqa: E402
from mfnet.losses.weights import LossWeights  # noqa: E402
from mfnet.net import MFNet, predict  # noqa: E402
from mfnet.train import TrainLoss, camera_prior, config_from_dict, evaluate_synthetic, train  # noqa: E402
from mfnet.train.config import LossConfig  # noqa: E402
from _common import run_times  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

ICT = Path(os.environ.get("MFNET_ICT_DIR", REPO.parent / "shared" / "data" / "ict-facekit"))


def median_s(fn, runs: int, warmup: int = 2) -> float:
    return statistics.median(run_times(fn, runs, warmup))


def bench_inference(runs: int) -> dict[str, float]:
    torch.manual_seed(0)
    net = MFNet(100, 57, "resnet50", "concat", n_views=3, image_size=224).eval()
    views = torch.rand(3, 3, 224, 224)
    out = {"resnet50 concat, 3 views, 224 px": median_s(lambda: predict(net, views), runs)}
    net = net.to(memory_format=torch.channels_last)
    out["same, channels_last"] = median_s(lambda: predict(net, views.contiguous(memory_format=torch.channels_last)),
                                          runs)
    return out


def bench_train_step(model, backbone: str, size: int, batch: int, flow: bool, runs: int) -> float:
    torch.manual_seed(0)
    ds = SyntheticMultiView(model, batch, (-40.0, 0.0, 40.0), size, seed=5, cache=True)
    items = [ds[i] for i in range(batch)]
    b = {k: torch.stack([it[k] for it in items]) for k in ("images", "landmarks", "landmark_weights")}
    net = MFNet(model.n_shape, model.n_expr, backbone, "meanmax", image_size=size,
                expression_bounds=model.expression_bounds, camera_prior=camera_prior(model, ds)).train()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    loss = TrainLoss(model, LossConfig(LossWeights.paper() if flow else replace(LossWeights.paper(), multiop=0.0), dynamic_contour=False))

    def step():
        total, _, _ = loss(net(b["images"]), b, 0)
        opt.zero_grad()
        total.backward()
        opt.step()

    return median_s(step, runs, warmup=1)


def short_training(model, steps: int, out_dir: Path) -> tuple[dict, dict, float]:
    held = SyntheticMultiView(model, 16, (-40.0, 0.0, 40.0), 64, seed=777, cache=True)
    cfg = config_from_dict({
        "out_dir": str(out_dir), "seed": 0, "progress": False, "log_every": 25, "image_every": 0, "ckpt_every": 0,
        "data": {"kind": "synthetic", "n_subjects": 100000, "yaws": None, "image_size": 64},
        "net": {"backbone": "resnet18", "fusion": "meanmax", "image_size": 64, "hidden": 256},
        "loss": {"flow_every": 4, "dynamic_contour": False},
        "optim": {"batch_size": 4, "steps": steps, "lr": 1e-3}}, "bench")
    torch.manual_seed(0)
    from mfnet.train.trainer import build_dataset

    ds = build_dataset(cfg, model)
    untrained = MFNet(model.n_shape, model.n_expr, "resnet18", "meanmax", image_size=64, hidden=256,
                      expression_bounds=model.expression_bounds, camera_prior=camera_prior(model, ds))
    before = evaluate_synthetic(untrained, model, held)
    t = time.perf_counter()
    net = train(cfg, model=model, dataset=ds)
    dt = time.perf_counter() - t
    return before, evaluate_synthetic(net, model, held), dt


def write_section(md: str, path: Path) -> None:
    """Replace (or append) the '## Network' section of docs/benchmarks.md."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    section = "## Network\n\n" + md.strip() + "\n"
    pat = re.compile(r"^## Network\n.*?(?=^## |\Z)", re.S | re.M)
    if pat.search(text):
        text = pat.sub(lambda _: section + "\n", text, count=1).rstrip() + "\n"
    else:
        text = text.rstrip() + "\n\n" + section
    path.write_text(text)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--train-steps", type=int, default=300)
    ap.add_argument("--out", default="/tmp/mfnet-bench-net")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    lines = [f"Machine: {machine()}. Command: `.venv/bin/python benchmarks/bench_net.py --threads {args.threads} "
             f"--train-steps {args.train_steps}`. Random-init weights (timings do not depend on them).", ""]
    inf = bench_inference(args.runs)
    lines += ["| inference (`mfnet.net.predict`, one subject) | median s |", "| --- | --- |"]
    lines += [f"| {k} | {v:.3f} |" for k, v in inf.items()]
    print("\n".join(lines), flush=True)
    model = HeadModel(convert_ict(ICT, regions=("face",), n_shape=20))
    rows = [("resnet50, 224 px, batch 2x3 views, landmark losses", ("resnet50", 224, 2, False)),
            ("resnet50, 224 px, batch 2x3 views, + flow loss", ("resnet50", 224, 2, True)),
            ("resnet18, 64 px, batch 4x3 views, landmark losses", ("resnet18", 64, 4, False)),
            ("resnet18, 64 px, batch 4x3 views, + flow loss", ("resnet18", 64, 4, True))]
    lines += ["", "| training step (fwd + losses + bwd + Adam, CPU) | median s |", "| --- | --- |"]
    for name, a in rows:
        lines.append(f"| {name} | {bench_train_step(model, *a, runs=max(2, args.runs // 2)):.3f} |")
        print(lines[-1], flush=True)
    if args.train_steps > 0:
        before, after, dt = short_training(model, args.train_steps, Path(args.out))
        lines += ["", f"Short training run: {args.train_steps} steps in {dt / 60:.1f} min (ICT face region, 20 shape "
                  "modes; synthetic subjects rendered on the fly at 64 px with a random frontal anchor and random "
                  "left/right yaws; ResNet-18 meanmax, batch 4, Adam 1e-3, eq. 11 weights, flow loss every 4 steps). "
                  "Held-out: 16 unseen synthetic subjects, yaws -40/0/40.", "",
                  "| held-out error | untrained | trained |", "| --- | --- | --- |"]
        names = {"shape_mm": "identity shape, mm (pupil-normalised, aligned)", "full_mm": "shape + expression, mm",
                 "mean_face_mm": "mean face (reference), mm", "rotation_deg": "head rotation, deg"}
        lines += [f"| {names[k]} | {before[k]:.2f} | {after[k]:.2f} |" for k in names]
    md = "\n".join(lines)
    print("\n" + md)
    if not args.no_write:
        write_section(md, REPO / "docs" / "benchmarks.md")


if __name__ == "__main__":
    main()
