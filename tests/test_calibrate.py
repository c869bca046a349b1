"""Detector-calibrated landmark embeddings bring the model's landmarks to where the detector
puts them, on renders not used for calibration."""
from __future__ import annotations

import warnings

import numpy as np
import torch

from mfnet.data.synthetic import render_subject, to_uint8
from mfnet.detect.detect import detect_landmarks
from mfnet.headmodel.model import HeadModel


def test_mediapipe_calibration_reduces_detector_disagreement(ict_dir, monkeypatch):
    monkeypatch.setenv("MFNET_ICT_DIR", str(ict_dir))
    from mfnet.headmodel.data import HeadModelData
    from mfnet.calibrate.install import model_path

    data = HeadModelData.load(model_path())  # installed with a mediapipe embedding
    assert "mediapipe" in data.embeddings
    model = HeadModel(data)
    errs = {"static": [], "mediapipe": []}
    for seed in (901, 902):  # not the calibration seeds
        subj = render_subject(model, (-10.0, 0.0, 10.0), image_size=384, seed=seed, expression_scale=0.0)
        for v, img in enumerate(to_uint8(subj.images)):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                det = detect_landmarks(img).points + 0.5
            for name in errs:
                model.use_landmark_embedding(name)
                with torch.no_grad():
                    out = model(subj.shape[None], subj.expression[None], _pose(subj, v), landmarks_only=True)
                    proj = subj.cameras.project(out.landmarks.expand(len(subj.yaws_deg), -1, -1), (384, 384))[v, :, :2]
                errs[name].append(np.linalg.norm(proj.numpy() - det, axis=1)[17:].mean())  # inner points
    assert np.mean(errs["mediapipe"]) < 0.7 * np.mean(errs["static"]), errs


def _pose(subj, v):
    p = subj.pose.clone()[None]
    p[0, :3] = subj.view_rotations[v]
    return p


def test_dense_calibration_and_fit_term(ict_dir, monkeypatch, tmp_path):
    """`mfnet models calibrate --dense` stores a 478-point embedding on the face; the fitter's
    dense term then runs and lowers its own loss."""
    monkeypatch.setenv("MFNET_ICT_DIR", str(ict_dir))
    monkeypatch.setenv("MFNET_HOME", str(tmp_path / "home"))
    from mfnet.cli.main import main
    from mfnet.fit.config import get_config
    from mfnet.fit.fitter import MultiViewFitter
    from mfnet.fit.views import prepare_views
    from mfnet.calibrate.install import load_model

    assert main(["models", "calibrate", "--dense"]) == 0
    model = load_model()
    faces, bary = model.extra_embedding("mediapipe478")
    assert faces.shape == (478,) and torch.allclose(bary.sum(1), torch.ones(478, dtype=bary.dtype), atol=1e-5)
    subj = render_subject(model, (-20.0, 20.0), image_size=384, seed=77)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        views = prepare_views(list(to_uint8(subj.images)), crop_size=192)
    assert views.dense_landmarks.shape == (2, 478, 2)
    res = MultiViewFitter(model, get_config("fast", **{"weights.dense": 1.0}), progress=False).fit(views)
    assert res.history["shape"][-1] < res.history["pose"][0]
