"""Real-scan NoW error, one line per case: quick measurements while tuning the fit.

    .venv/bin/python benchmarks/bench_real.py --cases james,james-cal,lee-30,lee-60,lee-1 \\
        --preset default [--set iters.photo=0 --set section.field=value ...] [--threads 1] [--no-baselines]

Per case it prints the NoW median scan-to-mesh error (mm) of the fitted mesh and of the neutral mesh
(the reconstruction's neutral head, :mod:`mfnet.fit.neutral`) for ``--preset`` with the ``--set`` FitConfig
overrides, next to the model's mean head and the landmarks-only fit (preset fast, no overrides; skipped
with ``--no-baselines``), and the seconds of the reconstruct call.  Cases: ``james`` / ``james-cal`` (two
real photos, uncalibrated / calibrated rig), ``james-1`` (the left photo alone) and the Lee Perry-Smith
renders (``lee-1``, ``lee-1-y30``, ``lee-1-y60``, ``lee-1-y75``, ``lee-1-p20``, ``lee-1-pm20``, ``lee-30``,
``lee-60``, ``lee-lowres``, ``lee-1-small``), see
:mod:`mfnet.evaluate.realscans`.  Data: ``$MFNET_REALSCANS_DIR`` or ``../shared/data/realscans``.
The same numbers as a report: ``mfnet bench --real``.  From Python::

    from mfnet.evaluate.realscans import run_case
    run_case("james", "default", **{"iters.photo": 0})["fitted_median"]
"""
from __future__ import annotations

import argparse
import sys

import torch

from _common import parse_overrides  # noqa: E402  (benchmarks/ is on sys.path when run as a script)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cases", default="james,james-cal,lee-30,lee-60,lee-1")
    p.add_argument("--preset", default="default", choices=["fast", "default", "best"])
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="fit setting override, e.g. iters.photo=0 (repeatable; names: mfnet.fit.config)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--no-baselines", action="store_true", help="skip the mean-head and fast columns")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    from mfnet.errors import MfnetError
    from mfnet.evaluate.realscans import _model, run_case, run_mean_head

    overrides = parse_overrides(args.set)
    try:
        model = _model(None)
        extra = f" {overrides}" if overrides else ""
        print(f"NoW median mm (fitted / neutral), preset {args.preset}{extra}, {args.threads} thread(s)")
        for case in [c.strip() for c in args.cases.split(",") if c.strip()]:
            r = run_case(case, args.preset, model, **overrides)
            line = (f"{case:12s} {args.preset} fitted {r['fitted_median']:.3f}  neutral {r['neutral_median']:.3f}  "
                    f"({r['seconds']:.1f} s, {r['used_views']}/{r['views']} views)")
            if not args.no_baselines:
                m = run_mean_head(case, model)
                f = run_case(case, "fast", model)
                line += f"  | mean head {m['fitted_median']:.3f}  fast {f['fitted_median']:.3f} / {f['neutral_median']:.3f}"
            print(line, flush=True)
    except MfnetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
