"""`mfnet train CONFIG [--resume]` (register with :func:`register_train`).

Multi-GPU / multi-process: ``torchrun --nproc_per_node K -m mfnet train CONFIG`` (gloo on CPU, nccl on GPU;
``python -m mfnet`` is the ``mfnet`` command, :mod:`mfnet.__main__`).
"""
from __future__ import annotations

import argparse
import logging
import sys

from ..errors import MfnetError


def register_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train the MFNet network from a YAML config (self-supervised, multi-view)")
    add_arguments(p)
    p.set_defaults(func=cmd_train)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", nargs="?", help="training config (YAML); see --print-config")
    p.add_argument("--resume", nargs="?", const=True, default=False, metavar="CKPT",
                   help="continue from OUT_DIR/checkpoints/last.pt (or from CKPT)")
    p.add_argument("--steps", type=int, default=None, help="override optim.steps")
    p.add_argument("--out", default=None, help="override out_dir")
    p.add_argument("--print-config", action="store_true", help="print the default config as YAML and exit")
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="CPU threads per process (default: the config's `threads`, else physical cores not kept busy)")


def cmd_train(args) -> int:
    from ..train.config import ConfigError, TrainConfig, dump_config, load_config

    if args.print_config:
        print(dump_config(TrainConfig()), end="")
        return 0
    if not args.config:
        raise ConfigError("mfnet train: give a config file (write one with `mfnet train --print-config > train.yaml`)")
    cfg = load_config(args.config)
    if args.steps is not None:
        cfg.optim.steps = args.steps
    if args.out is not None:
        cfg.out_dir = args.out
    if getattr(args, "threads", None):
        cfg.threads = args.threads
    from ..train.trainer import train

    train(cfg, resume=args.resume)
    return 0
