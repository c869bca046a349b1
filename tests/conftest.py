"""Shared fixtures. The open ICT-FaceKit data is read from ../shared (never copied into the repo)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ICT_DIR = Path(os.environ.get("MFNET_ICT_DIR", REPO.parent / "shared" / "data" / "ict-facekit"))


@pytest.fixture(scope="session")
def ict_dir() -> Path:
    if not (ICT_DIR / "ict_facekit_vertices.npz").exists():
        pytest.skip(f"ICT-FaceKit data not found at {ICT_DIR} (set MFNET_ICT_DIR)")
    return ICT_DIR


@pytest.fixture(autouse=True)
def _isolated_user_dir(tmp_path_factory, monkeypatch):
    """Never touch the real ~/.local/share/mfnet from tests."""
    monkeypatch.setenv("MFNET_HOME", str(tmp_path_factory.getbasetemp() / "mfnet-home"))


@pytest.fixture(scope="module")
def ict_static_model(ict_dir):
    """The open head model with its own (static) landmark embedding; one per test module (tests may
    switch its embedding)."""
    os.environ["MFNET_ICT_DIR"] = str(ict_dir)
    from mfnet.calibrate.install import load_model

    m = load_model()
    m.use_landmark_embedding("static")
    return m
