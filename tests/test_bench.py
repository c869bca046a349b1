"""`mfnet bench` quick variant: synthetic subjects, 1 vs 3 views, FaceScape metrics on the face region."""
from __future__ import annotations

import math

import numpy as np
import pytest


def test_face_submesh_and_score_identity():
    from mfnet.evaluate.bench import face_submesh

    faces = np.array([[0, 1, 2], [1, 2, 3], [2, 3, 4]])
    idx, sub = face_submesh(faces, np.array([False, True, True, True, False]), 5)
    assert idx.tolist() == [1, 2, 3] and sub.tolist() == [[0, 1, 2]]


def test_query_yaw_deterministic_and_in_bin():
    from mfnet.evaluate.bench import query_yaw

    ys = [query_yaw(s, 60.0, 90.0) for s in range(20)]
    assert ys == [query_yaw(s, 60.0, 90.0) for s in range(20)]
    assert all(60.0 <= abs(y) <= 90.0 for y in ys) and min(ys) < 0 < max(ys)


def test_bench_quick(ict_dir, monkeypatch, tmp_path):
    monkeypatch.setenv("MFNET_ICT_DIR", str(ict_dir))
    from mfnet.evaluate.bench import run_benchmark, write_results
    from mfnet.evaluate.bench_cli import QUICK
    from mfnet.headmodel import load_head_model

    model = load_head_model()
    rows = run_benchmark(model, subjects=QUICK["subjects"], bins=QUICK["bins"], preset=QUICK["preset"],
                         size=QUICK["size"], seed=0)
    assert len(rows) == QUICK["subjects"] * len(QUICK["bins"]) * 2
    paths = write_results(rows, tmp_path)
    assert paths["csv"].read_text().count("\n") == len(rows) + 1
    assert "fit, 3 views" in paths["md"].read_text()
    three = [r for r in rows if r["views"] == "3"]
    assert not any(r["failed"] for r in three), [r["error"] for r in three]
    for r in rows:
        if not r["failed"]:
            assert all(math.isfinite(r[k]) for k in ("cd", "mne", "cr", "vertex_mm", "seconds")), r
            assert 0.5 < r["cr"] <= 1.0 and r["cd"] < 20.0
