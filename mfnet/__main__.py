"""``python -m mfnet ...``: the ``mfnet`` command (also what torchrun starts on every rank:
``torchrun --nproc_per_node K -m mfnet train CONFIG``)."""
import sys

from .cli.main import main

if __name__ == "__main__":
    sys.exit(main())
