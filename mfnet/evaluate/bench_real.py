"""Real-scan benchmark (``mfnet bench --real``): NoW scan-to-mesh error of reconstructions of real faces.

Cases (:mod:`mfnet.evaluate.realscans`): ``james`` / ``james-cal`` (two real photos, uncalibrated /
calibrated rig) and ``lee-*`` (photo-realistic renders of the Lee Perry-Smith scan,
:data:`mfnet.evaluate.realscans_render.LEE_CASES`).  Rows per case: the model's mean head, the
landmarks-only fit (preset ``fast``) and the other presets asked for.  Columns: median / mean NoW
error (mm) of the fitted mesh, median of the neutral mesh (expression and jaw zero: what NoW scores),
the change of the fitted median against the mean head (%), the fitted median per face region
(:func:`mfnet.evaluate.realscans.scan_regions`) and the seconds of the reconstruct call.

Outputs (:func:`write_real_results`): ``bench_real.csv`` (one line per row), ``bench_real.md`` (the
table), ``figures/`` (the table as an image, cumulative error curves per case, error maps of the scan
coloured by the distance to the aligned prediction) and ``report.html``.
"""
from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from .files import write_csv
from .realscans import REGIONS, case_description, case_scan

DEFAULT_CASES = ("james", "james-cal", "james-1", "lee-1", "lee-1-y30", "lee-1-y60", "lee-1-y75", "lee-1-p20", "lee-1-pm20",
                 "lee-30", "lee-60", "lee-lowres")
DEFAULT_PRESETS = ("fast", "default", "best")
QUICK = {"cases": ("james", "lee-1-small"), "presets": ("fast",)}
METHOD_LABEL = {"mean head": "mean head", "fast": "landmarks-only (fast)"}
CSV_FIELDS = ("case", "method", "preset", "views", "used_views", "fitted_median", "fitted_mean", "fitted_std",
              "neutral_median", "neutral_mean", "vs_mean_head_pct", *[f"{r}_median" for r in REGIONS],
              "neutral_landmark_rmse", "seconds", "failed", "error")
ERRORMAP_CROP = 1.5  # error maps show the scan within 1.5x the NoW crop radius of its centre


def method_label(preset: str) -> str:
    return METHOD_LABEL.get(preset, preset)


def run_real_benchmark(cases=DEFAULT_CASES, presets=DEFAULT_PRESETS, model=None, root=None, progress=None,
                       **overrides) -> list[dict]:
    """One mean-head row and one row per preset for every case (a failed reconstruction is a row with
    ``failed=1`` and NaN metrics).  Rows keep ``'fitted'`` / ``'neutral'`` score dicts for the figures."""
    from .realscans import _model, realscans_dir, run_case, run_mean_head

    realscans_dir(root)  # a one-line error before any work when the data is missing
    model = _model(model)
    rows: list[dict] = []
    for case in cases:
        plan = ["mean head", *[p for p in presets if p != "mean head"]]
        base = None
        for preset in plan:
            try:
                if preset == "mean head":
                    r = run_mean_head(case, model, root)
                else:
                    r = run_case(case, preset, model, root, **overrides)
                r["failed"], r["error"] = 0, ""
            except Exception as exc:  # a detector miss is a benchmark result, reported in the table
                if preset == "mean head":
                    raise
                r = {"case": case, "preset": preset, "seconds": float("nan"), "views": 0, "used_views": 0,
                     "failed": 1, "error": f"{type(exc).__name__}: {exc}"[:200], "regions": {},
                     **{k: float("nan") for k in ("fitted_median", "fitted_mean", "fitted_std", "neutral_median",
                                                  "neutral_mean", "neutral_std")}}
            if preset == "mean head":
                base = r["fitted_median"]
            r["method"] = method_label(preset)
            r["vs_mean_head_pct"] = 100.0 * (r["fitted_median"] - base) / base
            r["neutral_landmark_rmse"] = r.get("neutral", {}).get("landmark_rmse", float("nan"))
            for name in REGIONS:
                r[f"{name}_median"] = r.get("regions", {}).get(name, float("nan"))
            r.pop("rec", None)  # reconstructions are large; the scores stay
            rows.append(r)
            if progress is not None:
                progress(f"{case:12s} {r['method']:22s} " + (
                    "FAILED " + r["error"] if r["failed"] else
                    f"fitted {r['fitted_median']:.2f} / {r['fitted_mean']:.2f} mm, neutral {r['neutral_median']:.2f} mm"
                    f" ({r['vs_mean_head_pct']:+.0f}% vs mean head), {r['used_views']}/{r['views']} views, "
                    f"{r['seconds']:.1f} s"))
    return rows


def _f(x, fmt: str) -> str:
    try:
        x = float(x)
    except (TypeError, ValueError):
        return "–"
    return "–" if not math.isfinite(x) else format(x, fmt)


def markdown_table(rows: list[dict]) -> str:
    """Rows case x method; NoW medians/means in mm, % change of the fitted median vs the mean head,
    per-region fitted medians (mm), seconds per reconstruction."""
    head = ["case", "method", "median mm", "mean mm", "neutral median mm", "vs mean head",
            *[f"{r} mm" for r in REGIONS], "s"]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        if r["failed"]:
            vals = [r["case"], r["method"], "failed"] + ["–"] * (len(head) - 3)
        else:
            vals = [r["case"], r["method"], _f(r["fitted_median"], ".2f"), _f(r["fitted_mean"], ".2f"),
                    _f(r["neutral_median"], ".2f"),
                    "–" if r["method"] == "mean head" else f"{_f(r['vs_mean_head_pct'], '+.0f')}%",
                    *[_f(r[f"{name}_median"], ".2f") for name in REGIONS],
                    "–" if r["method"] == "mean head" else _f(r["seconds"], ".1f")]
        out.append("| " + " | ".join(vals) + " |")
    return "\n".join(out)


def cases_table(rows: list[dict]) -> str:
    cases = list(dict.fromkeys(r["case"] for r in rows))
    out = ["| case | views | description |", "|---|---|---|"]
    for c in cases:
        views = max(int(r["views"]) for r in rows if r["case"] == c)
        out.append(f"| {c} | {views} | {case_description(c)} |")
    return "\n".join(out)


# --------------------------------------------------------------------------- figures
def plot_curves(rows: list[dict], path: Path) -> Path | None:
    """Cumulative NoW error curves (0-8 mm, fitted meshes), one panel per case, one line per method."""
    from .bench_report import _plt, cumulative_fraction
    from .now import CURVE_MAX_MM

    ok = [r for r in rows if not r["failed"] and "fitted" in r]
    cases = list(dict.fromkeys(r["case"] for r in ok))
    if not cases:
        return None
    plt = _plt()
    ncol = min(4, len(cases))
    nrow = math.ceil(len(cases) / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.6 * ncol, 3.2 * nrow), dpi=100, squeeze=False)
    xs = np.linspace(0.0, CURVE_MAX_MM, 161)
    for ax, case in zip(axes.ravel(), cases):
        for r in (r for r in ok if r["case"] == case):
            ax.plot(xs, cumulative_fraction(r["fitted"]["distances"], xs),
                    label=f"{r['method']} ({r['fitted_median']:.2f})")
        ax.set_title(case, fontsize=9)
        ax.set_xlim(0, CURVE_MAX_MM)
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, loc="lower right")
        ax.set_xlabel("scan-to-mesh error (mm)", fontsize=8)
    for ax in axes.ravel()[len(cases):]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_error_map(row: dict, path: Path, root=None, size: int = 320) -> Path:
    """The scan (face frame, within 1.5x the NoW crop radius) coloured by the distance of each cropped
    vertex to the aligned prediction (0-5 mm, grey outside the crop), frontal and at +-45 degrees."""
    from .bench import face_submesh
    from .bench_report import plot_heatmap
    from .now import crop_scan
    from .realscans import face_frame, load_scan

    scan = load_scan(case_scan(row["case"]), root)
    o, R = face_frame(scan.landmarks)
    L = scan.now_landmarks
    bridge = (L[1] + L[2]) / 2
    centre = L[4] + 0.3 * (bridge - L[4])
    radius = 1.4 * (np.linalg.norm(L[0] - L[3]) + np.linalg.norm(bridge - L[4])) / 2
    show = np.linalg.norm(scan.vertices - centre, axis=1) <= ERRORMAP_CROP * radius
    show |= crop_scan(scan.vertices, L)
    idx, sub = face_submesh(scan.faces, show, len(scan.vertices))
    remap = np.full(len(scan.vertices), -1)
    remap[idx] = np.arange(idx.size)
    detail = SimpleNamespace(pred=(scan.vertices[idx] - o) @ R.T, faces=sub, face_idx=remap[scan.crop_idx],
                             face_err=row["fitted"]["distances"])
    title = (f"{row['case']}, {row['method']}: NoW median {row['fitted_median']:.2f} mm "
             f"(scan coloured by its distance to the aligned prediction)")
    return plot_heatmap(detail, title, path, size=size)


def error_map_rows(rows: list[dict]) -> list[dict]:
    """The rows drawn as error maps: per case its last (most thorough) successful method, and per scan
    the mean head once."""
    out, seen_scan = [], set()
    for case in dict.fromkeys(r["case"] for r in rows):
        mine = [r for r in rows if r["case"] == case and not r["failed"] and "fitted" in r]
        scan = case_scan(case)
        if mine and scan not in seen_scan and mine[0]["method"] == "mean head":
            out.append(mine[0])
            seen_scan.add(scan)
        if len(mine) > 1:
            out.append(mine[-1])
    return out


def write_real_results(rows: list[dict], out_dir, note: str = "", command: str | None = None,
                       report: bool = True, root=None) -> dict[str, Path]:
    """Write ``bench_real.csv``, ``bench_real.md`` and (``report``) ``figures/`` and ``report.html`` into
    ``out_dir`` (a folder: the CLI passes the staging folder of :func:`mfnet.utils.io.output_dir`)."""
    from .bench_report import markdown_document, write_html

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    csv_path, md_path = out / "bench_real.csv", out / "bench_real.md"
    write_csv(csv_path, rows, CSV_FIELDS)
    tables = [("NoW scan-to-mesh error (mm) after 7-landmark similarity alignment and refinement; 'neutral' = "
               "the reconstruction's neutral head (its face projected onto the identity space: no expression, "
               "jaw closed; mfnet.fit.neutral); regions: fitted medians.", markdown_table(rows)),
              ("Cases:", cases_table(rows))]
    paths: dict[str, Path] = {"csv": csv_path, "md": md_path}
    figures: list[tuple[str, Path]] = []
    if report:
        from .bench_report import plot_table

        fig_dir = out / "figures"
        fig_dir.mkdir(exist_ok=True)
        paths["table_png"] = plot_table(tables[0][1], fig_dir / "table.png", title="Real-scan NoW benchmark")
        figures.append(("The table as an image", paths["table_png"]))
        curves = plot_curves(rows, fig_dir / "curves.png")
        if curves is not None:
            paths["curves_png"] = curves
            figures.append(("Cumulative NoW error of the fitted meshes per case (0-8 mm; legend: median mm)", curves))
        for k, r in enumerate(error_map_rows(rows)):
            name = f"errormap_{k + 1}_{r['case']}_{r['method'].split(' ')[0].replace('-', '')}.png"
            p = plot_error_map(r, fig_dir / name, root)
            paths[f"errormap_{k + 1}"] = p
            figures.append((f"Error map, {r['case']}, {r['method']} (0-5 mm, grey: outside the NoW crop)", p))
        paths["html"] = write_html(out / "report.html", tables, figures, note=note, command=command,
                                   title="mfnet bench --real (real-scan NoW benchmark)")
    parts = markdown_document("mfnet bench --real (real-scan NoW benchmark)", tables, note, command)
    if figures:
        parts += ["", "## Figures", "", "Full report: [report.html](report.html)", ""]
        parts += [f"![{c}]({p.relative_to(out).as_posix()})\n" for c, p in figures]
    md_path.write_text("\n".join(parts).rstrip("\n") + "\n")
    return paths
