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
    from mfnet.headmodel.registry import resolve_model_path

    data = HeadModelData.load(resolve_model_path())  # installed with a mediapipe embedding
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
