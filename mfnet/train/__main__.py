"""``python -m mfnet.train CONFIG [--resume]`` (also what torchrun starts on every rank)."""
import argparse
import logging
import sys

from ..errors import MfnetError
from .cli import add_arguments, cmd_train


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m mfnet.train", description="train the MFNet network")
    add_arguments(p)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        return cmd_train(args)
    except MfnetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
