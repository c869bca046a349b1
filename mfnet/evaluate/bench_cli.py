"""`mfnet bench`: the synthetic multi-view benchmark of :mod:`mfnet.evaluate.bench` (paper Table 1 / 3 layout)."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..utils.threads import add_threads_argument

QUICK = {"subjects": 2, "bins": ("0-5", "60-90"), "preset": "fast", "size": 256}


def register(subparsers) -> None:
    """Add ``mfnet bench`` to an argparse subparsers object."""
    p = subparsers.add_parser(
        "bench", help="synthetic multi-view benchmark: CD/MNE/CR per angle bin, 1 vs 3 views (./mfnet-bench)",
        description="Render random heads of the open model, reconstruct each from 1 photo (a query yaw drawn "
                    "in each angle bin) and from 3 photos (the query + -30/+30 degrees), and report FaceScape "
                    "CD/MNE/CR on the face region after pupil scaling and rigid alignment.")
    p.add_argument("--subjects", type=int, default=None, help="number of random subjects (default 4; 2 with --quick)")
    p.add_argument("--bins", nargs="+", choices=["0-5", "5-30", "30-60", "60-90"], default=None,
                   help="angle bins (default: all four)")
    p.add_argument("--preset", default=None, choices=["fast", "default", "best"],
                   help="fit preset (default: default; fast with --quick)")
    p.add_argument("--size", type=int, default=None, help="render size in pixels (default 512; 256 with --quick)")
    p.add_argument("--model", default=None, help="head model name or .npz (default: ict-facekit)")
    p.add_argument("--checkpoint", default=None, help="network checkpoint: adds 'net' and 'net+fit' rows")
    p.add_argument("--ablate", action="store_true",
                   help="also rerun the 3-view fit with each loss removed (paper Table 3)")
    p.add_argument("--quick", action="store_true",
                   help="tiny CI variant: 2 subjects, bins 0-5 and 60-90, preset fast, 256 px")
    p.add_argument("--out", type=Path, default=Path("mfnet-bench"), help="output folder (default ./mfnet-bench)")
    p.add_argument("--seed", type=int, default=0, help="benchmark seed (subjects and query yaws)")
    p.add_argument("--worst", type=int, default=3,
                   help="error heat-maps of the K worst subjects in the report (default 3)")
    add_threads_argument(p)
    p.set_defaults(func=cmd_bench)


def cmd_bench(args) -> int:
    import platform
    import shlex
    import sys

    import torch

    from ..headmodel.registry import load_head_model
    from .bench import run_benchmark, write_results

    if getattr(args, "threads", None):  # set by the command line already; kept for direct calls
        torch.set_num_threads(args.threads)
    q = QUICK if args.quick else {}
    subjects = args.subjects or q.get("subjects", 4)
    bins = args.bins or q.get("bins")
    preset = args.preset or q.get("preset", "default")
    size = args.size or q.get("size", 512)
    model = load_head_model(args.model)
    rows = run_benchmark(model, subjects=subjects, bins=bins, preset=preset, checkpoint=args.checkpoint,
                         seed=args.seed, size=size, ablate=args.ablate, progress=print)
    note = (f"model {model.name}, {subjects} subjects, seed {args.seed}, preset {preset}, {size} px renders, "
            f"torch threads {torch.get_num_threads()}, {platform.processor() or platform.machine()}")
    argv = sys.argv[1:] if sys.argv[1:2] == ["bench"] else ["bench", *sys.argv[1:]]
    command = shlex.join(["mfnet", *argv])
    paths = write_results(rows, args.out, note=note, command=command, worst_k=args.worst)
    print()
    print(paths["md"].read_text())
    print(f"wrote {paths['csv']}, {paths['md']} and {paths.get('html', '(no report)')}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry (``python -m mfnet.evaluate.bench_cli ...``) until ``mfnet bench`` is wired."""
    import logging

    parser = argparse.ArgumentParser(prog="mfnet")
    sub = parser.add_subparsers(dest="command")
    register(sub)
    args = parser.parse_args(["bench", *(argv if argv is not None else __import__("sys").argv[1:])])
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    return int(args.func(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
