"""Training datasets: layouts, layout errors, landmark cache (resumable), view selection, synthetic data."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from mfnet.data.datasets import (DatasetLayoutError, FaceScapeMultiView, FolderDataset, LandmarkCacheError, MultiPIE,
                                 SyntheticMultiView, open_dataset, prepare_dataset, select_views)
from mfnet.detect import Landmarks2D
from mfnet.detect.errors import NoFaceError
from mfnet.errors import MfnetError

S = 48


def _photo(path, seed, size=(90, 120)):
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(path)


class FakeDetector:
    """Stands in for MediaPipe: a fixed landmark layout per photo, a yaw from the file name, no face
    in files named '*noface*'. Counts calls (resumability)."""

    def __init__(self):
        self.calls = 0

    def __call__(self, view):
        self.calls += 1
        if "noface" in view.name:
            raise NoFaceError(f"no face found in {view.name}")
        h, w = view.original_size
        t = np.linspace(0, 2 * np.pi, 68, endpoint=False)
        pts = np.stack([w / 2 + 0.25 * w * np.cos(t), h / 2 + 0.3 * h * np.sin(t)], 1)
        stem = view.path.stem
        yaw = float(stem.split("yaw")[-1]) if "yaw" in stem else 0.0
        return Landmarks2D(pts, np.ones(68), np.array([0, 0, w, h]), (h, w), "fake", yaw_deg=yaw)


def test_select_views_front_anchor_then_sides():
    g = torch.Generator().manual_seed(0)
    yaws = [40.0, -3.0, -50.0, 20.0, -20.0]
    for _ in range(20):
        idx = select_views(yaws, 3, g)
        assert idx[0] == 1 and yaws[idx[1]] < 0 and yaws[idx[2]] >= 0 and len(set(idx)) == 3
    assert sorted(select_views([0.0, 10.0, 20.0], 3, g)) == [0, 1, 2]  # one-sided: fills from what is left
    with pytest.raises(ValueError):
        select_views([0.0, 1.0], 3, g)


def test_folder_dataset_cache_and_items(tmp_path):
    root = tmp_path / "faces"
    for s in range(3):
        for yaw in (-40, 0, 35):
            _photo(root / f"person{s}" / f"img_yaw{yaw}.jpg", s * 100 + yaw + 50)
    _photo(root / "person2" / "noface.jpg", 99)
    _photo(root / "lonely" / "only.jpg", 7)  # a single photo: not a group
    ds = FolderDataset(root, n_views=3, image_size=S)
    assert sorted(ds.groups()) == ["person0", "person1", "person2"]
    with pytest.raises(LandmarkCacheError, match="mfnet prepare"):
        len(ds)
    det = FakeDetector()
    stats = prepare_dataset(ds, detect_fn=det, progress=False)
    assert stats == {"groups_done": 3, "groups_skipped": 0, "faces": 9, "no_face": 1}
    again = prepare_dataset(FolderDataset(root), detect_fn=det, progress=False)  # resumable: nothing redone
    assert again["groups_skipped"] == 3 and det.calls == 10
    assert len(ds) == 3
    item = ds[0]
    assert item["images"].shape == (3, 3, S, S) and item["landmarks"].shape == (3, 68, 2)
    assert 0 <= float(item["images"].min()) and float(item["images"].max()) <= 1
    lm = item["landmarks"]
    assert (lm > 0).all() and (lm < S).all()  # landmarks inside the crop
    names = ds.choose(0)[1]
    assert "yaw0" in names[0]  # frontal anchor first


def test_layout_errors(tmp_path):
    with pytest.raises(DatasetLayoutError, match="no such dataset folder"):
        FolderDataset(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetLayoutError, match=r"ROOT/<subject>/<view>\.jpg"):
        FolderDataset(tmp_path / "empty")
    with pytest.raises(DatasetLayoutError, match="session01/multiview"):
        MultiPIE(tmp_path / "empty")
    with pytest.raises(DatasetLayoutError, match="params.json"):
        FaceScapeMultiView(tmp_path / "empty")
    bad = tmp_path / "fs" / "1" / "1_neutral"
    bad.mkdir(parents=True)
    (bad / "params.json").write_text("{not json")
    with pytest.raises(DatasetLayoutError, match="unreadable camera file"):
        FaceScapeMultiView(tmp_path / "fs")
    with pytest.raises(DatasetLayoutError, match="unknown dataset kind"):
        open_dataset("celeba", tmp_path)
    with pytest.raises(DatasetLayoutError, match="mfnet synth"):
        SyntheticMultiView.from_folder(tmp_path / "empty")
    assert issubclass(DatasetLayoutError, MfnetError)


def test_multipie_triplets(tmp_path):
    root = tmp_path / "mpie"
    rec = root / "session01" / "multiview" / "001" / "01"
    for cam in ("05_1", "13_0", "08_0", "04_1", "19_0", "11_0"):  # 11_0 (profile) is not used
        for illum in (0, 7):
            _photo(rec / cam / f"001_01_01_{cam.replace('_', '')}_{illum:02d}.png", illum)
    _photo(rec / "05_1" / "readme.png", 1)  # not a Multi-PIE file name: ignored
    ds = MultiPIE(root, image_size=S)
    assert list(ds.groups()) == ["session01/multiview/001/01"]
    assert len(ds.groups()["session01/multiview/001/01"]) == 10
    prepare_dataset(ds, detect_fn=FakeDetector(), progress=False)
    assert len(ds) == 2  # one triplet per flash
    for i in range(2):
        ds.set_epoch(i)
        _, names = ds.choose(i)
        cams = [n.split("/")[-2] for n in names]
        illums = {n[-6:-4] for n in names}
        assert cams[0] == "05_1" and cams[1] in ("13_0", "08_0") and cams[2] in ("04_1", "19_0")
        assert len(illums) == 1  # same moment, same light
    assert ds[1]["images"].shape == (3, 3, S, S)


def test_facescape_cameras(tmp_path):
    root = tmp_path / "fsmview"
    d = root / "12" / "1_neutral"
    params = {}
    for cam, yaw in ((0, 0), (1, -30), (2, 30), (3, 60)):
        _photo(d / f"{cam}_yaw{yaw}.jpg".replace(f"{cam}_yaw", f"{cam}yaw"), cam)
    for f in sorted(d.iterdir()):
        params[f"{f.stem}_K"] = np.eye(3).tolist()
        params[f"{f.stem}_Rt"] = np.hstack([np.eye(3), [[0], [0], [float(f.stem[0])]]]).tolist()
    params["3yaw60_valid"] = False
    (d / "params.json").write_text(json.dumps(params))
    ds = FaceScapeMultiView(root, image_size=S)
    assert len(ds.groups()["12/1_neutral"]) == 3  # invalid camera dropped
    prepare_dataset(ds, detect_fn=FakeDetector(), progress=False)
    item = ds[0]
    assert item["K"].shape == (3, 3, 3) and item["Rt"].shape == (3, 3, 4)
    assert float(item["Rt"][0, 2, 3]) == 0.0  # the frontal camera is the anchor


def test_synthetic_on_the_fly_and_folder(tmp_path, ict_dir):
    from mfnet.cli.synth import write_synthetic
    from mfnet.headmodel import HeadModel
    from mfnet.headmodel.ict import convert_ict

    model = HeadModel(convert_ict(ict_dir, regions=("face",), n_shape=10))
    ds = SyntheticMultiView(model, n_subjects=4, yaws=None, image_size=S, seed=3)
    a = ds[1]
    assert a["images"].shape == (3, 3, S, S) and a["shape"].shape == (10,)
    yaws = torch.rad2deg(a["view_rotations"][:, 1])
    assert abs(yaws[0]) <= 10 and yaws[1] < -19 and yaws[2] > 19
    ds.set_epoch(1)
    b = ds[1]
    assert torch.equal(a["shape"], b["shape"]) and not torch.allclose(a["view_rotations"], b["view_rotations"])
    out = write_synthetic(tmp_path / "synth", 2, [-60, -20, 0, 30], image_size=S, seed=1, progress=False, model=model)
    fd = SyntheticMultiView.from_folder(out, n_views=3)
    assert len(fd) == 2 and json.loads((out / "synth.json").read_text())["image_size"] == S
    item = fd[0]
    assert item["images"].shape == (3, 3, S, S)
    assert abs(float(torch.rad2deg(item["view_rotations"][0, 1]))) < 1  # anchor = the 0 deg view
    ref = SyntheticMultiView(model, 1, (-60, -20, 0, 30), S, seed=1)[0]
    assert torch.allclose(torch.from_numpy(np.load(out / "subject_00000" / "meta.npz")["shape"]), ref["shape"])


def test_cli_hooks_synth_and_prepare(tmp_path, capsys):
    import argparse

    from synthetic_model import make_synthetic_model

    from mfnet.cli.synth import register_prepare, register_synth
    from mfnet.cli.train import register_train

    parser = argparse.ArgumentParser(prog="mfnet")
    sub = parser.add_subparsers(dest="command")
    for register in (register_synth, register_prepare, register_train):
        register(sub)
    head = tmp_path / "tiny.npz"
    make_synthetic_model(n_verts=80).save(head)
    args = parser.parse_args(["synth", "--subjects", "2", "--views", "-60,0,60", "--out", str(tmp_path / "s"),
                              "--size", "32", "--model", str(head)])
    assert args.func(args) == 0
    ds = SyntheticMultiView.from_folder(tmp_path / "s")
    assert len(ds) == 2 and ds[1]["images"].shape == (3, 3, 32, 32)
    bad = parser.parse_args(["synth", "--views", "left", "--out", "x"])
    with pytest.raises(MfnetError, match="yaw angles"):
        bad.func(bad)
    # prepare with the real (MediaPipe) detector: plain grey photos have no face
    for s in range(2):
        for v in range(2):
            p = tmp_path / "photos" / f"p{s}" / f"v{v}.png"
            p.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((96, 96, 3), 128, np.uint8)).save(p)
    args = parser.parse_args(["prepare", str(tmp_path / "photos"), "--kind", "folder"])
    assert args.func(args) == 0
    assert "4 photos without a face" in capsys.readouterr().out
    args = parser.parse_args(["train", "--print-config"])
    assert args.func(args) == 0 and "lip: 0.5" in capsys.readouterr().out
