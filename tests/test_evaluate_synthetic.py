"""Synthetic ground truth: the scored face region, the error measure, and renders that look like faces."""
from __future__ import annotations

import numpy as np
import pytest
import torch


@pytest.fixture(scope="module")
def model(ict_static_model):
    return ict_static_model


def test_face_region_is_the_now_crop_of_the_face(model):
    from mfnet.evaluate.synthetic import face_region

    with torch.no_grad():
        out = model()
    v, lmk = out.vertices[0].numpy(), out.landmarks[0].numpy()
    region = face_region(model, v, lmk)
    face = set(model.masks["face"].tolist())
    assert set(region.tolist()) <= face
    assert 0.3 * len(face) < len(region) < 0.9 * len(face)
    near = lambda p: int(np.linalg.norm(v - p, axis=1).argmin())  # noqa: E731
    for i in (30, 36, 45, 48, 54, 8):  # nose tip, eye corners, mouth corners, chin
        assert near(lmk[i]) in set(region.tolist()), i
    for name in ("neck", "scalp"):
        inside = np.isin(model.masks[name].numpy(), region).mean()
        assert inside < 0.1, (name, inside)


def test_vertex_error_ignores_pose_and_scale_but_sees_shape(model):
    from mfnet.evaluate.synthetic import face_region, vertex_error_mm

    with torch.no_grad():
        gt = model()
        other = model(torch.randn(1, model.n_shape, generator=torch.Generator().manual_seed(0)))
    v, lmk = gt.vertices[0].numpy().astype(np.float64), gt.landmarks[0].numpy().astype(np.float64)
    region = face_region(model, v, lmk)
    c, s = np.cos(0.3), np.sin(0.3)
    R = np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    moved = 1.7 * v @ R.T + np.array([0.1, -0.2, 0.3])
    assert vertex_error_mm(moved, v, 1.7 * lmk @ R.T, lmk, region).mean_mm < 1e-6
    e = vertex_error_mm(other.vertices[0].numpy(), v, other.landmarks[0].numpy(), lmk, region)
    assert 0.5 < e.mean_mm < 20 and e.per_vertex_mm.shape == (len(region),)


def test_synthetic_faces_have_brows_and_pupils(model):
    from mfnet.data.synthetic import render_subject

    subj = render_subject(model, (0.0,), image_size=384, seed=2)
    img = subj.images[0].mean(0).numpy()  # (H, W) grey
    lmk = subj.landmarks2d[0].numpy()

    def at(p):
        x, y = np.floor(p).astype(int)
        return img[y - 1:y + 2, x - 1:x + 2].mean()

    forehead = at(lmk[27] + (lmk[27] - lmk[30]) * 1.2)  # above the brows, between them
    brows = np.mean([at(lmk[19]), at(lmk[24])])
    pupils = np.mean([at(lmk[36:42].mean(0)), at(lmk[42:48].mean(0))])
    assert brows < 0.6 * forehead and pupils < 0.5 * forehead


def test_template_landmarks_ignore_the_embedding_in_use(model):
    with torch.no_grad():
        own = model().landmarks[0]  # the fixture's model uses its static embedding
        assert torch.allclose(model.template_landmarks(), own, atol=1e-6)
        if model.use_landmark_embedding("mediapipe"):
            try:
                assert not torch.allclose(model().landmarks[0], own, atol=1e-4)  # calibrated points moved
                assert torch.allclose(model.template_landmarks(), own, atol=1e-6)
            finally:
                model.use_landmark_embedding("static")


def test_perspective_renders_magnify_what_is_near(model):
    """``inv_distance``: a pinhole at 1/k m; the eyes (in front) grow against the jaw ends (further back)
    as the camera comes closer, the head stays in the frame, and k = 0 is orthographic."""
    from mfnet.data.synthetic import render_subject

    def ratio(k):
        s = render_subject(model, (0.0,), image_size=128, seed=3, inv_distance=k)
        lm = s.landmarks2d[0]
        assert (s.cameras.inv_distance is None) == (k == 0)
        proj = s.cameras.project(s.vertices, (128, 128))[..., :2]
        assert bool((proj.amin(1) >= 0).all()) and bool((proj.amax(1) < 128).all())  # the whole head in frame
        return float((lm[45] - lm[36]).norm() / (lm[16] - lm[0]).norm())

    r0, r1, r2 = ratio(0.0), ratio(1.0), ratio(2.5)
    assert r0 < r1 < r2
    assert r2 / r0 > 1.05
    with pytest.raises(ValueError, match="inv_distance must be >= 0"):
        render_subject(model, (0.0,), image_size=64, seed=3, inv_distance=-1.0)
