"""Benchmark of the FaceScape evaluator: one FS-Wild-sized item on CPU.

Run from the repository root:

    .venv/bin/python benchmarks/bench_evaluate.py [--runs 5] [--ict DIR] [--no-write]

Input: the ICT-FaceKit neutral head (metres -> mm) with about 40 % of its
triangles (the front-most ones) split in four, giving a ~30k-vertex ground
truth; the prediction is a copy with a smooth 0-2 mm displacement along the
normals, 1.5 % larger and shifted by 4 mm in depth.  Both are placed in the
FS-Wild normalised orthographic frame (pupil scale 150 mm per unit) and
evaluated with :func:`mfnet.evaluate.facescape.evaluate_wild` (depth maps,
L1 depth alignment, canonical frame, 256 x 256 cylindrical rays on both
meshes, CR, exact two-sided CD, MNE).  Reported: median wall time over
``--runs`` runs after one warm-up, and the per-stage split of one run.

The Markdown table is printed and written into docs/benchmarks.md under the
``## Evaluation`` heading (other sections of that file are left untouched).
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mfnet.evaluate import facescape as fs  # noqa: E402
from mfnet.evaluate.cylinder import cylinder_raycast, grid_distances  # noqa: E402
from _common import write_section  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

PUPIL_SCALE = 150.0  # mm per normalised unit


def build_pair(ict_dir: Path, frac: float = 0.4):
    """(gt_v, pred_v, faces, eye_left, eye_right) in mm, ~30k vertices."""
    import trimesh

    from mfnet.headmodel.ict import convert_ict

    data = convert_ict(ict_dir)
    v = np.asarray(data.v_template, np.float64) * 1000.0
    f = np.asarray(data.faces, np.int64)
    z = v[f].mean(1)[:, 2]
    front = np.flatnonzero(z >= np.quantile(z, 1.0 - frac))
    v2, f2 = trimesh.remesh.subdivide(v, f, face_index=front)
    m = trimesh.Trimesh(v2, f2, process=False)
    n = m.vertex_normals
    disp = 1.0 + np.sin(v2[:, 0] / 17.0) * np.cos(v2[:, 1] / 23.0)  # 0..2 mm
    pred = (v2 + n * disp[:, None]) * 1.015 + np.array([0.0, 0.0, 4.0])
    return v2, pred, f2, data.masks["eye_left"], data.masks["eye_right"]


def stage_split(gt_n, pred_n, f, center, R):
    """Seconds per stage of one evaluate_wild run (same work, timed piecewise)."""
    s = PUPIL_SCALE
    t = {}
    t0 = time.perf_counter()
    cam = fs._wild_camera(s)
    d_gt, d_pr = fs.render_depth(gt_n * s, f, cam), fs.render_depth(pred_n * s, f, cam)
    delta, _ = fs.l1_depth_offset(d_gt, d_pr)
    t["depth maps + alignment"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    pr = pred_n * s
    pr[:, 2] -= delta
    g = fs.canonicalize(gt_n * s, center * s, R)
    p = fs.canonicalize(pr, center * s, R)
    r_gt, f_gt = cylinder_raycast(g, f)
    r_pr, f_pr = cylinder_raycast(p, f)
    t["cylindrical ray casting (2 meshes)"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    both = (f_gt >= 0) & (f_pr >= 0)
    m_gt, m_pr = np.where(both, r_gt, 0), np.where(both, r_pr, 0)
    grid_distances(m_gt, m_pr)
    grid_distances(m_pr, m_gt)
    t["Chamfer distance (2 directions)"] = time.perf_counter() - t0
    return t, int(both.sum())


def bench_now(ict_dir: Path):
    """Seconds, points and result of one NoW image: the ICT head (metres) against a scan of it
    (subdivided, 0.2 mm normal noise, rotated, scaled x1.08, in mm)."""
    import trimesh
    from scipy.spatial.transform import Rotation

    from mfnet.evaluate.now import evaluate_now
    from mfnet.headmodel.ict import convert_ict
    from mfnet.headmodel.landmarks import NOW_LANDMARKS

    data = convert_ict(ict_dir)
    v, f = np.asarray(data.v_template, np.float64), np.asarray(data.faces, np.int64)
    idx = list(NOW_LANDMARKS)
    lmk = np.einsum("lk,lkd->ld", np.asarray(data.lmk_bary_coords, np.float64)[idx], v[f[np.asarray(data.lmk_faces_idx)[idx]]])
    sv, sf = trimesh.remesh.subdivide(v * 1000, f)
    n = trimesh.Trimesh(sv, sf, process=False).vertex_normals
    sv = sv + n * np.random.default_rng(0).normal(0, 0.2, (len(sv), 1))
    R = Rotation.from_euler("xyz", [10, -25, 5], degrees=True).as_matrix()
    scan, slmk = 1.08 * sv @ R.T + [30, -20, 400], 1.08 * (lmk * 1000) @ R.T + [30, -20, 400]
    t0 = time.perf_counter()
    r = evaluate_now(v, f, lmk, scan, slmk)
    return time.perf_counter() - t0, r


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ict", type=Path, default=REPO.parent / "shared/data/ict-facekit")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-write", action="store_true", help="do not update docs/benchmarks.md")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    gt, pred, f, eye_l, eye_r = build_pair(args.ict)
    center = gt.mean(0) / PUPIL_SCALE
    R = np.eye(3)
    gt_n, pred_n = gt / PUPIL_SCALE, pred / PUPIL_SCALE
    kw = dict(head_center=center, head_rotation=R, pupil_scale=PUPIL_SCALE)
    res = fs.evaluate_wild(pred_n, f, gt_n, f, **kw)  # warm-up
    times, cpu = [], []
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    for _ in range(args.runs):
        t0, c0 = time.perf_counter(), time.process_time()
        res = fs.evaluate_wild(pred_n, f, gt_n, f, **kw)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    med, med_cpu = statistics.median(times), statistics.median(cpu)
    split, n_rays = stage_split(gt_n, pred_n.copy(), f, center, R)
    print(f"{len(gt)} vertices / {len(f)} faces per mesh; median {med:.3f} s over {args.runs} runs "
          f"(min {min(times):.3f}, max {max(times):.3f}; CPU median {med_cpu:.3f} s); "
          f"CD {res.cd:.3f} mm, MNE {res.mne:.4f}, CR {res.cr:.4f}")
    for k, v in split.items():
        print(f"  {k:40s} {v:.3f} s")
    cpu_name = platform.processor() or platform.machine()
    try:
        cpu_name = next(ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    md = [
        f"Command: `.venv/bin/python benchmarks/bench_evaluate.py --runs {args.runs}` (numpy {np.__version__}, "
        f"torch {torch.__version__}).",
        "",
        f"Machine: {os.cpu_count()} CPU cores ({cpu_name}, {platform.system()}), torch threads {args.threads} "
        f"(the depth maps run on 1), 1-minute load average {load:.1f} when the timing started "
        "(other jobs shared the 2 cores); no GPU.",
        "",
        f"One FS-Wild-sized item: ICT-FaceKit head partly subdivided to {len(gt)} vertices / {len(f)} faces "
        "(ground truth) and a perturbed copy (smooth 0-2 mm normal displacement, x1.015, +4 mm depth) as the "
        f"prediction; {n_rays} rays hit both meshes.  Result: CD {res.cd:.3f} mm, MNE {res.mne:.4f} rad, "
        f"CR {res.cr:.4f}.",
        "",
        "| stage | seconds |",
        "|---|---|",
        f"| **evaluate_wild, whole item, wall (median of {args.runs}; min {min(times):.3f})** | **{med:.3f}** |",
        f"| evaluate_wild, whole item, CPU time of the process (median) | {med_cpu:.3f} |",
    ]
    md += [f"| {k} (one run) | {v:.3f} |" for k, v in split.items()]
    now_s, now_r = bench_now(args.ict)
    print(f"NoW image: {now_s:.2f} s, {now_r.stats['n']} scan points, {now_r.iterations} iterations, "
          f"median {now_r.stats['median']:.3f} mm")
    md.append(f"| NoW, one image: ICT head (30k faces) vs a {now_r.stats['n']}-point cropped scan, landmark fit + "
              f"{now_r.iterations} refinement iterations (median error {now_r.stats['median']:.3f} mm for 0.2 mm "
              f"noise x1.08) | {now_s:.3f} |")
    md.append("")
    md.append("Closest points are exact (point-triangle distances; FaceScape CD searches the cylindrical grid "
              "itself, NoW a KD-tree of triangle pieces with a candidate cache between iterations).")
    md.append("")
    md.append("Target: <= 2 s per item on 2 CPU cores.  The numpy stages are single-threaded, so CPU time is "
              "what the item costs on an otherwise idle core; wall time includes waiting for the other jobs.")
    text = "\n".join(md)
    print(text)
    if not args.no_write:
        write_section("Evaluation", text, REPO / "docs" / "benchmarks.md")


if __name__ == "__main__":
    main()
