"""``python -m mfnet.train CONFIG [--resume]`` (also what torchrun starts on every rank): the command
line lives in :mod:`mfnet.cli.train`; this entry point is where ``python -m`` looks for it."""
import sys

from ..cli.train import main

if __name__ == "__main__":
    sys.exit(main())
