"""How steady the landmark detector is, and the shifted-copies average measured against it
(docs/benchmarks.md, "Where lee-60's remaining spread comes from").

    # landmark shift (px, median and max over the 68 points) between the photos as they are and
    # invisibly perturbed copies (benchmarks/experiments/perturbation.py's copies), per view
    .venv/bin/python benchmarks/experiments/detector_jitter.py shift --cases lee-60,james [--copies 3]
    # another experiment script with the landmarks of every photo replaced by the median over the photo
    # and four copies shifted by (+-3, +-3) px (not in the package: measured mixed, not kept)
    .venv/bin/python benchmarks/experiments/detector_jitter.py average benchmarks/experiments/camera_distance.py --seeds 0
"""
from __future__ import annotations

import runpy
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from perturbation import perturbed_copy  # noqa: E402

SHIFTS = [(3, 3), (-3, 3), (3, -3), (-3, -3)]


def shift_report(cases: list[str], copies: int) -> None:
    from mfnet.detect import detect_landmarks
    from mfnet.evaluate import realscans as rs
    from mfnet.utils.images import load_view

    for case in cases:
        paths, _ = rs.case_views(case)
        points = []
        for c in range(copies):
            with tempfile.TemporaryDirectory() as tmp:
                points.append([detect_landmarks(load_view(p), "mediapipe").points
                               for p in perturbed_copy(paths, c, Path(tmp))])
        for c in range(1, copies):
            for v in range(len(paths)):
                d = np.linalg.norm(points[c][v] - points[0][v], axis=1)
                print(f"{case} copy {c} view {v}: landmark shift px median {np.median(d):.3f} max {d.max():.3f}")


def _shifted(img: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """``img`` moved by (dx, dy) pixels, the border repeated."""
    p = np.pad(img, ((max(dy, 0), max(-dy, 0)), (max(dx, 0), max(-dx, 0)), (0, 0)), mode="edge")
    return np.ascontiguousarray(p[max(-dy, 0):p.shape[0] - max(dy, 0), max(-dx, 0):p.shape[1] - max(dx, 0)])


def patch_shifted_average() -> None:
    """Replace the landmarks the fit uses by the median over the photo and its shifted copies (a copy whose
    face lands more than 20 px away from the photo's is left out)."""
    import mfnet.detect.detect as dd
    import mfnet.fit.views as fv
    from mfnet.utils.images import ImageView

    detect = dd.detect_landmarks

    def averaged(image, backend="mediapipe", *, detector=None):
        base = detect(image, backend, detector=detector)
        view = dd._as_view(image)
        pts = [base.points]
        meshes = None if base.mesh478 is None else [base.mesh478]
        for dx, dy in SHIFTS:
            try:
                f = detect(ImageView.from_array(_shifted(view.image, dx, dy), name=view.name), backend,
                           detector=detector)
            except Exception:  # no face in a copy: use the others
                continue
            if np.linalg.norm(f.points.mean(0) - np.array([dx, dy]) - base.points.mean(0)) > 20:
                continue
            pts.append(f.points - np.array([dx, dy], np.float32))
            if meshes is not None and f.mesh478 is not None:
                m = f.mesh478.copy()
                m[:, :2] -= np.array([dx, dy], np.float32)
                meshes.append(m)
        kw = {"points": np.median(np.stack(pts), 0).astype(np.float32)}
        if meshes is not None:
            kw["mesh478"] = np.median(np.stack(meshes), 0).astype(np.float32)
        return replace(base, **kw)

    fv.detect_landmarks = averaged


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in ("shift", "average"):
        sys.exit(__doc__)
    if sys.argv[1] == "shift":
        import argparse

        ap = argparse.ArgumentParser()
        ap.add_argument("--cases", default="lee-60,james")
        ap.add_argument("--copies", type=int, default=3)
        args = ap.parse_args(sys.argv[2:])
        shift_report(args.cases.split(","), args.copies)
        return
    if len(sys.argv) < 3:
        sys.exit("average: give the experiment script to run, and its arguments")
    patch_shifted_average()
    script = sys.argv[2]
    sys.argv = sys.argv[2:]
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main()
