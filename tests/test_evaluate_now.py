"""NoW protocol: crop, landmark similarity, scan-to-mesh refinement, statistics, curves."""
from __future__ import annotations

import numpy as np
import pytest
import trimesh
from scipy.spatial.transform import Rotation

from mfnet.evaluate import now
from mfnet.evaluate.geometry import face_normals
from mfnet.headmodel.landmarks import NOW_LANDMARKS


@pytest.fixture(scope="module")
def head(ict_dir):
    """ICT neutral head in metres (mfnet's units) and its 7 NoW landmarks."""
    from mfnet.headmodel.ict import convert_ict

    data = convert_ict(ict_dir)
    v = np.asarray(data.v_template, np.float64)
    f = np.asarray(data.faces, np.int64)
    idx = list(NOW_LANDMARKS)
    lmk = np.einsum("lk,lkd->ld", np.asarray(data.lmk_bary_coords, np.float64)[idx],
                    v[f[np.asarray(data.lmk_faces_idx)[idx]]])
    return v, f, lmk


def surface_scan(v, f, lmk, n: int, sigma: float, seed: int):
    """Points sampled on the mesh (inside the NoW crop), pushed along their face normal by N(0, sigma)."""
    rng = np.random.default_rng(seed)
    pts, fid = trimesh.sample.sample_surface(trimesh.Trimesh(v, f, process=False), 4 * n, seed=seed)
    inside = now.crop_scan(pts, lmk)
    pts, fid = pts[inside][:n], fid[inside][:n]
    return pts + face_normals(v, f)[fid] * rng.normal(0, sigma, (len(pts), 1))


SIM = (Rotation.from_euler("xyz", [10, -25, 5], degrees=True).as_matrix(), 1.08, np.array([30.0, -20.0, 400.0]))


def transform(x, sim=SIM):
    R, s, t = sim
    return s * x @ R.T + t


def test_crop_radius_rule():
    L = np.array([[-45, 35, 85], [-18, 33, 92], [18, 33, 92], [45, 35, 85], [0, -12, 115], [-25, -35, 100],
                  [25, -35, 100]], float)
    bridge = (L[1] + L[2]) / 2
    c = L[4] + 0.3 * (bridge - L[4])
    r = 1.4 * (np.linalg.norm(L[0] - L[3]) + np.linalg.norm(bridge - L[4])) / 2
    d = np.array([[1.0, 0, 0]])
    pts = np.concatenate([c + d * (r - 1e-6), c + d * (r + 1e-6), c[None]])
    assert now.crop_scan(pts, L).tolist() == [True, False, True]
    with pytest.raises(ValueError, match="7"):
        now.crop_scan(pts, L[:6])


def test_landmark_alignment_recovers_similarity(head):
    _, _, lmk = head
    al = now.align_landmarks(lmk * 1000, transform(lmk * 1000))
    assert al.s == pytest.approx(SIM[1]) and np.allclose(al.R, SIM[0]) and np.allclose(al.t, SIM[2])
    fixed = now.align_landmarks(lmk * 1000, transform(lmk * 1000), scale=1.0)
    assert fixed.s == 1.0 and np.allclose(fixed.R, SIM[0], atol=1e-3)


def test_scan_equal_to_prediction_under_a_similarity(head):
    v, f, lmk = head
    scan = transform(surface_scan(v * 1000, f, lmk * 1000, 6000, 0.0, seed=1))
    noisy_lmk = lmk + np.random.default_rng(2).normal(0, 0.002, lmk.shape)  # 2 mm landmark noise (m)
    r = now.evaluate_now(v, f, noisy_lmk, scan, transform(lmk * 1000), pred_scale=1000.0, scan_scale=1.0)
    assert r.landmark_rmse > 0.5  # the landmark fit alone is off ...
    assert r.stats["median"] < 1e-6 and r.stats["mean"] < 1e-5  # ... the refinement recovers the transform
    assert r.alignment.s == pytest.approx(SIM[1], rel=1e-6) and r.iterations >= 1
    assert r.distances.shape == (r.stats["n"],)


def test_known_noise_level(head):
    v, f, lmk = head
    sigma = 0.1  # mm, small against the triangles, so each point's distance is |noise| times the scan scale
    scan = transform(surface_scan(v * 1000, f, lmk * 1000, 8000, sigma, seed=3))
    r = now.evaluate_now(v, f, lmk, scan, transform(lmk * 1000))
    s = SIM[1]
    assert r.stats["median"] == pytest.approx(0.6745 * sigma * s, rel=0.1)
    assert r.stats["mean"] == pytest.approx(np.sqrt(2 / np.pi) * sigma * s, rel=0.1)


def test_metrical_keeps_the_scale(head):
    v, f, lmk = head
    scan = surface_scan(v * 1000, f, lmk * 1000, 4000, 0.0, seed=4)
    rigid = (SIM[0], 1.0, SIM[2])
    scan, slmk = transform(scan, rigid), transform(lmk * 1000, rigid)
    exact = now.evaluate_now(v, f, lmk, scan, slmk, metrical=True)
    assert exact.alignment.s == 1.0 and exact.stats["mean"] < 1e-5
    big = now.evaluate_now(v * 1.05, f, lmk * 1.05, scan, slmk, metrical=True)
    assert big.alignment.s == 1.0 and big.stats["mean"] > 0.3  # a 5 % too large head is penalised
    fitted = now.evaluate_now(v * 1.05, f, lmk * 1.05, scan, slmk)
    assert fitted.alignment.s == pytest.approx(1 / 1.05, rel=1e-5) and fitted.stats["mean"] < 1e-5


def test_statistics_and_cumulative_curve(tmp_path):
    st = now.now_statistics([np.array([1.0, 3.0]), np.array([2.0, np.nan])])
    assert st == {"median": 2.0, "mean": 2.0, "std": pytest.approx(np.sqrt(2 / 3)), "n": 3}
    assert np.isnan(now.now_statistics([])["median"])
    x, y = now.cumulative_curve([np.array([0.5, 1.5, 9.0])], steps=9)
    assert x[0] == 0 and x[-1] == 8 and y[1] == pytest.approx(1 / 3) and y[-1] == pytest.approx(2 / 3)
    assert np.all(np.diff(y) >= 0)
    png = tmp_path / "curve.png"
    now.plot_cumulative({"all": [np.array([0.5, 1.5])]}, png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
