"""FaceScape CD / MNE / CR with synthetic known answers (ellipsoid and the open ICT head)."""
from __future__ import annotations

import numpy as np
import pytest
import trimesh
from scipy.spatial.transform import Rotation

from mfnet.evaluate import facescape as fs


def ellipsoid(subdivisions: int = 4, axes=(75.0, 100.0, 95.0)):
    m = trimesh.creation.icosphere(subdivisions=subdivisions)
    return np.asarray(m.vertices) * np.asarray(axes), np.asarray(m.faces)


def vertex_normals(v, f):
    return np.asarray(trimesh.Trimesh(v, f, process=False).vertex_normals)


@pytest.fixture(scope="module")
def ict_head_mm(ict_dir):
    from mfnet.headmodel.ict import convert_ict

    data = convert_ict(ict_dir)
    v = np.asarray(data.v_template, np.float64) * 1000.0
    return v - v.mean(0), np.asarray(data.faces, np.int64), data.masks


def test_identical_meshes():
    v, f = ellipsoid()
    m = fs.cylinder_metrics(v, f, v, f)
    assert m.cd == pytest.approx(0.0, abs=1e-9)
    assert m.cr == 1.0 and m.mne == pytest.approx(0.0, abs=1e-6)
    assert m.gt_rays == m.common_rays > 20000


def test_identical_ict_head(ict_head_mm):
    v, f, _ = ict_head_mm
    m = fs.cylinder_metrics(v, f, v, f)
    assert m.cd == pytest.approx(0.0, abs=1e-9) and m.cr == 1.0 and m.mne == pytest.approx(0.0, abs=1e-6)


def test_offset_along_normals_gives_cd_of_one_mm():
    v, f = ellipsoid(5)
    m = fs.cylinder_metrics(v + vertex_normals(v, f), f, v, f)
    assert m.cd == pytest.approx(1.0, abs=0.05)
    assert m.cr == 1.0
    m = fs.cylinder_metrics(v + 2.0 * vertex_normals(v, f), f, v, f)
    assert m.cd == pytest.approx(2.0, abs=0.1)


def test_half_covered_prediction_gives_cr_of_one_half():
    v, f = ellipsoid()
    half = f[v[f].mean(1)[:, 0] > 0]
    m = fs.cylinder_metrics(v, half, v, f)
    assert m.cr == pytest.approx(0.5, abs=0.02)
    assert m.cd < 0.05 and m.mne < 1e-3  # what is covered coincides
    # a prediction larger than the GT does not raise CR above 1
    assert fs.cylinder_metrics(v, f, v, half).cr == 1.0


def test_half_covered_ict_head(ict_head_mm):
    v, f, _ = ict_head_mm
    keep = f[v[f].mean(1)[:, 0] > 0]
    assert fs.cylinder_metrics(v, keep, v, f).cr == pytest.approx(0.5, abs=0.05)


def test_normal_error_quirk():
    z, mz = np.array([[0.0, 0.0, 1.0]]), np.array([[0.0, 0.0, -1.0]])
    assert fs.normal_error(z, z)[0] == pytest.approx(0.0, abs=1e-7)
    # opposite normals are not pi apart after n' = (n + 1) / |n + 1|
    assert fs.normal_error(z, mz)[0] == pytest.approx(np.arccos(1 / np.sqrt(3)))  # (1,1,2).(1,1,0)/(sqrt6 sqrt2)
    v, f = ellipsoid(3)
    flipped = fs.cylinder_metrics(v, f[:, ::-1], v, f)
    assert flipped.cd == pytest.approx(0.0, abs=1e-9) and 0.3 < flipped.mne < 1.2


def test_wild_depth_alignment_removes_a_depth_shift():
    v, f = ellipsoid()
    s = 150.0  # mm per normalised unit
    gt = v / s
    for shift in (5.0, -12.0):
        m = fs.evaluate_wild(gt + [0, 0, shift / s], f, gt, f, head_center=np.zeros(3), head_rotation=np.eye(3),
                             pupil_scale=s)
        assert m.depth_offset == pytest.approx(shift)
        assert m.cd == pytest.approx(0.0, abs=1e-6) and m.cr == 1.0
    # an x/y offset is not aligned away (no ICP)
    m = fs.evaluate_wild(gt + [3.0 / s, 0, 0], f, gt, f, head_center=np.zeros(3), head_rotation=np.eye(3), pupil_scale=s)
    assert m.cd > 0.5


def test_lab_depth_alignment_rescales_about_the_camera():
    v, f = ellipsoid()
    units = 62.85  # GT units: pupil distance 1
    K = np.array([[1200.0, 0, 500], [0, 1200.0, 500], [0, 0, 1]])
    centre = np.array([0.0, 0.0, 1000.0])  # 1 m in front of an OpenCV camera
    gt = (v + centre) / units
    kw = dict(K=K, image_size=(1000, 1000), head_center=centre / units, head_rotation=np.eye(3))
    m = fs.evaluate_lab(gt * 1.04, f, gt, f, **kw)
    assert m.depth_offset < -30  # the prediction was too far away
    assert m.cd < 0.2 and m.cr == 1.0
    # OpenGL camera (looking down -z): same answer
    flip = np.diag([1.0, -1.0, -1.0])
    kw2 = dict(kw, head_center=flip @ centre / units)
    m2 = fs.evaluate_lab(gt @ flip * 1.04, f[:, ::-1], gt @ flip, f[:, ::-1], **kw2)
    assert m2.cd == pytest.approx(m.cd, abs=1e-3)  # mirrored pixel sampling only


def test_canonical_frame_undoes_the_head_rotation():
    v, f = ellipsoid()
    rng = np.random.default_rng(0)
    pred = v + vertex_normals(v, f) * rng.uniform(0, 2, (len(v), 1))
    s = 100.0
    ref = fs.evaluate_wild(pred / s, f, v / s, f, head_center=np.zeros(3), head_rotation=np.eye(3), pupil_scale=s)
    R = Rotation.from_euler("y", 40, degrees=True).as_matrix()
    c = np.array([0.1, -0.2, 0.0])
    rot = fs.evaluate_wild(pred / s @ R.T + c, f, v / s @ R.T + c, f, head_center=c, head_rotation=R, pupil_scale=s)
    assert rot.cd == pytest.approx(ref.cd, rel=0.02) and rot.mne == pytest.approx(ref.mne, rel=0.05)
    assert rot.cr == pytest.approx(ref.cr, abs=0.01)


def test_pupil_scale(ict_head_mm):
    v, _, masks = ict_head_mm
    s = fs.pupil_scale(v, masks["eye_left"], masks["eye_right"])
    d = np.linalg.norm(v[masks["eye_left"]].mean(0) - v[masks["eye_right"]].mean(0))
    assert s * d == pytest.approx(62.85)
    with pytest.raises(ValueError):
        fs.pupil_scale(v, masks["eye_left"], masks["eye_left"])


def test_bins_and_summaries():
    assert [fs.wild_angle_bin(i) for i in (0, 99, 100, 250, 399, 1000)] == ["0-5", "0-5", "5-30", "30-60", "60-90", "60-90"]
    rows = [{"cd": 1.0, "mne": 0.1, "cr": 1.0, "bin": "a"}, {"cd": 3.0, "mne": float("nan"), "cr": 0.5, "bin": "b"},
            {"cd": 2.0, "mne": 0.3, "cr": 0.9, "bin": "a"}]
    (all_,) = fs.summarise(rows)
    assert all_["n"] == 3 and all_["cd"] == pytest.approx(2.0) and all_["mne"] == pytest.approx(0.2)
    per = {r["bin"]: r for r in fs.summarise(rows, "bin")}
    assert per["a"]["cd"] == pytest.approx(1.5) and per["b"]["n"] == 1


def test_bad_input_is_reported():
    v, f = ellipsoid(2)
    with pytest.raises(ValueError, match="prediction"):
        fs.evaluate_wild(v, f + 10_000, v, f, head_center=np.zeros(3), head_rotation=np.eye(3), pupil_scale=1.0)
    far = fs.cylinder_metrics(v + [0, 1000.0, 0], f, v, f)  # no common ray
    assert far.cr == 0.0 and np.isnan(far.cd)
