"""`mfnet evaluate facescape|now` on small synthetic benchmark folders; readers, exports, errors."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import trimesh

from mfnet.cli.main import main
from mfnet.evaluate import files
from mfnet.evaluate.files import EvaluationError

AXES = np.array([75.0, 100.0, 95.0])


def ellipsoid(subdivisions: int = 3):
    m = trimesh.creation.icosphere(subdivisions=subdivisions)
    return np.asarray(m.vertices) * AXES, np.asarray(m.faces)


def face_landmarks():
    """7 NoW-ordered points on the front (+z) of the ellipsoid, in mm."""
    xy = np.array([[-45, 35], [-18, 33], [18, 33], [45, 35], [0, -12], [-25, -35], [25, -35]], float)
    z = AXES[2] * np.sqrt(1 - (xy[:, 0] / AXES[0]) ** 2 - (xy[:, 1] / AXES[1]) ** 2)
    return np.concatenate([xy, z[:, None]], 1)


def read_rows(path):
    with open(path) as fh:
        return list(csv.DictReader(fh))


def make_facescape(tmp_path, lab: bool):
    v, f = ellipsoid()
    gt_dir, pred_dir = tmp_path / "gt", tmp_path / "pred"
    if lab:
        K = [[1200.0, 0, 500], [0, 1200.0, 500], [0, 0, 1]]
        centre = np.array([0, 0, 1000.0])
        gt = (v + centre) / 62.85
        items = {"s01_f600_v3": (gt * 1.03, dict(K=K, image_size=[1000, 1000], focal=600, view=3))}
        params = dict(head_center=(centre / 62.85).tolist(), head_rotation=np.eye(3).tolist())
    else:
        gt = v / 150.0
        items = {"000": (gt + [0, 0, 0.05], dict(pupil_scale=150.0)),
                 "150": (gt + np.random.default_rng(0).normal(0, 0.004, gt.shape), dict(pupils=[[0, 0, 0], [62.85 / 150, 0, 0]]))}
        params = dict(head_center=[0, 0, 0], head_rotation=np.eye(3).tolist())
    for name, (pred, extra) in items.items():
        files.export_facescape_prediction(pred_dir / name, pred, f)
        files.export_facescape_prediction(gt_dir / name, gt, f)
        (gt_dir / f"{name}_params.json").write_text(json.dumps({**params, **extra}))
    return pred_dir, gt_dir


def test_facescape_wild_cli(tmp_path, capsys):
    pred, gt = make_facescape(tmp_path, lab=False)
    out = tmp_path / "out"
    assert main(["evaluate", "facescape", "--pred", str(pred), "--gt", str(gt), "--out", str(out)]) == 0
    rows = read_rows(out / "facescape_wild_items.csv")
    assert [r["name"] for r in rows] == ["000", "150"]
    assert [r["angle_bin"] for r in rows] == ["0-5", "5-30"]
    assert float(rows[0]["cd_mm"]) < 1e-3 and float(rows[0]["depth_offset_mm"]) == pytest.approx(7.5)
    assert 0.1 < float(rows[1]["cd_mm"]) < 2 and float(rows[1]["cr"]) > 0.99
    md = (out / "facescape_wild_summary.md").read_text()
    assert "## Per angle bin" in md and "| 0-5 |" in md and "cd_mm" in md
    assert "CD" not in capsys.readouterr().err


def test_facescape_lab_cli(tmp_path):
    pred, gt = make_facescape(tmp_path, lab=True)
    out = tmp_path / "out"
    assert main(["evaluate", "facescape", "--set", "lab", "--pred", str(pred), "--gt", str(gt), "--out", str(out)]) == 0
    (row,) = read_rows(out / "facescape_lab_items.csv")
    assert row["focal"] == "600" and row["view"] == "3" and float(row["cd_mm"]) < 0.3
    md = (out / "facescape_lab_summary.md").read_text()
    assert "## Per focal" in md and "## Per view" in md


def test_facescape_lab_world_frame_gt(tmp_path):
    pred, gt = make_facescape(tmp_path, lab=True)
    name = "s01_f600_v3"
    prm = json.loads((gt / f"{name}_params.json").read_text())
    R = np.array([[0.0, 0, 1], [0, 1, 0], [-1, 0, 0]])  # world -> camera: 90 degrees about y
    t = np.array([0.5, -0.2, 3.0])
    v, f = files.load_mesh(gt / f"{name}.obj")
    files.export_facescape_prediction(gt / name, (v - t) @ R, f)  # GT stored in the world frame
    prm.update(camera_R=R.tolist(), camera_t=t.tolist(), head_center=(R.T @ (np.array(prm["head_center"]) - t)).tolist(),
               head_rotation=R.T.tolist())
    (gt / f"{name}_params.json").write_text(json.dumps(prm))
    out = tmp_path / "out"
    assert main(["evaluate", "facescape", "--set", "lab", "--pred", str(pred), "--gt", str(gt), "--out", str(out)]) == 0
    (row,) = read_rows(out / "facescape_lab_items.csv")
    assert float(row["cd_mm"]) < 0.3 and float(row["cr"]) == 1.0
    del prm["camera_t"]
    (gt / f"{name}_params.json").write_text(json.dumps(prm))
    with pytest.raises(EvaluationError, match="camera_t"):
        files.load_facescape_params(gt / f"{name}_params.json")


def test_facescape_mismatches_are_named(tmp_path, capsys):
    pred, gt = make_facescape(tmp_path, lab=False)
    (pred / "150.obj").unlink()
    assert main(["evaluate", "facescape", "--pred", str(pred), "--gt", str(gt), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "150.obj" in err and "missing predictions" in err and err.count("\n") == 1
    assert main(["evaluate", "facescape", "--pred", str(pred), "--gt", str(gt), "--out", str(tmp_path / "o"),
                 "--allow-missing"]) == 0
    (gt / "000_params.json").unlink()
    with pytest.raises(EvaluationError, match="000_params.json"):
        files.find_facescape_items(pred, gt, allow_missing=True)
    (pred / "extra.obj").write_text((pred / "000.obj").read_text())
    with pytest.raises(EvaluationError, match="extra.obj"):
        files.find_facescape_items(pred, gt)


def make_now(tmp_path, pp: bool = True):
    v, f = ellipsoid(3)
    lmk = face_landmarks()
    pred_dir, gt_dir = tmp_path / "pred", tmp_path / "scans"
    files.export_now_prediction(pred_dir, "S01", "multiview_neutral", "IMG_0001.jpg", v / 1000.0, f, lmk / 1000.0)
    files.export_now_prediction(pred_dir, "S01", "selfie", "IMG_0002", v * 1.02 / 1000.0, f, lmk * 1.02 / 1000.0)
    sv, sf = trimesh.remesh.subdivide(v, f)
    gt_dir.mkdir()
    shift = np.array([10.0, -5.0, 30.0])
    files.export_facescape_prediction(gt_dir / "S01.obj", sv + shift, sf)
    if pp:
        pts = "".join(f'<point x="{x}" y="{y}" z="{z}" name="{i}" active="1"/>\n' for i, (x, y, z) in enumerate(lmk + shift))
        (gt_dir / "S01.pp").write_text(f"<!DOCTYPE PickedPoints>\n<PickedPoints>\n{pts}</PickedPoints>\n")
    else:
        np.savetxt(gt_dir / "S01_lmks.txt", lmk + shift)
    return pred_dir, gt_dir


@pytest.mark.parametrize("pp", [True, False])
def test_now_cli(tmp_path, pp):
    pred, gt = make_now(tmp_path, pp)
    out = tmp_path / "out"
    assert main(["evaluate", "now", "--pred", str(pred), "--gt", str(gt), "--out", str(out)]) == 0
    rows = read_rows(out / "now_items.csv")
    assert {(r["challenge"], r["image"]) for r in rows} == {("multiview_neutral", "IMG_0001"), ("selfie", "IMG_0002")}
    for r in rows:
        assert float(r["median_mm"]) < 0.05 and int(r["points"]) > 100
    assert (out / "now_cumulative.png").read_bytes()[:4] == b"\x89PNG"
    curve = read_rows(out / "now_cumulative.csv")
    assert float(curve[-1]["error_mm"]) == 8.0 and float(curve[-1]["fraction"]) == 1.0
    md = (out / "now_summary.md").read_text()
    assert "| all |" in md and "selfie" in md and "similarity" in md
    # metrical: the 2 % larger prediction now shows an error
    assert main(["evaluate", "now", "--pred", str(pred), "--gt", str(gt), "--out", str(out), "--metrical"]) == 0
    rows = {r["challenge"]: r for r in read_rows(out / "now_items.csv")}
    assert float(rows["selfie"]["median_mm"]) > 0.2 and float(rows["multiview_neutral"]["median_mm"]) < 0.05


def test_now_missing_files_are_named(tmp_path, capsys):
    pred, gt = make_now(tmp_path)
    (pred / "S01" / "selfie" / "IMG_0002.npy").unlink()
    assert main(["evaluate", "now", "--pred", str(pred), "--gt", str(gt), "--out", str(tmp_path / "o")]) == 2
    assert "IMG_0002.npy" in capsys.readouterr().err
    files.export_now_landmarks(pred / "S01" / "selfie" / "IMG_0002.npy", face_landmarks() / 1000)
    (gt / "S01.pp").unlink()
    with pytest.raises(EvaluationError, match="S01_lmks.npy"):
        files.find_now_items(pred, gt)
    (gt / "S01.obj").unlink()
    with pytest.raises(EvaluationError, match="S01.obj"):
        files.find_now_items(pred, gt)


def test_landmark_export_and_readers(tmp_path):
    lmk = face_landmarks()
    p = files.export_now_landmarks(tmp_path / "a" / "lmk", lmk)
    assert p.suffix == ".npy" and np.array_equal(np.load(p), lmk)
    with pytest.raises(EvaluationError, match="7"):
        files.export_now_landmarks(tmp_path / "bad.npy", lmk[:5])
    np.save(tmp_path / "bad.npy", lmk[:5])
    with pytest.raises(EvaluationError, match="bad.npy"):
        files.load_landmarks(tmp_path / "bad.npy")
    assert files.units_to_mm("auto", lmk) == 1.0 and files.units_to_mm("auto", lmk / 1000) == 1000.0
    with pytest.raises(EvaluationError, match="not found"):
        files.load_mesh(tmp_path / "nope.obj")
    (tmp_path / "broken.obj").write_text("v 0 0 0\nf 1 2 3\n")
    with pytest.raises(EvaluationError, match="broken.obj"):
        files.load_mesh(tmp_path / "broken.obj")


def test_markdown_and_csv(tmp_path):
    rows = [{"a": 1, "b": 0.123456789}, {"a": 2, "b": float("nan")}]
    md = files.markdown_table(rows, {"b": "{:.2f}"})
    assert md.splitlines()[0] == "| a | b |" and "| 1 | 0.12 |" in md and "n/a" in md
    files.write_csv(tmp_path / "t.csv", rows)
    assert read_rows(tmp_path / "t.csv")[0]["b"] == "0.123457"
