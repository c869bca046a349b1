"""`mfnet` command line: ``mfnet <command> ...``. Expected errors print one line and exit 2."""
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
    from ..data.synth_cli import register_prepare, register_synth
    from ..evaluate.bench_cli import register as register_bench
    from ..evaluate.cli import register as register_evaluate
    from ..train.cli import register_train

    register_synth(sub)
    register_prepare(sub)
    register_train(sub)
    register_evaluate(sub)
    register_bench(sub)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s")
    warnings.formatwarning = lambda msg, cat, *a, **k: f"warning: {msg}\n"
    try:
        return int(args.func(args) or 0)
    except MfnetError as exc:
        if args.verbose:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
