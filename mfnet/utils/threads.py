"""How many CPU threads to use, set once for torch, OpenCV and OpenMP together.

On a shared machine, more threads than free cores make PyTorch's spin-waiting workers fight over
cores: a 10 s reconstruction took 201 s with the default settings beside other busy processes, and
10.6 s with one thread (docs/benchmarks.md, "Threads"). :func:`default_threads` therefore starts from
the physical cores this process may use and takes away the cores other processes keep busy (the
1-minute load average), never going below one.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

__all__ = ["physical_cores", "default_threads", "set_threads", "add_threads_argument"]


def _usable_cpus() -> set[int]:
    try:
        return set(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return set(range(os.cpu_count() or 1))


def physical_cores() -> int:
    """Physical cores among the CPUs this process may run on (hyper-threads counted once)."""
    cpus = _usable_cpus()
    cores: set[tuple[str, str]] = set()
    try:
        for cpu in cpus:
            topo = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology")
            cores.add(((topo / "physical_package_id").read_text().strip(), (topo / "core_id").read_text().strip()))
    except OSError:
        return max(1, len(cpus))
    return max(1, len(cores))


def default_threads(load: float | None = None) -> int:
    """Physical cores minus those other processes keep busy (``load``: default the 1-minute load average)."""
    cores = physical_cores()
    if load is None:
        try:
            load = os.getloadavg()[0]
        except (AttributeError, OSError):
            load = 0.0
    busy = int(round(max(0.0, float(load))))
    return max(1, min(cores, cores - busy if busy < cores else 1))


def set_threads(n: int | None = None) -> int:
    """Use ``n`` threads (default :func:`default_threads`) in torch, OpenCV and OpenMP/MKL; returns ``n``.

    Cheap: it sets the environment variables that torch and OpenCV read when they are first imported,
    and sets the libraries directly only when they are already imported. So the command line calls it
    before its argument checks and the heavy imports still happen only when needed.
    """
    n = int(n) if n else default_threads()
    if n < 1:
        raise ValueError(f"threads must be at least 1, got {n}")
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OPENCV_FOR_THREADS_NUM"):
        os.environ[var] = str(n)
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        torch.set_num_threads(n)
        try:
            torch.set_num_interop_threads(n)
        except RuntimeError:  # fixed once parallel work ran in this process
            pass
    if "cv2" in sys.modules:
        sys.modules["cv2"].setNumThreads(n)
    return n


def add_threads_argument(parser) -> None:
    """``--threads N`` for a heavy command (read by the command line before the command runs)."""
    parser.add_argument("--threads", type=int, default=None, metavar="N",
                        help="CPU threads (default: physical cores not kept busy by other processes)")
