"""`mfnet bench --real`: the real-scan NoW benchmark (James's two real photos, Lee Perry-Smith renders).

Skipped when the real-scan data (``$MFNET_REALSCANS_DIR`` or ``../shared/data/realscans``) is absent.
"""
from __future__ import annotations

import csv
import math
import warnings

import numpy as np
import pytest

from mfnet.errors import MfnetError


@pytest.fixture(scope="session")
def realscans(ict_dir):
    from mfnet.evaluate.realscans import realscans_dir

    try:
        return realscans_dir()
    except MfnetError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def james(realscans):
    from mfnet.evaluate.realscans import load_scan

    return load_scan("james")


def test_missing_data_is_a_one_line_error(tmp_path, monkeypatch, capsys):
    from mfnet.cli.main import main
    from mfnet.evaluate.realscans import realscans_dir

    monkeypatch.setenv("MFNET_REALSCANS_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(MfnetError, match="MFNET_REALSCANS_DIR"):
        realscans_dir()
    assert main(["bench", "--real", "--quick", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: real-scan data not found") and err.count("\n") == 1, err
    assert not (tmp_path / "out").exists()


def test_unknown_case_and_foreign_out_folder_refused_before_work(realscans, tmp_path, capsys):
    from mfnet.cli.main import main

    assert main(["bench", "--real", "--cases", "nobody", "--out", str(tmp_path / "o")]) == 2
    assert "unknown case 'nobody'" in capsys.readouterr().err
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    assert main(["bench", "--real", "--quick", "--out", str(tmp_path / "busy")]) == 2
    assert "files mfnet did not write" in capsys.readouterr().err
    assert (tmp_path / "busy" / "notes.txt").read_text() == "mine"


def test_james_landmarks_are_ibug_with_the_subjects_right_first(james):
    from mfnet.evaluate.realscans import face_frame

    L = james.landmarks
    o, R = face_frame(L)  # raises when left/right are swapped
    local = (L - o) @ R.T
    assert local[36, 0] < local[39, 0] < 0 < local[42, 0] < local[45, 0]  # eye corners, subject's right to left
    assert local[17:27, 1].min() > local[36:48, 1].max() > local[33, 1] > local[48:68, 1].max() > local[8, 1]
    assert local[30, 2] > local[36:48, 2].max()  # the nose tip in front of the eyes
    mirrored = L * np.array([-1.0, 1.0, 1.0])
    with pytest.raises(MfnetError, match="right"):
        face_frame(mirrored)


def test_calibrated_cameras_reproject_the_scan(james):
    """K, R, t from the DLT matrices: the scan's vertices land on their UV pixels (sub-pixel), its
    landmarks near MediaPipe's on each photo half, and the cams.json says the same in OpenCV pixels."""
    from mfnet.detect.detect import detect_landmarks
    from mfnet.evaluate.realscans import JAMES_SPLIT_X, james_cameras, james_views, project
    from mfnet.fit.calibrated import load_cameras_json

    uv, F, FT = james.extra["uvs"], james.faces, james.extra["ft"]
    pix = np.zeros((len(james.vertices), 2))
    pix[F.ravel()] = np.c_[uv[FT.ravel(), 0] * 2400, (1 - uv[FT.ravel(), 1]) * 1600]
    paths, cams_json = james_views(calibrated=True)
    K_cv, R_cv, t_m = load_cameras_json(cams_json, [p.name for p in paths])
    now = [36, 39, 42, 45, 33, 48, 54]
    for k, (K, R, t) in enumerate(james_cameras().values()):
        assert K[0, 0] > 0 and K[1, 1] > 0 and abs(np.linalg.det(R) - 1) < 1e-9
        depth = james.vertices @ R[2] + t[2]
        assert 1000 < depth.min() and depth.max() < 2000  # mm: the rig is about 1.5 m away
        q = pix - [k * JAMES_SPLIT_X, 0]
        inside = (q[:, 0] >= 0) & (q[:, 0] < JAMES_SPLIT_X)
        err = np.linalg.norm(project(K, R, t, james.vertices) - q, axis=1)[inside]
        assert inside.sum() > 2000 and np.median(err) < 0.6 and np.percentile(err, 95) < 2.0
        lmk = project(K, R, t, james.landmarks)
        np.testing.assert_allclose(project(K_cv[k], R_cv[k], t_m[k] * 1000, james.landmarks) + 0.5, lmk, atol=1e-6)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            det = detect_landmarks(str(paths[k]))
        # manual 3D landmarks vs MediaPipe's definitions: measured median 7.9 px on a ~600 px face
        assert np.median(np.linalg.norm(det.points[now] + 0.5 - lmk[now], axis=1)) < 15.0


def test_now_score_of_the_scan_against_itself_is_zero(james):
    from mfnet.evaluate.realscans import REGIONS, score_mesh

    s = score_mesh(james.vertices / 1000, james.faces, james.landmarks / 1000, james)
    assert s["median"] < 1e-6 and s["mean"] < 1e-6 and s["n"] > 1000
    assert abs(s["alignment"].s - 1.0) < 1e-6
    lab = james.regions[james.crop_idx]
    counts = np.bincount(lab, minlength=len(REGIONS))
    assert (counts > 30).all(), dict(zip(REGIONS, counts))  # every region is in the NoW crop


@pytest.fixture(scope="module")
def quick_run(realscans, tmp_path_factory):
    from mfnet.cli.main import main

    out = tmp_path_factory.mktemp("bench-real") / "out"
    assert main(["bench", "--real", "--quick", "--out", str(out), "--threads", "1"]) == 0
    with (out / "bench_real.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    return out, rows


def test_quick_writes_the_report(quick_run):
    out, rows = quick_run
    for name in ("bench_real.csv", "bench_real.md", "report.html", "figures/table.png", "figures/curves.png",
                 ".mfnet-files.json"):
        assert (out / name).is_file(), name
    maps = sorted((out / "figures").glob("errormap_*.png"))
    assert len(maps) == 4  # per case: the mean head and the fast fit
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 2 + len(maps)
    md = (out / "bench_real.md").read_text()
    assert "| james | landmarks-only (fast) |" in md and "| lee-1-small | mean head |" in md
    assert [(r["case"], r["method"]) for r in rows] == [
        ("james", "mean head"), ("james", "landmarks-only (fast)"),
        ("lee-1-small", "mean head"), ("lee-1-small", "landmarks-only (fast)")]


def test_quick_errors_are_plausible(quick_run):
    _, rows = quick_run
    by = {(r["case"], r["method"]): r for r in rows}
    for r in rows:
        assert r["failed"] == "0", r["error"]
        for k in ("fitted_median", "fitted_mean", "neutral_median", "eyes_median", "nose_median"):
            assert math.isfinite(float(r[k])) and float(r[k]) > 0, (k, r)
    for case in ("james", "lee-1-small"):
        mean_head = float(by[case, "mean head"]["fitted_median"])
        assert 0.5 < mean_head < 4.0, mean_head  # measured: james 1.29, lee 1.15 mm
        fast = by[case, "landmarks-only (fast)"]
        assert float(fast["used_views"]) == float(fast["views"])  # every photo's face detected
        assert 0.3 < float(fast["fitted_median"]) < 4.0
    # the fit's neutral head (identity projection, mfnet.fit.neutral) is closer to the real scan than the
    # mean head on the Lee render (not on James, whose landmark-only fit is barely better than the mean head)
    assert float(by["lee-1-small", "landmarks-only (fast)"]["neutral_median"]) < float(by["lee-1-small", "mean head"]["fitted_median"])
    # Lee (a render of a bald head): measured fast 0.96 vs mean head 1.15 mm
    assert float(by["lee-1-small", "landmarks-only (fast)"]["fitted_median"]) < float(by["lee-1-small", "mean head"]["fitted_median"])


def test_lee_renders_are_deterministic_and_framed(realscans):
    """Same photo twice (fixed seeds); the scan in mm (62.85 mm eye centres, outer surface only) and
    its face detected where the render put it."""
    from mfnet.detect.detect import detect_landmarks
    from mfnet.evaluate.realscans import load_scan
    from mfnet.evaluate.realscans_render import QUICK_LEE_CASE, render_case
    from mfnet.evaluate.synthetic import pupil_distance

    scan = load_scan("lee")
    assert abs(pupil_distance(scan.landmarks) - 62.85) < 1e-6
    assert 80 < np.linalg.norm(scan.landmarks[45] - scan.landmarks[36]) < 100  # outer eye corners, mm
    assert 0.5 < scan.exterior.mean() < 0.9  # the inner mouth bag and eye sockets are left out
    (a, cam), = render_case(QUICK_LEE_CASE, scan)
    (b, _), = render_case(QUICK_LEE_CASE, scan)
    assert a.shape == (480, 384, 3) and a.dtype == np.uint8 and np.array_equal(a, b)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        det = detect_landmarks(a)
    width = np.ptp(det.points[:, 0])
    assert 180 < width < 300, width  # face ~240 px wide by construction
