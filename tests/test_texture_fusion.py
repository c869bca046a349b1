"""Texture fusion: each view paints only its face region; the rest is a plausible skin fill; eyes."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from mfnet.fit.texture import _fill_unseen, eye_colours, face_region_mask, fuse_texture


def _landmarks_square(c=50.0, r=20.0) -> np.ndarray:
    """68 points: a jaw 'U' below, brows above (enough for the face region)."""
    p = np.zeros((68, 2))
    t = np.linspace(np.pi, 0, 17)
    p[:17] = np.stack([c + r * np.cos(t), c + r * np.sin(t)], 1)  # y down: the jaw below the centre
    p[17:27] = np.stack([np.linspace(c - r, c + r, 10), np.full(10, c - 0.5 * r)], 1)
    p[27:68] = c
    return p


def test_face_region_mask_covers_jaw_brows_and_forehead():
    m = face_region_mask(_landmarks_square(), 100)
    assert m[50, 50] and m[65, 50]  # centre, chin side
    assert m[50 - 10 - 8, 50]  # forehead above the brows (raised by 0.45 x brow-to-chin)
    assert not m[5, 50] and not m[50, 5] and not m[95, 50]  # far outside


def test_unseen_texels_get_the_skin_tone_with_a_smooth_seam():
    img = np.zeros((64, 64, 3), np.uint8)
    seen = np.zeros((64, 64), bool)
    seen[:, :32] = True
    img[:, :32] = (200, 150, 120)
    img[:4, :4] = (20, 20, 20)  # a dark brow: not the skin tone
    out = _fill_unseen(img, seen)
    np.testing.assert_array_equal(out[:, 60], np.tile([200, 150, 120], (64, 1)))
    assert np.abs(out[:, 32:].astype(int) - [200, 150, 120]).max() <= 2  # no seam
    np.testing.assert_array_equal(out[:, :32], img[:, :32])  # seen texels untouched


@pytest.fixture(scope="module")
def model(ict_static_model):
    return ict_static_model


def test_views_paint_only_their_face_region(model):
    """Paint every pixel outside each view's face region red: no red reaches the texture, while the
    same photos without the restriction do paint red (hair / clothes / background onto the head)."""
    from mfnet.data.synthetic import render_subject

    s = render_subject(model, (-30.0, 0.0, 30.0), image_size=192, seed=1)
    lm = s.landmarks2d
    imgs = s.images.clone()
    for i in range(3):
        m = torch.from_numpy(face_region_mask(lm[i].numpy(), 192))
        imgs[i, 0][~m], imgs[i, 1][~m], imgs[i, 2][~m] = 1.0, 0.0, 0.0
    args = (imgs, s.vertices, model.faces, model.vt, model.ft, s.cameras, 128)

    def red(tex):
        t = tex.astype(int)
        return ((t[..., 0] > 200) & (t[..., 1] < 60) & (t[..., 2] < 60)).mean()

    assert red(fuse_texture(*args)) > 0.02
    restricted = fuse_texture(*args, landmarks=lm)
    assert red(restricted) == 0.0


def test_eyeballs_get_eye_colours(model):
    from mfnet.data.synthetic import render_subject

    s = render_subject(model, (0.0,), image_size=256, seed=2)
    cols = eye_colours(s.images.permute(0, 2, 3, 1).numpy(), s.landmarks2d.numpy())
    assert cols is not None and cols[0].mean() > cols[1].mean()  # sclera lighter than the iris
    canon = model(torch.zeros(1, model.n_shape)).vertices[0]
    tex = fuse_texture(s.images, s.vertices, model.faces, model.vt, model.ft, s.cameras, 256,
                       landmarks=s.landmarks2d, canonical=canon, eyeballs=model.masks["eyeballs"])
    from mfnet.render.texture import rasterize_uv

    tpix, tface, _ = rasterize_uv(model.vt, model.ft, (256, 256)).packed()
    eye = torch.zeros(model.num_vertices, dtype=torch.bool)
    eye[model.masks["eyeballs"]] = True
    on = eye[model.faces[tface]].all(1)
    px = tex.reshape(-1, 3)[tpix[on].numpy()].astype(float) / 255
    sclera, iris = cols
    assert (np.abs(px - sclera).max(1) < 0.01).mean() > 0.3  # most of the eyeball is sclera
    assert (np.abs(px - iris).max(1) < 0.01).mean() > 0.05  # and an iris
