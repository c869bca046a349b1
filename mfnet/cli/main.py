"""`mfnet` command line: ``mfnet <command> ...``. Expected errors print one line and exit 2.

Ctrl-C and SIGTERM print one line, remove temporary files and exit 130 / 143. Heavy commands take
``--threads N``; the thread count is set for torch, OpenCV and OpenMP before the command runs.
"""
from __future__ import annotations

import argparse
import logging
import sys
import warnings

from ..errors import MfnetError


def build_parser() -> argparse.ArgumentParser:
    from . import demo, models, reconstruct

    parser = argparse.ArgumentParser(
        prog="mfnet",
        description="Multi-view 3D face reconstruction with FLAME-format head models (CPU or GPU).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="show debug logging and full tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    reconstruct.register(sub)
    models.register(sub)
    demo.register(sub)
    _optional_commands(sub)
    return parser


def _optional_commands(sub) -> None:
    """The learned path and evaluation (their heavy modules import lazily inside)."""
    from .bench import register as register_bench
    from .evaluate import register as register_evaluate
    from .synth import register_prepare, register_synth
    from .train import register_train

    register_synth(sub)
    register_prepare(sub)
    register_train(sub)
    register_evaluate(sub)
    register_bench(sub)


def _apply_threads(args) -> None:
    n = getattr(args, "threads", None)
    if n is not None and n < 1:
        raise MfnetError(f"--threads {n}: give a number of threads of at least 1")
    if hasattr(args, "threads"):
        from ..utils.threads import set_threads

        args.threads_used = set_threads(n)
        logging.getLogger(__name__).debug("using %d CPU threads", args.threads_used)


def main(argv: list[str] | None = None) -> int:
    from ..utils.io import cleanup_on_signals

    verbose = False
    try:
        cleanup_on_signals()
        parser = build_parser()
        args = parser.parse_args(argv)
        verbose = args.verbose
        logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s")
        warnings.formatwarning = lambda msg, cat, *a, **k: f"warning: {msg}\n"
        _apply_threads(args)
        return int(args.func(args) or 0)
    except MfnetError as exc:
        if verbose:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        signum = getattr(exc, "signum", None)
        print("terminated" if signum else "interrupted", file=sys.stderr)
        return 128 + (signum or 2)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
