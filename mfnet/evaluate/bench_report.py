"""Figures and a self-contained HTML report for ``mfnet bench`` (:mod:`mfnet.evaluate.bench`).

* ``curves.png``: cumulative per-vertex error curves on the face region (fraction of face vertices
  with error below x mm, x in 0-10 mm), one panel per angle bin plus one for all bins, one line per
  method/views; successful reconstructions only (failures are counted in the legend);
* ``heatmap_<k>_subject<s>.png``: the worst subjects (highest mean per-vertex error over their
  successful reconstructions), each drawn from its worst reconstruction: the predicted mesh in the
  ground-truth topology, aligned as for the metric, rendered frontal and at +-45 degrees of yaw with
  vertex colours from a colour map of the per-vertex error (0-5 mm; outside the face region grey);
* ``table.png``: the Table-1 markdown table drawn with matplotlib's ``table``;
* ``report.html``: the tables, the figures (base64-embedded), the command line and machine info.
"""
from __future__ import annotations

import base64
import html
import math
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from .bench import ANGLE_BINS, row_label

CURVE_XMAX_MM = 10.0
HEAT_VMAX_MM = 5.0
HEAT_CMAP = "inferno"  # dark (small error) -> purple -> red -> yellow (large error)
OUTSIDE_GREY = (0.62, 0.62, 0.62)
HEAT_YAWS = (-45.0, 0.0, 45.0)
DPI = 100
HEAT_FIGSIZE = (10.0, 3.8)  # inches: three views and a colour bar -> 1000 x 380 px
CURVE_PANEL = (4.0, 3.6)  # inches per panel


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _bins(rows: list[dict]) -> list[str]:
    bins = list(dict.fromkeys(r["bin"] for r in rows))
    return sorted(bins, key=lambda b: list(ANGLE_BINS).index(b) if b in ANGLE_BINS else 99)


def _ok(row: dict) -> bool:
    return not int(row.get("failed", 0)) and row.get("detail") is not None


# --------------------------------------------------------------------------- cumulative curves
def cumulative_fraction(errors: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """Fraction of ``errors`` strictly below each of ``xs``."""
    e = np.sort(np.asarray(errors, np.float64).ravel())
    if e.size == 0:
        return np.full(len(xs), np.nan)
    return np.searchsorted(e, xs, side="left") / e.size


def curves_figsize(n_bins: int) -> tuple[float, float]:
    n = n_bins + (1 if n_bins > 1 else 0)
    return (CURVE_PANEL[0] * n, CURVE_PANEL[1])


def plot_cumulative_curves(rows: list[dict], path: Path) -> Path | None:
    """``curves.png``: one panel per angle bin (plus 'all bins'), one line per method/views."""
    if not any(_ok(r) for r in rows):
        return None
    plt = _plt()
    bins = _bins(rows)
    groups = [(f"{b}°", [b]) for b in bins] + ([("all bins", bins)] if len(bins) > 1 else [])
    labels = list(dict.fromkeys(row_label(r) for r in rows))
    xs = np.linspace(0.0, CURVE_XMAX_MM, 201)
    fig, axes = plt.subplots(1, len(groups), figsize=curves_figsize(len(bins)), dpi=DPI, squeeze=False)
    for ax, (title, sel_bins) in zip(axes[0], groups):
        for lab in labels:
            mine = [r for r in rows if row_label(r) == lab and r["bin"] in sel_bins]
            ok = [r for r in mine if _ok(r)]
            if not ok:
                continue
            frac = cumulative_fraction(np.concatenate([r["detail"].face_err for r in ok]), xs)
            ax.plot(xs, frac, label=f"{lab} ({len(ok)}/{len(mine)} ok)")
        ax.set_title(title)
        ax.set_xlim(0, CURVE_XMAX_MM)
        ax.set_ylim(0, 1.0)
        ax.set_xlabel("per-vertex error (mm)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    axes[0][0].set_ylabel("fraction of face vertices < x")
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


# --------------------------------------------------------------------------- heat-maps
def error_colors(face_err: np.ndarray, face_idx: np.ndarray, n_vertices: int, vmax: float = HEAT_VMAX_MM,
                 cmap: str = HEAT_CMAP) -> np.ndarray:
    """(V, 3) float32 vertex colours: the colour map of ``face_err / vmax`` on the face region, grey elsewhere."""
    import matplotlib

    colors = np.tile(np.asarray(OUTSIDE_GREY, np.float32), (n_vertices, 1))
    t = np.clip(np.asarray(face_err, np.float64) / vmax, 0.0, 1.0)
    colors[np.asarray(face_idx)] = matplotlib.colormaps[cmap](t)[:, :3]
    return colors


def _yaw_matrix(deg: float) -> np.ndarray:
    a = math.radians(deg)
    return np.array([[math.cos(a), 0.0, math.sin(a)], [0.0, 1.0, 0.0], [-math.sin(a), 0.0, math.cos(a)]])


def render_views(vertices: np.ndarray, faces: np.ndarray, colors: np.ndarray, size: int = 320,
                 yaws=HEAT_YAWS, lit: bool = True) -> np.ndarray:
    """(len(yaws), size, size, 3) uint8 renders of a coloured mesh turned by ``yaws`` degrees about
    the vertical axis through its bounding-box centre; one framing for all views, white background."""
    import torch

    from ..render.cameras import frame_cameras
    from ..render.shading import frontal_light
    from ..render import Renderer, WeakPerspectiveCameras

    v = np.asarray(vertices, np.float64)
    centre = (v.min(0) + v.max(0)) / 2
    verts = torch.tensor(np.stack([(v - centre) @ _yaw_matrix(y).T for y in yaws]), dtype=torch.float32)
    n = len(yaws)
    one = frame_cameras(verts.reshape(1, -1, 3), fill=0.85)
    cams = WeakPerspectiveCameras(one.scale.expand(n), one.trans.expand(n, 2))
    vc = torch.as_tensor(np.asarray(colors, np.float32))[None].expand(n, -1, -1)
    with torch.no_grad():
        img = Renderer(size).render(verts, torch.as_tensor(np.asarray(faces, np.int64)), cams, vertex_colors=vc,
                                    sh_coeffs=frontal_light(n=n) if lit else None,
                                    background=torch.ones(n, 3, size, size)).image
    return (img.clamp(0, 1).permute(0, 2, 3, 1).numpy() * 255 + 0.5).astype(np.uint8)


def plot_heatmap(detail, title: str, path: Path, size: int = 320) -> Path:
    """One reconstruction's error heat-map: three views and a colour bar (``HEAT_FIGSIZE`` at ``DPI``)."""
    import matplotlib

    plt = _plt()
    colors = error_colors(detail.face_err, detail.face_idx, detail.pred.shape[0])
    views = render_views(detail.pred, detail.faces, colors, size=size)
    fig = plt.figure(figsize=HEAT_FIGSIZE, dpi=DPI)
    for k, (img, yaw) in enumerate(zip(views, HEAT_YAWS)):
        ax = fig.add_axes((0.01 + k * 0.29, 0.04, 0.28, 0.80))
        ax.imshow(img)
        ax.set_title(f"yaw {yaw:+.0f}°", fontsize=9)
        ax.axis("off")
    cax = fig.add_axes((0.90, 0.10, 0.025, 0.70))
    sm = matplotlib.cm.ScalarMappable(norm=matplotlib.colors.Normalize(0, HEAT_VMAX_MM), cmap=HEAT_CMAP)
    fig.colorbar(sm, cax=cax, label="per-vertex error (mm)")
    fig.suptitle(title, fontsize=10)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def worst_subjects(rows: list[dict], k: int) -> list[dict]:
    """The worst reconstruction (highest ``vertex_mm``) of each of the ``k`` subjects with the highest
    mean per-vertex error over their successful, drawable reconstructions (worst first)."""
    by_subject: dict = {}
    for r in rows:
        if _ok(r) and math.isfinite(float(r["vertex_mm"])):
            by_subject.setdefault(r["subject"], []).append(r)
    ranked = sorted(by_subject.values(), key=lambda rs: -float(np.mean([float(r["vertex_mm"]) for r in rs])))
    return [max(rs, key=lambda r: float(r["vertex_mm"])) for rs in ranked[:k]]


# --------------------------------------------------------------------------- table image
def parse_markdown_table(md: str) -> tuple[list[str], list[list[str]]]:
    lines = [ln.strip() for ln in md.strip().splitlines() if ln.strip().startswith("|")]
    cells = [[c.strip() for c in ln.strip("|").split("|")] for ln in lines]
    body = [c for c in cells[1:] if not all(set(x) <= set("-: ") for x in c)]
    return cells[0], body


def table_figsize(n_rows: int, n_cols: int) -> tuple[float, float]:
    return (max(5.0, 1.6 + 0.62 * (n_cols - 1)), 0.45 + 0.24 * (n_rows + 1))


def plot_table(md: str, path: Path, title: str = "") -> Path:
    """The markdown table ``md`` drawn with matplotlib's ``table`` (``table_figsize`` at ``DPI``)."""
    plt = _plt()
    head, body = parse_markdown_table(md)
    fig = plt.figure(figsize=table_figsize(len(body), len(head)), dpi=DPI)
    top = 1.0 - (0.3 / fig.get_figheight() if title else 0.02)
    ax = fig.add_axes((0.01, 0.01, 0.98, top - 0.01))
    ax.axis("off")
    tab = ax.table(cellText=body or [[""] * len(head)], colLabels=head, loc="upper center", cellLoc="center")
    tab.auto_set_font_size(False)
    tab.set_fontsize(7)
    tab.auto_set_column_width(list(range(len(head))))
    for (r, _), cell in tab.get_celld().items():
        if r == 0:
            cell.set_facecolor("#dde4ee")
            cell.set_text_props(weight="bold")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


# --------------------------------------------------------------------------- HTML
def markdown_table_html(md: str) -> str:
    head, body = parse_markdown_table(md)
    out = ["<table>", "<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>"]
    out += ["<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in body]
    return "\n".join(out + ["</table>"])


def machine_info() -> dict[str, str]:
    info = {"python": sys.version.split()[0], "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(), "cpu count": str(os.cpu_count()),
            "numpy": np.__version__, "date": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    try:
        import torch

        info.update({"torch": torch.__version__, "torch threads": str(torch.get_num_threads())})
    except ImportError:  # pragma: no cover
        pass
    return info


def _img_tag(path: Path, alt: str) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"><figcaption>{html.escape(alt)}</figcaption></figure>'


_CSS = ("body{font-family:sans-serif;margin:2em;max-width:1400px}table{border-collapse:collapse;margin:1em 0}"
        "td,th{border:1px solid #bbb;padding:3px 7px;font-size:13px;text-align:right}th{background:#eef}"
        "td:first-child{text-align:left}img{max-width:100%}code{background:#f4f4f4;padding:2px 4px}")


def markdown_document(title: str, tables, note: str = "", command: str | None = None) -> list[str]:
    """The lines of a benchmark's Markdown page up to its figures: title, note, command, tables."""
    parts = [f"# {title}", ""]
    if note:
        parts += [note, ""]
    if command:
        parts += [f"Command: `{command}`", ""]
    for k, (caption, table) in enumerate(tables):
        parts += ([""] if k else []) + [caption, "", table]
    return parts


def write_html(path: Path, tables, figures, note: str = "", command: str | None = None,
               title: str = "mfnet bench (synthetic multi-view)") -> Path:
    parts = ["<!DOCTYPE html>", f'<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>',
             f"<style>{_CSS}</style></head><body>", f"<h1>{html.escape(title)}</h1>"]
    if note:
        parts.append(f"<p>{html.escape(note)}</p>")
    if command:
        parts.append(f"<p>Command: <code>{html.escape(command)}</code></p>")
    parts.append("<h2>Tables</h2>")
    for title, md in tables:
        parts += [f"<p>{html.escape(title)}</p>", markdown_table_html(md)]
    if figures:
        parts.append("<h2>Figures</h2>")
        parts += [_img_tag(p, caption) for caption, p in figures]
    parts += ["<h2>Machine</h2>", "<table>"]
    parts += [f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in machine_info().items()]
    parts += ["</table>", "</body></html>"]
    path.write_text("\n".join(parts) + "\n", encoding="utf-8")
    return path


def write_report(rows: list[dict], out_dir, tables, note: str = "", command: str | None = None,
                 worst_k: int = 3, heat_size: int = 320) -> dict:
    """Write the figures and ``report.html`` to ``out_dir``.

    tables: ``[(title, markdown table), ...]``, the first one (Table 1) is also drawn as
    ``table.png``. Returns ``{'paths': {name: Path}, 'figures': [(caption, Path), ...]}``.
    """
    out = Path(out_dir)
    fig_dir = out / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    figures: list[tuple[str, Path]] = []
    if tables:
        paths["table_png"] = plot_table(tables[0][1], fig_dir / "table.png", title="Table 1 (synthetic)")
        figures.append(("Table 1 as an image", paths["table_png"]))
    curves = plot_cumulative_curves(rows, fig_dir / "curves.png")
    if curves is not None:
        paths["curves_png"] = curves
        figures.append((f"Cumulative per-vertex error on the face region (0-{CURVE_XMAX_MM:g} mm)", curves))
    for k, r in enumerate(worst_subjects(rows, worst_k)):
        title = (f"#{k + 1} worst: subject {r['subject']}, {row_label(r)}, bin {r['bin']}°, "
                 f"query yaw {float(r['query_yaw']):.1f}°, mean {float(r['vertex_mm']):.2f} mm")
        p = plot_heatmap(r["detail"], title, fig_dir / f"heatmap_{k + 1}_subject{r['subject']}.png", size=heat_size)
        paths[f"heatmap_{k + 1}"] = p
        figures.append((f"Error heat-map (0-{HEAT_VMAX_MM:g} mm, grey outside the face region), {title}", p))
    paths["html"] = write_html(out / "report.html", tables, figures, note=note, command=command)
    return {"paths": paths, "figures": figures}
