"""Face crops (similarity transforms, warps, round trips) and landmark utilities; no detector needed."""
from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from mfnet.utils.images import ImageView
from mfnet.detect import (
    IBUG68_FLIP,
    MP_TO_IBUG68,
    FaceCrop,
    Landmarks2D,
    face_crop,
    flip_points_horizontally,
    mediapipe_to_ibug68,
    points_to_crop,
    points_to_original,
    visibility_from_yaw,
    warp_to_crop,
    yaw_from_mesh,
    yaw_from_points,
)
from mfnet.detect import landmarks as L


def _fake_landmarks(rng, center=(300.0, 200.0), size=120.0, roll=0.0, image_size=(480, 640)) -> Landmarks2D:
    """A plausible 68-point layout: unit template scaled, rolled and placed."""
    t = np.zeros((68, 2))
    a = np.linspace(-1, 1, 17)
    t[:17] = np.stack([a, 0.2 + 0.8 * (1 - a**2) ** 0.5], 1)  # jaw
    t[17:27] = np.stack([np.linspace(-0.8, 0.8, 10), np.full(10, -0.5)], 1)
    t[27:36] = np.stack([np.r_[0, 0, 0, 0, -0.2, -0.1, 0, 0.1, 0.2], np.r_[-0.3, -0.2, -0.1, 0, 0.1, 0.12, 0.14, 0.12, 0.1]], 1)
    eye = np.stack([np.cos(np.linspace(np.pi, -np.pi, 7)[:-1]) * 0.15, np.sin(np.linspace(np.pi, -np.pi, 7)[:-1]) * 0.05], 1)
    t[36:42] = eye + [-0.4, -0.3]
    t[42:48] = eye + [0.4, -0.3]
    t[48:68] = np.stack([np.cos(np.linspace(np.pi, -np.pi, 21)[:-1]) * 0.3, 0.45 + np.sin(np.linspace(np.pi, -np.pi, 21)[:-1]) * 0.1], 1)
    t += rng.normal(0, 0.01, t.shape)
    c, s = math.cos(roll), math.sin(roll)
    pts = (t @ np.array([[c, s], [-s, c]])) * (size / 2) + center
    return Landmarks2D(points=pts, visibility=np.ones(68), bbox=[0, 0, 1, 1], image_size=image_size, backend="test")


@pytest.mark.parametrize("align_roll", [False, True])
def test_crop_round_trip(align_roll):
    rng = np.random.default_rng(0)
    lm = _fake_landmarks(rng, roll=0.3)
    crop = face_crop(lm, size=224, scale=1.25, align_roll=align_roll)
    assert isinstance(crop, FaceCrop) and crop.matrix.shape == (2, 3)
    pts = rng.uniform(-50, 700, size=(5, 100, 2))  # any leading axes
    back = crop.to_original(crop.to_crop(pts))
    np.testing.assert_allclose(back, pts, atol=2e-3)
    np.testing.assert_allclose(points_to_original(points_to_crop(pts, crop), crop), pts, atol=2e-3)
    np.testing.assert_allclose(crop.inverse @ np.r_[crop.matrix, [[0, 0, 1]]], np.eye(3)[:2], atol=1e-12)
    # the landmarks land inside the crop, their box centred, with the requested margin
    lc = crop.to_crop(lm.points)
    assert (lc >= 0).all() and (lc <= 223).all()
    if not align_roll:
        lo, hi = lc.min(0), lc.max(0)
        np.testing.assert_allclose((lo + hi) / 2, [111.5, 111.5], atol=1e-3)
        assert max(hi - lo) == pytest.approx(224 / 1.25, rel=1e-4)
        x0, y0, x1, y1 = crop.box
        assert x1 - x0 == pytest.approx(y1 - y0) and x1 - x0 == pytest.approx(1.25 * max(np.ptp(lm.points, 0)), rel=1e-5)
        assert crop.angle == 0.0
    else:
        d = lc[42:48].mean(0) - lc[36:42].mean(0)
        assert abs(d[1]) < 1e-3 and d[0] > 0  # eyes level, subject's right eye still on the left
        assert crop.angle == pytest.approx(0.3, abs=0.05)
    assert crop.scale == pytest.approx(224 / (1.25 * max(np.ptp(lm.points, 0))), rel=1e-6)


@pytest.mark.parametrize("align_roll", [False, True])
def test_warp_matches_point_mapping(align_roll):
    """A bright dot drawn at a landmark shows up where to_crop says (pixel-centre conventions agree)."""
    rng = np.random.default_rng(1)
    lm = _fake_landmarks(rng, roll=-0.2)
    crop = face_crop(lm, size=256, scale=1.5, align_roll=align_roll)
    img = np.zeros((480, 640), np.float32)
    targets = lm.points[[8, 30, 36, 45, 48]].round().astype(int)
    yy, xx = np.mgrid[0:480, 0:640]
    for x, y in targets:
        img += np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * 2.0**2))
    out = crop.warp(img)
    assert out.shape == (256, 256)
    for (x, y), (u, v) in zip(targets, crop.to_crop(targets.astype(float))):
        iu, iv = int(round(u)), int(round(v))
        win = out[iv - 6 : iv + 7, iu - 6 : iu + 7]
        wy, wx = np.mgrid[-6:7, -6:7]
        cu = iu + (win * wx).sum() / win.sum()
        cv = iv + (win * wy).sum() / win.sum()
        assert abs(cu - u) < 0.15 and abs(cv - v) < 0.15


def test_warp_of_downscaled_view_matches_original():
    """Cropping the downscaled working image with view.scale_xy gives the same crop as the original."""
    rng = np.random.default_rng(2)
    yy, xx = np.mgrid[0:1024, 0:1536]
    big = np.dstack([(np.sin(xx / 37.0) * 120 + 128), (np.cos(yy / 23.0) * 120 + 128), ((xx + yy) % 256)]).astype(np.uint8)
    small = cv2.resize(big, (768, 512), interpolation=cv2.INTER_AREA)
    view = ImageView(path="big.png", image=small, scale_to_original=2.0, original_size=(1024, 1536))
    lm = _fake_landmarks(rng, center=(700.0, 500.0), size=400.0, image_size=(1024, 1536))
    crop = face_crop(lm, size=224)
    a = crop.warp(big).astype(float)
    b = warp_to_crop(view.image, crop, view.scale_xy).astype(float)
    assert np.abs(a - b)[..., :2].mean() < 3.0  # smooth channels; channel 2 has sharp wraps


def test_warp_border_and_prefilter():
    rng = np.random.default_rng(3)
    lm = _fake_landmarks(rng, center=(20.0, 20.0), size=100.0)  # crop extends past the top-left corner
    img = np.full((480, 640, 3), 200, np.uint8)
    crop = face_crop(lm, size=64)
    out = warp_to_crop(img, crop)
    assert out.shape == (64, 64, 3) and out[0, 0].tolist() == [0, 0, 0] and out[-1, -1].tolist() == [200, 200, 200]
    assert (warp_to_crop(img, crop, border="replicate") == 200).all()
    # strong downscaling (k < 0.5) is pre-filtered: a fine checkerboard averages to grey, not aliasing
    checker = ((np.indices((480, 640)).sum(0) % 2) * 255).astype(np.uint8)
    big_lm = _fake_landmarks(rng, center=(320.0, 240.0), size=300.0)
    out = warp_to_crop(checker, face_crop(big_lm, size=64))
    assert abs(out.astype(float).mean() - 127.5) < 10 and out.std() < 20


def test_face_crop_accepts_arrays_and_rejects_degenerate():
    pts = np.array([[10.0, 20.0], [110.0, 70.0]])
    crop = face_crop(pts, size=100, scale=1.0)
    np.testing.assert_allclose(crop.box, [10, -5, 110, 95])
    with pytest.raises(ValueError):
        face_crop(np.zeros((68, 2)))


def test_mediapipe_mapping_and_flip_tables():
    assert MP_TO_IBUG68.shape == (68,) and len(set(MP_TO_IBUG68.tolist())) == 68 and MP_TO_IBUG68.max() < 468
    mesh = np.random.default_rng(0).normal(size=(2, 478, 3))
    out = mediapipe_to_ibug68(mesh)
    assert out.shape == (2, 68, 2) and out.dtype == np.float32
    np.testing.assert_allclose(out[1, 36], mesh[1, 33, :2], rtol=1e-6)
    np.testing.assert_allclose(mediapipe_to_ibug68(mesh[0, :468]), out[0])
    with pytest.raises(ValueError):
        mediapipe_to_ibug68(np.zeros((68, 2)))
    assert np.array_equal(IBUG68_FLIP[IBUG68_FLIP], np.arange(68))
    assert IBUG68_FLIP[36] == 45 and IBUG68_FLIP[39] == 42 and IBUG68_FLIP[48] == 54 and IBUG68_FLIP[8] == 8
    pts = np.random.default_rng(1).uniform(0, 100, (68, 2))
    twice = flip_points_horizontally(flip_points_horizontally(pts, 100), 100)
    np.testing.assert_allclose(twice, pts, atol=1e-5)


def test_index_groups_match_headmodel():
    hm = pytest.importorskip("mfnet.headmodel.landmarks")
    for name in ("JAW", "BROW_RIGHT", "BROW_LEFT", "NOSE", "EYE_RIGHT", "EYE_LEFT", "MOUTH_OUTER",
                 "MOUTH_INNER", "EYELID_PAIRS", "LIP_PAIRS"):
        assert getattr(L, name) == getattr(hm, name), name


def test_landmarks_validation_and_transforms():
    rng = np.random.default_rng(4)
    lm = _fake_landmarks(rng)
    with pytest.raises(ValueError, match="points"):
        Landmarks2D(points=np.zeros((5, 2)), visibility=np.ones(68), bbox=np.zeros(4), image_size=(10, 10), backend="x")
    r = lm.rescaled(2.0, 2.0, (960, 1280))
    np.testing.assert_allclose(r.points, (lm.points + 0.5) * 2 - 0.5, rtol=1e-6)
    np.testing.assert_allclose(r.translated(3, -4).points, r.points + [3, -4], rtol=1e-6)
    f = lm.flipped()
    np.testing.assert_allclose(f.flipped().points, lm.points, atol=1e-4)
    assert f.points[36, 0] < f.points[45, 0]


def _yawed_mesh(degrees: float) -> np.ndarray:
    """A crude symmetric 'head' mesh rotated by ``degrees`` (+: subject's left side goes back)."""
    rng = np.random.default_rng(5)
    m = rng.normal(size=(478, 3)) * [40, 50, 20]
    from mfnet.detect.visibility import MESH_SYMMETRIC_PAIRS

    r, l = MESH_SYMMETRIC_PAIRS[:, 0], MESH_SYMMETRIC_PAIRS[:, 1]
    m[r] = np.abs(m[r]) * [-1, 1, 1]  # subject's right on image left
    m[l] = m[r] * [-1, 1, 1]
    th = np.radians(degrees)
    x, z = m[:, 0].copy(), m[:, 2].copy()
    m[:, 0] = x * np.cos(th) - z * np.sin(th)
    m[:, 2] = z * np.cos(th) + x * np.sin(th)
    return m


@pytest.mark.parametrize("degrees", [-40, -15, 0, 15, 40])
def test_yaw_estimates(degrees):
    assert np.degrees(yaw_from_mesh(_yawed_mesh(degrees))) == pytest.approx(degrees, abs=1.0)
    # 2D, silhouette model (dlib's jaw follows the visible outline, which stays at +-R for a
    # round head): the nose tip, about R in front of the turning axis, moves by R sin(yaw)
    pts = np.zeros((68, 2))
    pts[:17, 0] = np.linspace(-1, 1, 17)
    pts[30, 0] = math.sin(math.radians(degrees))
    assert np.degrees(yaw_from_points(pts)) == pytest.approx(degrees, abs=1.0)


def test_visibility_from_yaw():
    w0 = visibility_from_yaw(0.0)
    assert (w0 == 1).all() and (visibility_from_yaw(float("nan")) == 1).all()
    w = visibility_from_yaw(math.radians(30))
    assert w.dtype == np.float32 and w.shape == (68,)
    assert w[16] < 0.3 and w[12] < 1 and (w[:9] == 1).all()  # far side (iBUG 9-16) down-weighted
    assert (w[17:68] == 1).all()  # inner points untouched at 30 deg
    np.testing.assert_allclose(visibility_from_yaw(math.radians(-30)), w[IBUG68_FLIP])
    w70 = visibility_from_yaw(math.radians(70))
    assert w70[45] < 1 and w70[26] < 1 and w70[36] == 1  # far eye corner / brow tail at strong yaw
    w10 = visibility_from_yaw(math.radians(10))
    assert 0.7 < w10[16] < 0.95
