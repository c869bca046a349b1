"""`mfnet bench`: the synthetic multi-view benchmark of :mod:`mfnet.evaluate.bench` (paper Table 1 / 3 layout);
``mfnet bench --real``: the real-scan NoW benchmark of :mod:`mfnet.evaluate.bench_real`."""
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
    p.add_argument("--out", type=Path, default=None,
                   help="output folder (default ./mfnet-bench; ./mfnet-bench-real with --real)")
    p.add_argument("--seed", type=int, default=0, help="benchmark seed (subjects and query yaws)")
    p.add_argument("--worst", type=int, default=3,
                   help="error heat-maps of the K worst subjects in the report (default 3)")
    real = p.add_argument_group("real scans (--real)")
    real.add_argument("--real", action="store_true",
                      help="real-scan benchmark instead: NoW error of reconstructions of two real faces (James: 2 real "
                           "photos, uncalibrated and calibrated; Lee Perry-Smith: photo-realistic renders), data from "
                           "$MFNET_REALSCANS_DIR or ../shared/data/realscans")
    real.add_argument("--cases", default=None,
                      help="comma-separated cases (default: all; with --quick james,lee-1-small); "
                           "james, james-cal, lee-1, lee-1-y30, lee-1-y60, lee-1-y75, lee-1-p20, lee-1-pm20, lee-30, "
                           "lee-60, lee-lowres, lee-1-small")
    real.add_argument("--presets", default=None,
                      help="comma-separated fit presets, one row each besides the mean head (default fast,default,best; "
                           "fast with --quick)")
    real.add_argument("--overwrite", action="store_true",
                      help="write into an --out folder that holds other files (only mfnet's files are touched)")
    add_threads_argument(p)
    p.set_defaults(func=cmd_bench)


def cmd_bench(args) -> int:
    if getattr(args, "real", False):
        return cmd_bench_real(args)
    if args.out is None:
        args.out = Path("mfnet-bench")
    import platform
    import shlex
    import sys

    import torch

    from ..calibrate.install import load_model
    from ..evaluate.bench import run_benchmark
    from ..evaluate.bench_results import write_results

    if getattr(args, "threads", None):  # set by the command line already; kept for direct calls
        torch.set_num_threads(args.threads)
    q = QUICK if args.quick else {}
    subjects = args.subjects or q.get("subjects", 4)
    bins = args.bins or q.get("bins")
    preset = args.preset or q.get("preset", "default")
    size = args.size or q.get("size", 512)
    model = load_model(args.model)
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


def _split(text: str | None) -> list[str] | None:
    return None if text is None else [t.strip() for t in text.split(",") if t.strip()]


def cmd_bench_real(args) -> int:
    """``mfnet bench --real``: reconstruct every case with every preset, score against the scans, write the
    CSV, the Markdown table, the figures and report.html into --out (see :mod:`mfnet.evaluate.bench_real`)."""
    import platform
    import shlex
    import sys

    import torch

    from ..errors import MfnetError
    from ..calibrate.install import load_model
    from ..utils.io import check_output_dir, output_dir
    from ..evaluate.bench_real import DEFAULT_CASES, DEFAULT_PRESETS, QUICK, run_real_benchmark, write_real_results
    from ..evaluate.realscans import case_names, realscans_dir

    if getattr(args, "threads", None):
        torch.set_num_threads(args.threads)
    out = args.out if args.out is not None else Path("mfnet-bench-real")
    cases = _split(args.cases) or list(QUICK["cases"] if args.quick else DEFAULT_CASES)
    presets = _split(args.presets) or ([args.preset] if args.preset else None) or list(
        QUICK["presets"] if args.quick else DEFAULT_PRESETS)
    for c in cases:
        if c not in case_names():
            raise MfnetError(f"--cases: unknown case {c!r}; choose from {', '.join(case_names())}")
    for p in presets:
        if p not in ("fast", "default", "best"):
            raise MfnetError(f"--presets: unknown preset {p!r}; choose from fast, default, best")
    realscans_dir()  # missing data: one line, before any work
    check_output_dir(out, overwrite=args.overwrite)
    model = load_model(args.model)
    rows = run_real_benchmark(cases, presets, model=model, progress=print)
    note = (f"model {model.name}, cases {', '.join(cases)}, presets {', '.join(presets)}, "
            f"torch threads {torch.get_num_threads()}, {platform.processor() or platform.machine()}")
    argv = sys.argv[1:] if sys.argv[1:2] == ["bench"] else ["bench", *sys.argv[1:]]
    command = shlex.join(["mfnet", *argv])
    with output_dir(out, overwrite=args.overwrite) as tmp:
        write_real_results(rows, tmp, note=note, command=command)
    print()
    print((out / "bench_real.md").read_text())
    print(f"wrote {out / 'bench_real.csv'}, {out / 'bench_real.md'} and {out / 'report.html'}")
    return 0
