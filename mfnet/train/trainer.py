"""The training loop: self-supervised multi-view training of :class:`~mfnet.net.MFNet` (paper §3.5, §4.1).

* Adam (lr 1e-3), optional step decay, gradient clipping; mixed precision (``torch.autocast``) on
  GPU only; the head model and losses always run in float32.
* Distributed data parallel when started by ``torchrun`` (``WORLD_SIZE`` > 1): gloo on CPU, nccl on
  GPU, a :class:`DistributedSampler` per epoch; rank 0 logs and writes checkpoints.
* Exact resume: checkpoints hold model, optimizer, scheduler, grad-scaler, step and every rank's RNG
  states; the batch order is a function of (seed, epoch) and the position in the epoch is derived
  from the step, so ``--resume`` continues exactly where the checkpoint was written (bit-identical
  on CPU with ``deterministic: true``).
"""
from __future__ import annotations

import logging
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, DistributedSampler

from ..errors import MfnetError
from ..net import MFNet, load_init, read_checkpoint, save_checkpoint
from ..utils.options import resolve_device
from .config import TrainConfig, dump_config
from .losses import TrainLoss

log = logging.getLogger(__name__)


class TrainError(MfnetError):
    """Training cannot start or resume."""


# ------------------------------------------------------------------------------------------ set-up
def _dist_info() -> tuple[int, int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0")), world


def _device(cfg: TrainConfig, local_rank: int) -> torch.device:
    """The config's device; on CUDA, this process's GPU (``LOCAL_RANK``)."""
    if resolve_device(cfg.device, option="device:").type != "cuda":
        return torch.device("cpu")
    torch.cuda.set_device(local_rank)
    return torch.device("cuda", local_rank)


def build_dataset(cfg: TrainConfig, model):
    from ..data.datasets import SyntheticMultiView, open_dataset

    d = cfg.data
    if d.kind == "synthetic":
        return SyntheticMultiView(model, d.n_subjects, d.yaws, d.image_size, d.seed, d.n_views, cache=d.cache_items,
                                  shape_scale=d.shape_scale, expression_scale=d.expression_scale)
    if d.kind == "synthetic_folder":
        return SyntheticMultiView.from_folder(d.root, d.n_views, d.seed)
    return open_dataset(d.kind, d.root, n_views=d.n_views, image_size=d.image_size, seed=d.seed,
                        cache_dir=d.cache_dir)


def camera_prior(model, dataset, n_items: int = 8) -> tuple[float, float, float]:
    """(scale, tx, ty) that frames the mean head like the dataset's frontal views do (median of a
    closed-form weak-perspective fit of the mean head's landmarks on a few anchors)."""
    from ..fit.init import weak_perspective_lsq

    items = [dataset[i] for i in range(min(n_items, len(dataset)))]
    target = torch.stack([it["landmarks"][0] for it in items]).float()
    w = torch.stack([it["landmark_weights"][0] for it in items]).float()
    with torch.no_grad():
        mean = model().landmarks.float().cpu().expand(len(items), -1, -1)
    s, t = weak_perspective_lsq(mean, target, w, items[0]["images"].shape[-1])
    return float(s.median()), float(t[:, 0].median()), float(t[:, 1].median())


def _rng_state() -> dict:
    st = {"torch": torch.get_rng_state(), "numpy": np.random.get_state()[1].tolist(),
          "numpy_pos": int(np.random.get_state()[2]), "python": list(random.getstate()[1])}
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state()
    return st


def _set_rng_state(st: dict) -> None:
    torch.set_rng_state(st["torch"])
    np.random.set_state(("MT19937", np.array(st["numpy"], dtype=np.uint32), st["numpy_pos"], 0, 0.0))
    random.setstate((3, tuple(st["python"]), None))
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state(st["cuda"])


def _gather_rng(world: int) -> list:
    st = _rng_state()
    if world == 1:
        return [st]
    out = [None] * world
    dist.all_gather_object(out, st)
    return out


class _Batches:
    """Batches of a distributed epoch, from a position inside it."""

    def __init__(self, batches):
        self.batches = batches

    def __iter__(self):
        return iter(self.batches)

    def __len__(self):
        return len(self.batches)


# ----------------------------------------------------------------------------------------- training
@dataclass
class _Process:
    """This process in the (possibly distributed) run."""

    rank: int
    local_rank: int
    world: int
    device: torch.device

    @property
    def distributed(self) -> bool:
        return self.world > 1


def _start_process(cfg: TrainConfig) -> _Process:
    """Rank, device, process group, threads and determinism; seeds the global RNG with ``cfg.seed``."""
    rank, local_rank, world = _dist_info()
    proc = _Process(rank, local_rank, world, _device(cfg, local_rank))
    if proc.distributed and not dist.is_initialized():
        dist.init_process_group("nccl" if proc.device.type == "cuda" else "gloo")
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    if cfg.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    torch.manual_seed(cfg.seed)
    return proc


def _read_resume(resume: bool | str, ckpt_dir: Path) -> dict | None:
    if not resume:
        return None
    path = Path(resume) if isinstance(resume, (str, os.PathLike)) else ckpt_dir / "last.pt"
    if not path.is_file():
        raise TrainError(f"{path}: nothing to resume from; start without --resume or give a checkpoint")
    return read_checkpoint(path)


def _build_net(cfg: TrainConfig, model, dataset, ckpt: dict | None, rank: int) -> MFNet:
    """The checkpoint's architecture, or a new network (camera prior from the data, optional init weights)."""
    if ckpt is not None:
        return MFNet(**ckpt["net_config"])
    n = cfg.net
    net = MFNet(model.n_shape, model.n_expr, n.backbone, n.fusion, cfg.data.n_views, n.tex_dim, n.hidden,
                n.image_size, n.view_dropout, model.expression_bounds, camera_prior(model, dataset))
    if n.init != "none":
        report = load_init(net, n.init, n.init_path)
        if rank == 0:
            log.info("%s", report)
    return net


@dataclass
class _Optimisation:
    """Optimizer, learning-rate schedule and gradient scaler (mixed precision on GPU only)."""

    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    amp: bool

    @classmethod
    def create(cls, cfg: TrainConfig, net: MFNet, device: torch.device) -> "_Optimisation":
        opt = torch.optim.Adam(net.parameters(), lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay)
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=cfg.optim.lr_step or 10 ** 12,
                                                gamma=cfg.optim.lr_gamma)
        amp = cfg.optim.amp and device.type == "cuda"
        return cls(opt, sched, torch.amp.GradScaler("cuda", enabled=amp), amp)

    def state(self) -> dict:
        out = dict(optimizer=self.opt.state_dict(), scheduler=self.sched.state_dict())
        if self.amp:
            out["scaler"] = self.scaler.state_dict()
        return out

    def load(self, ckpt: dict) -> None:
        self.opt.load_state_dict(ckpt["optimizer"])
        self.sched.load_state_dict(ckpt["scheduler"])
        if "scaler" in ckpt and self.amp:
            self.scaler.load_state_dict(ckpt["scaler"])

    def step(self, net: MFNet, total: torch.Tensor, grad_clip: float) -> None:
        self.opt.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        if grad_clip > 0:
            self.scaler.unscale_(self.opt)
            torch.nn.utils.clip_grad_norm_(net.parameters(), grad_clip)
        self.scaler.step(self.opt)
        self.scaler.update()
        self.sched.step()


def _restore(ckpt: dict, net: MFNet, optim: _Optimisation, proc: _Process) -> int:
    """Load a checkpoint's weights, optimisation state and this rank's random streams; its step."""
    net.load_state_dict(ckpt["model"])
    optim.load(ckpt)
    rngs = ckpt.get("rng") or []
    if len(rngs) == proc.world:
        _set_rng_state(rngs[proc.rank])
    elif proc.rank == 0:
        log.warning("resuming on %d processes from a %d-process run: random streams restart", proc.world, len(rngs))
    return int(ckpt["step"])


class _Monitor:
    """Rank 0's progress bar, TensorBoard/CSV logs, image grids and synthetic evaluation (other ranks:
    nothing)."""

    def __init__(self, cfg: TrainConfig, model, rank: int, step: int):
        self.cfg, self.model, self.active = cfg, model, rank == 0
        self.t_last = time.perf_counter()
        if not self.active:
            return
        from tqdm.auto import tqdm

        from .logger import make_logger

        out_dir = Path(cfg.out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "config.yaml").write_text(dump_config(cfg))
        self.logger = make_logger(out_dir / "logs")
        self.bar = tqdm(total=cfg.optim.steps, initial=step, desc="training", unit="step", disable=not cfg.progress,
                        dynamic_ncols=True)
        self.eval_set = _eval_set(cfg, model) if cfg.eval_every > 0 else None

    def after_step(self, step: int, values: dict, lr: float, net: MFNet, out, batch, lmk2d) -> None:
        if not self.active:
            return
        cfg, logger = self.cfg, self.logger
        self.bar.update(1)
        self.bar.set_postfix(loss=f"{values['total']:.4f}", refresh=False)
        if step % cfg.log_every == 0 or step == cfg.optim.steps:
            now = time.perf_counter()
            for k, v in values.items():
                logger.add_scalar(f"loss/{k}", v, step)
            logger.add_scalar("lr", lr, step)
            logger.add_scalar("time/step_s", (now - self.t_last) / cfg.log_every, step)
            self.t_last = now
        if cfg.image_every and (step % cfg.image_every == 0 or step == 1):
            logger.add_image("views", _image_grid(self.model, out, batch, lmk2d), step)
        if self.eval_set is not None and step % cfg.eval_every == 0:
            from .evaluate import evaluate_synthetic

            for k, v in evaluate_synthetic(net, self.model, self.eval_set).items():
                logger.add_scalar(f"eval/{k}", v, step)
        logger.flush()

    def close(self) -> None:
        if self.active:
            self.bar.close()
            self.logger.close()


def _save(cfg: TrainConfig, net: MFNet, optim: _Optimisation, proc: _Process, at: int) -> None:
    """Checkpoint step ``at`` (rank 0 writes ``last.pt`` and ``step_<at>.pt``, keeping the newest
    ``cfg.keep_checkpoints``); every rank takes part (buffers and random streams are gathered)."""
    if proc.distributed:  # BatchNorm running stats: rank 0's, as DDP itself broadcasts before each forward
        for buf in net.buffers():
            dist.broadcast(buf, 0)
    rngs = _gather_rng(proc.world)
    if proc.rank != 0:
        return
    ckpt_dir = Path(cfg.out_dir) / "checkpoints"
    extra = dict(**optim.state(), rng=rngs, train_config=cfg.to_dict(), world_size=proc.world)
    save_checkpoint(ckpt_dir / "last.pt", net, step=at, head_model=cfg.head_model, **extra)
    save_checkpoint(ckpt_dir / f"step_{at:07d}.pt", net, step=at, head_model=cfg.head_model, **extra)
    old = sorted(ckpt_dir.glob("step_*.pt"))[:-cfg.keep_checkpoints] if cfg.keep_checkpoints > 0 else []
    for f in old:
        f.unlink(missing_ok=True)


def _epoch_loader(cfg: TrainConfig, dataset, sampler: DistributedSampler, step: int, n_per_epoch: int,
                  device: torch.device) -> DataLoader:
    """The rest of the epoch that ``step`` falls in: its batches in the (seed, epoch) order."""
    epoch, within = divmod(step, n_per_epoch)
    sampler.set_epoch(epoch)
    if hasattr(dataset, "set_epoch"):
        dataset.set_epoch(epoch)
    idx, bs = list(sampler), cfg.optim.batch_size
    batches = _Batches([idx[i * bs:(i + 1) * bs] for i in range(within, n_per_epoch)])
    # own generator: creating a loader iterator must not consume the global RNG (exact resume)
    return DataLoader(dataset, batch_sampler=batches, num_workers=cfg.data.workers, pin_memory=device.type == "cuda",
                      generator=torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch))


def train(cfg: TrainConfig, resume: bool | str = False, model=None, dataset=None, callback=None) -> MFNet:
    """Train (or resume) and return the network (unwrapped, on its device).

    ``resume``: True resumes from ``<out_dir>/checkpoints/last.pt``; a path resumes from that file.
    ``callback(step, terms)`` is called on every rank after each step (tests, custom monitoring).
    """
    proc = _start_process(cfg)
    device = proc.device
    if model is None:
        from ..calibrate.install import load_model

        model = load_model(cfg.head_model)
    model = model.to(device)
    dataset = dataset if dataset is not None else build_dataset(cfg, model)
    n_per_epoch = len(dataset) // proc.world // cfg.optim.batch_size
    if n_per_epoch < 1:
        raise TrainError(f"{len(dataset)} training subjects cannot fill one batch of {cfg.optim.batch_size} on "
                         f"{proc.world} process(es): lower optim.batch_size or add data")
    ckpt = _read_resume(resume, Path(cfg.out_dir) / "checkpoints")
    net = _build_net(cfg, model, dataset, ckpt, proc.rank).to(device)
    optim = _Optimisation.create(cfg, net, device)
    step = 0
    torch.manual_seed(cfg.seed + 7919 * proc.rank)  # per-rank randomness (view dropout)
    if ckpt is not None:
        step = _restore(ckpt, net, optim, proc)
    ddp = torch.nn.parallel.DistributedDataParallel(net, device_ids=[proc.local_rank] if device.type == "cuda"
                                                    else None) if proc.distributed else net
    loss_fn = TrainLoss(model, cfg.loss, seed=cfg.seed)
    monitor = _Monitor(cfg, model, proc.rank, step)
    sampler = DistributedSampler(dataset, num_replicas=proc.world, rank=proc.rank, shuffle=True, seed=cfg.seed,
                                 drop_last=True)
    while step < cfg.optim.steps:
        for batch in _epoch_loader(cfg, dataset, sampler, step, n_per_epoch, device):
            net.train()
            images = batch["images"].to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=torch.float16, enabled=optim.amp):
                out = ddp(images)
            total, terms, lmk2d = loss_fn(out, batch, step)
            optim.step(net, total, cfg.optim.grad_clip)
            step += 1
            values = {k: float(v.detach()) for k, v in terms.items()}
            values["total"] = float(total.detach())
            if callback is not None:
                callback(step, values)
            monitor.after_step(step, values, optim.sched.get_last_lr()[0], net, out, batch, lmk2d)
            if cfg.ckpt_every and step % cfg.ckpt_every == 0 and step < cfg.optim.steps:
                _save(cfg, net, optim, proc, step)
            if step >= cfg.optim.steps:
                break
    _save(cfg, net, optim, proc, step)
    monitor.close()
    if proc.distributed:
        dist.barrier()
    return net


def _eval_set(cfg: TrainConfig, model):
    from ..data.datasets import SyntheticMultiView

    yaws = cfg.data.yaws or [-45.0, 0.0, 45.0][:cfg.data.n_views]
    return SyntheticMultiView(model, cfg.eval_subjects, yaws, cfg.data.image_size, seed=cfg.data.seed + 99991,
                              n_views=cfg.data.n_views, cache=True, shape_scale=cfg.data.shape_scale,
                              expression_scale=cfg.data.expression_scale)


@torch.no_grad()
def _image_grid(model, out, batch, lmk2d):
    from ..render.shading import frontal_light
    from ..render import Renderer, WeakPerspectiveCameras
    from .logger import landmark_grid

    images = batch["images"][:1]
    N, S = images.shape[1], images.shape[-1]
    sub = type(out)(**{k: getattr(out, k)[:1].detach().float() for k in out.__dataclass_fields__})
    head = TrainLoss(model).head(sub, landmarks_only=False)
    cams = WeakPerspectiveCameras(sub.scale[0], sub.trans[0])
    grey = torch.full((N, model.num_vertices, 3), 0.7, device=head.vertices.device)
    r = Renderer(S).render(head.vertices, model.faces, cams, vertex_colors=grey,
                           sh_coeffs=frontal_light(n=N).to(head.vertices.device),
                           background=images[0].to(head.vertices.device))
    return landmark_grid(images, batch["landmarks"][:1], lmk2d[:1].detach(), r.image[None].cpu())
