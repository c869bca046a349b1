"""Landmark losses (paper eq. 7-10) and DIS flow: values on constructed cases."""
from __future__ import annotations

import torch
from skimage import data as skdata

from mfnet.flow import dis_flow
from mfnet.headmodel.landmarks import EYELID_PAIRS
from mfnet.losses.landmarks import eye_loss, lip_loss, regularisation, single_view_landmark_loss


def _pts(n=2, seed=0):
    return torch.rand(n, 68, 2, generator=torch.Generator().manual_seed(seed)) * 200


def test_single_view_loss_is_mean_l1_and_respects_weights():
    t = _pts()
    p = t + torch.tensor([3.0, -4.0])
    assert torch.isclose(single_view_landmark_loss(p, t), torch.tensor(7.0))
    assert torch.isclose(single_view_landmark_loss(p, t, norm=torch.tensor([7.0, 7.0])), torch.tensor(1.0))
    w = torch.ones(2, 68)
    w[:, 0] = 0
    p2 = t.clone()
    p2[:, 0] += 100  # an invisible point does not count
    assert single_view_landmark_loss(p2, t, weights=w) == 0


def test_eye_and_lip_losses_ignore_translation_but_see_closure():
    t = _pts()
    shifted = t + 25.0
    assert eye_loss(shifted, t) < 1e-4 and lip_loss(shifted, t) < 1e-4
    closed = t.clone()
    for i, j in EYELID_PAIRS:
        closed[:, i] = closed[:, j]  # eyelids shut: offsets vanish
    expect = torch.stack([(t[:, i] - t[:, j]).abs().sum(-1) for i, j in EYELID_PAIRS], 1).mean(1).mean()
    assert torch.isclose(eye_loss(closed, t), expect)


def test_regularisation():
    assert regularisation(torch.tensor([3.0, 4.0]), torch.tensor([1.0]), 1.0, 2.0) == 27.0


def test_dis_flow_recovers_a_known_shift():
    img = torch.from_numpy(skdata.astronaut()[100:356, 100:356]).permute(2, 0, 1).float()[None] / 255
    shifted = torch.roll(img, shifts=(3, 5), dims=(2, 3))  # content moves down 3, right 5
    flow = dis_flow(img, shifted)
    inner = flow[0, 20:-20, 20:-20].reshape(-1, 2)
    med = inner.median(0).values
    assert abs(med[0] - 5) < 0.5 and abs(med[1] - 3) < 0.5
