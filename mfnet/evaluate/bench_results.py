"""Tables and files of the synthetic benchmark (:mod:`mfnet.evaluate.bench`): per method/views and
angle bin averages (paper Table 1 layout), the ablation (Table 3), ``bench.csv`` / ``bench.md`` and,
through :mod:`mfnet.evaluate.bench_report`, the figures and ``report.html``."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .bench import ANGLE_BINS, CSV_FIELDS, METRICS, row_label
from .bench_report import markdown_document, write_report
from .files import write_csv


def _nanmean(xs) -> float:
    xs = [float(x) for x in xs if x is not None and math.isfinite(float(x))]
    return float(np.mean(xs)) if xs else float("nan")


def summary(rows: list[dict]) -> tuple[list[str], list[str], dict]:
    """(row labels, bins, {(label, bin): {cd, mne, cr, vertex_mm, n, failed}} plus {(label, None): seconds...})."""
    labels, bins, cells = [], [], {}
    for r in rows:
        lab = row_label(r)
        if lab not in labels:
            labels.append(lab)
        if r["bin"] not in bins:
            bins.append(r["bin"])
    bins.sort(key=lambda b: list(ANGLE_BINS).index(b) if b in ANGLE_BINS else 99)
    for lab in labels:
        mine = [r for r in rows if row_label(r) == lab]
        for b in bins:
            sel = [r for r in mine if r["bin"] == b]
            cells[lab, b] = {k: _nanmean(r[k] for r in sel) for k in (*METRICS, "vertex_mm")}
            cells[lab, b].update(n=len(sel), failed=sum(int(r["failed"]) for r in sel))
        cells[lab, None] = {"seconds": _nanmean(r["seconds"] for r in mine if not int(r["failed"])),
                            "used": _nanmean(r["used_views"] for r in mine if not int(r["failed"])),
                            "vertex_mm": _nanmean(r["vertex_mm"] for r in mine),
                            "n": len(mine), "failed": sum(int(r["failed"]) for r in mine)}
    return labels, bins, cells


def _f(x: float, fmt: str) -> str:
    return "–" if not math.isfinite(x) else format(x, fmt)


def markdown_table(rows: list[dict]) -> str:
    """Table 1 layout: rows = method/views, columns = CD / MNE / CR per angle bin, then the mean
    per-vertex error (mm, all bins), mean seconds per reconstruction, mean number of views whose
    face was detected (successful runs) and failed reconstructions (no face in any view)."""
    labels, bins, cells = summary(rows)
    head = ["method"] + [f"{m} {b}°" for b in bins for m in ("CD", "MNE", "CR")] + ["vertex mm", "s / rec", "views used", "failed"]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for lab in labels:
        vals = [lab]
        for b in bins:
            c = cells[lab, b]
            vals += [_f(c["cd"], ".2f"), _f(c["mne"], ".3f"), _f(c["cr"], ".3f")]
        a = cells[lab, None]
        vals += [_f(a["vertex_mm"], ".2f"), _f(a["seconds"], ".1f"), _f(a["used"], ".2f"), f"{a['failed']}/{a['n']}"]
        out.append("| " + " | ".join(vals) + " |")
    return "\n".join(out)


def vertex_table(rows: list[dict]) -> str:
    """Mean per-vertex face error (mm) per angle bin, one row per method/views."""
    labels, bins, cells = summary(rows)
    out = ["| method | " + " | ".join(f"{b}°" for b in bins) + " |", "|" + "---|" * (len(bins) + 1)]
    for lab in labels:
        out.append(f"| {lab} | " + " | ".join(_f(cells[lab, b]["vertex_mm"], ".2f") for b in bins) + " |")
    return "\n".join(out)


def ablation_table(rows: list[dict]) -> str:
    """Table 3 layout: the 3-view fit with all losses and with each loss removed; CD/MNE/CR and
    vertex error averaged over all bins."""
    sel = [r for r in rows if r["method"] == "fit" and str(r["views"]) == "3"]
    labels, _, _ = summary(sel)
    out = ["| losses | CD | MNE | CR | vertex mm | failed |", "|---|---|---|---|---|---|"]
    for lab in labels:
        mine = [r for r in sel if row_label(r) == lab]
        name = "all" if not mine[0]["ablation"] else "−" + mine[0]["ablation"]
        out.append(f"| {name} | {_f(_nanmean(r['cd'] for r in mine), '.2f')} | "
                   f"{_f(_nanmean(r['mne'] for r in mine), '.3f')} | {_f(_nanmean(r['cr'] for r in mine), '.3f')} | "
                   f"{_f(_nanmean(r['vertex_mm'] for r in mine), '.2f')} | "
                   f"{sum(int(r['failed']) for r in mine)}/{len(mine)} |")
    return "\n".join(out)


def write_results(rows: list[dict], out_dir, note: str = "", command: str | None = None,
                  report: bool = True, worst_k: int = 3) -> dict[str, Path]:
    """Write ``bench.csv`` (one line per reconstruction) and ``bench.md`` (the tables) to ``out_dir``,
    and with ``report`` the figures and ``report.html`` of :mod:`mfnet.evaluate.bench_report`
    (error curves and heat-maps need rows from :func:`run_benchmark` with their ``detail``)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    csv_path, md_path = out / "bench.csv", out / "bench.md"
    write_csv(csv_path, rows, CSV_FIELDS)
    tables = [("CD (mm), MNE (rad), CR on the face region; 'vertex mm' = mean per-vertex error, all bins.",
               markdown_table(rows)), ("Mean per-vertex face error (mm) per bin:", vertex_table(rows))]
    if any(r["ablation"] for r in rows):
        tables.append(("Ablation (3-view fit, all bins):", ablation_table(rows)))
    paths: dict[str, Path] = {"csv": csv_path, "md": md_path}
    figures: list[tuple[str, Path]] = []
    if report:
        rep = write_report(rows, out, tables, note=note, command=command, worst_k=worst_k)
        paths.update(rep["paths"])
        figures = rep["figures"]
    parts = markdown_document("mfnet bench (synthetic multi-view)", tables, note, command)
    if figures:
        parts += ["", "## Figures", "", f"Full report: [report.html]({paths['html'].name})", ""]
        for caption, fig in figures:
            parts += [f"![{caption}]({fig.relative_to(out).as_posix()})", ""]
    md_path.write_text("\n".join(parts).rstrip("\n") + "\n")
    return paths
