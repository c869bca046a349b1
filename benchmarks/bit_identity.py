"""Does a change move the reconstruction? Write the results of fixed reconstructions of the real
James photos for this checkout, then compare two such files bit for bit.

    .venv/bin/python benchmarks/bit_identity.py write before.npz      # on the commit before
    .venv/bin/python benchmarks/bit_identity.py write after.npz       # on the commit after
    .venv/bin/python benchmarks/bit_identity.py compare before.npz after.npz

Cases (1 torch thread, default preset): the two photos uncalibrated, calibrated (``--cameras`` from the
stereo rig), the left photo alone, and uncalibrated with 20 flow / 40 photometric steps. Saved per case:
canonical vertices, view rotations / scales / translations, shape code, fitted landmarks, SH lights and
texture. Checkouts older than the sectioned settings (``mfnet.fit.config``) are given the old flat names.
"""
from __future__ import annotations

import argparse
import sys
import warnings

import numpy as np


def _short_stages() -> dict:
    try:
        import mfnet.fit.config  # noqa: F401  (sectioned settings)
        return {"iters.photo": 40, "iters.flow": 20}
    except ImportError:
        return {"iters_photo": 40, "iters_flow": 20}


def write(path: str) -> None:
    import torch

    from mfnet.evaluate.realscans import james_views
    from mfnet.pipeline import reconstruct

    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    paths, cams = james_views(calibrated=True)
    paths = [str(p) for p in paths]
    cases = {"uncal": (paths, {}), "cal": (paths, {"cameras": cams}), "single": (paths[:1], {}),
             "uncal_iters": (paths, _short_stages())}
    out = {}
    for name, (images, kw) in cases.items():
        rec = reconstruct(images, preset="default", progress=False, **kw)
        v = rec.views
        out.update({f"{name}_v": rec.vertices, f"{name}_rot": v.rotation.numpy(), f"{name}_s": v.scale.numpy(),
                    f"{name}_t": v.trans.numpy(), f"{name}_shape": rec.head.shape.numpy(),
                    f"{name}_lmk": rec.fitted_landmarks})
        if v.light is not None:
            out[f"{name}_sh"] = v.light.numpy()
        if rec.texture is not None:
            out[f"{name}_tex"] = rec.texture
        print(name, "done", flush=True)
    np.savez(path, **out)


def compare(a_path: str, b_path: str) -> int:
    """Prints each array as IDENTICAL or its largest difference; exit 1 when anything differs."""
    a, b = np.load(a_path), np.load(b_path)
    differ = 0
    for k in a.files:
        if k not in b.files:
            print(f"{k:18s} MISSING")
            differ += 1
            continue
        x, y = a[k], b[k]
        same = x.shape == y.shape and np.array_equal(x, y)
        differ += not same
        diff = "" if same or x.shape != y.shape else f" max {np.abs(x.astype(float) - y.astype(float)).max():.3g}"
        print(f"{k:18s} {'IDENTICAL' if same else 'DIFFERS' + diff}")
    return 1 if differ else 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("write").add_argument("out")
    c = sub.add_parser("compare")
    c.add_argument("a")
    c.add_argument("b")
    args = p.parse_args()
    if args.cmd == "write":
        write(args.out)
        return 0
    return compare(args.a, args.b)


if __name__ == "__main__":
    sys.exit(main())
