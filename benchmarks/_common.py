"""Shared by the benchmark scripts: timing loops and writing one section of docs/benchmarks.md."""
from __future__ import annotations

import re
from pathlib import Path


def write_section(title: str, md: str, path: Path) -> None:
    """Replace (or append) the ``## <title>`` section of ``path`` with ``md``."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    section = f"## {title}\n\n" + md.strip() + "\n"
    pat = re.compile(rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pat.search(text):
        text = pat.sub(lambda _: section + "\n", text, count=1).rstrip() + "\n"
    else:
        text = text.rstrip() + "\n\n" + section
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def run_times(fn, runs: int, warmup: int = 2) -> list[float]:
    """Wall-clock seconds of ``runs`` calls of ``fn`` after ``warmup`` untimed calls."""
    import time

    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return ts


def parse_overrides(items: list[str]) -> dict:
    """``["section.field=value", ...]`` (the scripts' repeatable ``--set``, e.g. ``iters.photo=0``) as fit
    overrides; :func:`mfnet.fit.config.apply_overrides` converts each value to its field's type and
    rejects unknown names."""
    from mfnet.errors import MfnetError
    from mfnet.fit.config import parse_settings

    try:
        return parse_settings(items)
    except MfnetError as exc:
        raise SystemExit(str(exc)) from None
