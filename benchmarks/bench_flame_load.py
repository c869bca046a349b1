"""Loading a real-size FLAME 2020 model: time and memory (issue 14 target: <= 1 s, <= 500 MB).

A FLAME-2020-sized stand-in (random arrays in FLAME's exact layout: 5,023 vertices, 9,976 faces,
400 shape+expression directions in one chumpy ``Ch``, sparse J_regressor; the DECA landmark embedding
with its torch tensors) is written to a temporary folder; a fresh interpreter then reads it with
mfnet's restricted unpickler, builds the model data (:func:`mfnet.headmodel.flame.build_flame_from_folder`)
and the torch module (:class:`mfnet.headmodel.model.HeadModel`), and reports the time of each step and
the peak resident memory (the interpreter with numpy/scipy/torch already imported, and the increase
the load adds to it). Library imports (torch alone takes seconds and most of the memory) are not timed.

    .venv/bin/python benchmarks/bench_flame_load.py [--repeats 3]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the FLAME file writers (test support)

CHILD = r"""
import json, resource, sys, time
import numpy as np, scipy.sparse, torch  # libraries imported first: their import is not the model's load
from mfnet.headmodel.flame import build_flame_from_folder
from mfnet.headmodel.model import HeadModel
torch.set_num_threads(1)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
data = build_flame_from_folder(sys.argv[1])
t1 = time.perf_counter()
model = HeadModel(data)
t2 = time.perf_counter()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"read_build_s": t1 - t0, "module_s": t2 - t1, "total_s": t2 - t0, "base_mb": base / 1024,
                  "peak_mb": peak / 1024, "added_mb": (peak - base) / 1024, "vertices": model.num_vertices,
                  "shape": model.n_shape, "expression": model.n_expr}))
"""


def write_folder(folder: Path) -> None:
    import fixtures_flame as ff

    arrays = ff.make_flame_arrays(V=5023, F=9976, n_comp=400, seed=0)
    ff.write_flame_pickle(folder / "generic_model.pkl", arrays)
    ff.write_deca_landmark_embedding(folder / "landmark_embedding.npy", ff.make_embedding(9976))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=3, help="fresh interpreters (the median is reported)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        write_folder(Path(tmp))
        size = (Path(tmp) / "generic_model.pkl").stat().st_size / 1e6
        runs = [json.loads(subprocess.run([sys.executable, "-c", CHILD, tmp], check=True, capture_output=True,
                                          text=True).stdout.strip().splitlines()[-1]) for _ in range(args.repeats)]
    med = {k: sorted(r[k] for r in runs)[len(runs) // 2] for k in runs[0]}
    print(f"generic_model.pkl {size:.0f} MB: {med['vertices']} vertices, {med['shape']} shape + {med['expression']} "
          f"expression directions")
    print(f"read + build {med['read_build_s']:.2f} s, HeadModel {med['module_s']:.2f} s, total {med['total_s']:.2f} s "
          f"(median of {len(runs)} fresh interpreters)")
    print(f"peak memory {med['peak_mb']:.0f} MB ({med['base_mb']:.0f} MB with numpy + torch imported, "
          f"+{med['added_mb']:.0f} MB for the load)")


if __name__ == "__main__":
    main()
