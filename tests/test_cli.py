"""The `mfnet` command line end to end: demo, models commands, and clean errors."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from mfnet.cli.main import main
from mfnet.export.mesh import read_obj
from mfnet.headmodel.data import HeadModelData


@pytest.fixture
def ict_env(ict_dir, monkeypatch, tmp_path):
    monkeypatch.setenv("MFNET_ICT_DIR", str(ict_dir))
    monkeypatch.setenv("MFNET_HOME", str(tmp_path / "home"))
    return tmp_path


def test_demo_reconstructs_and_reports_error(ict_env, capsys):
    out = ict_env / "demo"
    assert main(["demo", "--out", str(out), "--size", "256", "--preset", "fast"]) == 0
    names = {p.name for p in out.iterdir()}
    assert {"inputs", "ground_truth", "reconstruction", "summary.txt", "summary.json"} <= names
    assert {"view_-30.png", "view_+0.png", "view_+30.png"} == {p.name for p in (out / "inputs").iterdir()}
    mesh = read_obj(out / "reconstruction" / "mesh.obj")
    model = HeadModelData.load(ict_env / "home" / "models" / "ict-facekit.npz")  # installed on first use
    assert mesh["vertices"].shape == (model.num_vertices, 3) and mesh["faces"].shape == (model.num_faces, 3)
    import json
    summary = json.loads((out / "summary.json").read_text())
    assert 0 < summary["face_error_mm"]["mean"] < 10  # a real reconstruction, not the mean head by accident
    assert "face-region error vs ground truth" in capsys.readouterr().out


def test_models_list_show_convert(ict_env, ict_dir, capsys):
    dest = ict_env / "small.npz"
    assert main(["models", "convert-ict", str(ict_dir),
                 "--dest", str(dest), "--regions", "face", "--n-shape", "10"]) == 0
    small = HeadModelData.load(dest)
    assert small.num_shape == 10
    assert main(["models", "add", "small", str(dest)]) == 0
    capsys.readouterr()
    assert main(["models", "list"]) == 0
    listing = capsys.readouterr().out
    assert "small" in listing and str(small.num_vertices) in listing
    png = ict_env / "turn.png"
    assert main(["models", "show", "small", "--out", str(png), "--views", "4", "--size", "64"]) == 0
    from PIL import Image
    assert Image.open(png).size == (4 * 64, 64)
    assert f"vertices     {small.num_vertices}" in capsys.readouterr().out


def test_models_add_flame_folder(tmp_path, monkeypatch):
    import fixtures_flame as fx

    monkeypatch.setenv("MFNET_HOME", str(tmp_path / "home"))
    folder = tmp_path / "flame"
    folder.mkdir()
    arrays = fx.make_flame_arrays()
    fx.write_flame_pickle(folder / "generic_model.pkl", arrays)
    fx.write_deca_landmark_embedding(folder / "landmark_embedding.npy", fx.make_embedding(arrays["f"].shape[0]))
    assert main(["models", "add", "flame2020", str(folder)]) == 0
    data = HeadModelData.load(tmp_path / "home" / "models" / "flame2020.npz")
    np.testing.assert_allclose(data.v_template, arrays["v_template"], atol=1e-6)


@pytest.mark.parametrize("argv, needle", [
    (["models", "add", "x", "/no/such/file.npz"], "no such"),
    (["models", "show", "nope"], "unknown head model 'nope'"),
    (["models", "add", "bad name!", "/tmp"], "invalid model name"),
])
def test_expected_errors_are_one_line_exit_2(argv, needle, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MFNET_HOME", str(tmp_path))
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err and err.startswith("error: ")


def test_missing_open_model_says_how_to_get_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MFNET_HOME", str(tmp_path))
    monkeypatch.setattr("mfnet.headmodel.registry.ict_source_candidates", lambda: [tmp_path / "nothing"])
    assert main(["demo", "--out", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err
    assert "mfnet models fetch ict-facekit" in err and "Traceback" not in err
    assert not (tmp_path / "d").exists()  # no half-written output


def test_console_script_entry_point(tmp_path):
    res = subprocess.run([sys.executable, "-m", "mfnet.cli.main", "--help"], capture_output=True, text=True)
    assert res.returncode == 0 and "models" in res.stdout and "demo" in res.stdout


def test_models_fetch_from_local_copy(ict_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MFNET_HOME", str(tmp_path / "home"))
    monkeypatch.setattr("mfnet.headmodel.registry.ict_source_candidates", lambda: [])  # no auto-install
    assert main(["models", "fetch", "ict-facekit", "--from", str(ict_dir), "--regions", "face", "--n-shape", "5"]) == 0
    assert "installed ict-facekit" in capsys.readouterr().out
    data = HeadModelData.load(tmp_path / "home" / "models" / "ict-facekit.npz")
    assert data.num_shape == 5 and data.meta["source"] == "ICT-FaceKit"
    assert main(["models", "fetch", "ict-facekit", "--from", str(tmp_path / "nowhere")]) == 2
