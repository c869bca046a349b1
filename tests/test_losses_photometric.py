"""Multi-view photometric consistency: zero-ish at the truth, larger when the shape is wrong,
blind to exposure, analytic gradients, and the optional fitter stage that uses it."""
from __future__ import annotations

import pytest
import torch

from mfnet.data.synthetic import render_subject
from mfnet.fit.config import get_config, without
from mfnet.fit.fitter import MultiViewFitter
from mfnet.fit.views import views_from_arrays
from mfnet.losses.photometric import covisible_samples, log_images, photometric_consistency_loss
from mfnet.render import WeakPerspectiveCameras
from mfnet.render.shading import vertex_normals


@pytest.fixture(scope="module")
def model(ict_dir):
    import os

    os.environ["MFNET_ICT_DIR"] = str(ict_dir)
    from mfnet.calibrate.install import load_model

    return load_model()


def _loss_at(model, subj, shape, sh, size, min_cos=0.0):
    n = len(subj.yaws_deg)
    pose = torch.cat([subj.view_rotations, subj.pose[3:].expand(n, -1)], 1)
    with torch.no_grad():
        verts = model(shape.expand(n, -1), subj.expression.expand(n, -1), pose).vertices
        face = torch.zeros(model.num_vertices, dtype=torch.bool)
        face[model.masks["face"]] = True
        samples = covisible_samples(verts, model.faces, subj.cameras, size, face[model.faces].all(1),
                                    generator=torch.Generator().manual_seed(0))
        return photometric_consistency_loss(verts, vertex_normals(verts, model.faces), model.faces, subj.cameras,
                                            size, log_images(subj.images), sh, samples, min_cos=min_cos), len(samples)


def test_consistent_at_the_truth_and_not_for_another_shape(model):
    size = 384
    subj = render_subject(model, (-40.0, 0.0, 40.0), image_size=size, seed=3)
    truth, k = _loss_at(model, subj, subj.shape, subj.sh_coeffs, size)
    assert k > 3000  # plenty of co-visible points between the views
    g = torch.Generator().manual_seed(1)
    other, _ = _loss_at(model, subj, subj.shape + 0.5 * torch.randn(model.n_shape, generator=g), subj.sh_coeffs, size)
    assert truth < 0.03  # only resampling and silhouette pixels differ
    assert other > 2 * truth
    # a common exposure change of all views cancels; a wrong light in one view does not
    brighter, _ = _loss_at(model, subj, subj.shape, subj.sh_coeffs * 2.0, size)
    assert torch.isclose(brighter, truth, rtol=1e-4)
    wrong = subj.sh_coeffs.clone()
    wrong[1] *= 1.5
    assert _loss_at(model, subj, subj.shape, wrong, size)[0] > truth + 0.1


def test_grazing_points_count_less(model):
    """At ±60° much of the co-visible surface is seen at a grazing angle in the side views, where
    resampling and silhouette pixels disagree even at the truth; weighting by the viewing angle
    lowers the loss at the truth and keeps a wrong shape clearly worse."""
    size = 256
    subj = render_subject(model, (-60.0, 0.0, 60.0), image_size=size, seed=5)
    plain, _ = _loss_at(model, subj, subj.shape, subj.sh_coeffs, size)
    weighted, _ = _loss_at(model, subj, subj.shape, subj.sh_coeffs, size, min_cos=0.4)
    assert weighted < 0.8 * plain
    g = torch.Generator().manual_seed(2)
    other, _ = _loss_at(model, subj, subj.shape + 0.5 * torch.randn(model.n_shape, generator=g), subj.sh_coeffs,
                        size, min_cos=0.4)
    assert other > 2 * weighted
    nothing_left, _ = _loss_at(model, subj, subj.shape, subj.sh_coeffs, size, min_cos=1.0)  # |cos| <= 1: no weight
    assert nothing_left == 0


def _indexed_reference(verts, normals, faces, cameras, size, logs, sh, samples, eps=0.02, min_cos=0.0):
    """The loss written with plain advanced indexing, one sample at a time per side (what
    :class:`PhotoPlan`'s sparse maps must reproduce)."""
    import torch.nn.functional as F
    from mfnet.render.shading import sh_shading

    sv = cameras.project(verts, (size, size))[..., :2]
    dirs = cameras.view_dirs(verts)
    tri, w = faces[samples.face_idx], samples.bary[..., None].to(verts.dtype)

    def side(view):
        pts = (sv[view[:, None], tri] * w).sum(1)
        n = (normals[view[:, None], tri] * w).sum(1)
        n = n / n.norm(dim=-1, keepdim=True)
        grid = (pts / size * 2 - 1)[:, None, None, :]
        colour = F.grid_sample(logs[view], grid, align_corners=False, padding_mode="border")[:, :, 0, 0]
        shade = torch.stack([sh_shading(n[k][None, None], sh[view[k]][None])[0, 0] for k in range(len(view))])
        cos = (n * (dirs[view[:, None], tri] * w).sum(1)).sum(-1).abs()
        return colour - shade.clamp_min(0.05).log(), cos

    (la, ca), (lb, cb) = side(samples.view_a), side(samples.view_b)
    rho = torch.sqrt((la - lb) ** 2 + eps ** 2) - eps
    if min_cos <= 0:
        return rho.mean()
    wt = ((torch.minimum(ca, cb) - min_cos) / 0.2).clamp(0, 1)[:, None]
    return (rho * wt).sum() / (wt.sum() * rho.shape[1])


@pytest.mark.parametrize("min_cos", [0.0, 0.4])
def test_sparse_plan_equals_the_indexed_formula(model, min_cos):
    from mfnet.losses.photometric import PhotoPlan

    size = 128
    subj = render_subject(model, (-50.0, 0.0, 30.0), image_size=size, seed=4)
    verts = subj.vertices.double()
    faces = model.faces
    normals = vertex_normals(verts, faces)
    cams = WeakPerspectiveCameras(subj.cameras.scale.double(), subj.cameras.trans.double())
    samples = covisible_samples(verts, faces, cams, size, max_points_per_pair=150,
                                generator=torch.Generator().manual_seed(0))
    logs, sh = log_images(subj.images.double(), 0.5), subj.sh_coeffs.double() * 1.1
    ref = _indexed_reference(verts, normals, faces, cams, size, logs, sh, samples, min_cos=min_cos)
    plan = PhotoPlan.build(samples, faces, verts.shape[0], verts.shape[1], torch.float64)
    got = photometric_consistency_loss(verts, normals, faces, cams, size, logs, sh, samples, min_cos=min_cos,
                                       plan=plan)
    assert ref > 0
    torch.testing.assert_close(got, ref, rtol=1e-9, atol=1e-12)


def test_gradients_match_finite_differences():
    torch.manual_seed(0)
    ys, xs = torch.meshgrid(torch.linspace(-0.5, 0.5, 4), torch.linspace(-0.5, 0.5, 4), indexing="ij")
    verts0 = torch.stack([xs, ys, 0.1 * torch.cos(3 * xs) * torch.cos(2 * ys)], -1).reshape(-1, 3).double()
    faces = torch.tensor([[r * 4 + c, r * 4 + c + 1, (r + 1) * 4 + c] for r in range(3) for c in range(3)]
                         + [[r * 4 + c + 1, (r + 1) * 4 + c + 1, (r + 1) * 4 + c] for r in range(3) for c in range(3)])
    cams = WeakPerspectiveCameras(torch.tensor([1.2, 1.1]).double(), torch.tensor([[0.0, 0.0], [0.02, -0.01]]).double())
    verts = torch.stack([verts0, verts0 + torch.tensor([0.01, 0.0, 0.0]).double()])
    size = 24
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    img = 0.5 + 0.3 * torch.sin(0.4 * xx + 0.3 * yy)[None, None].expand(2, 3, -1, -1).double()
    logs = log_images(img)
    sh = torch.zeros(2, 9, 3, dtype=torch.float64)
    sh[:, 0] = 2.0
    sh[:, 3] = 0.5
    samples = covisible_samples(verts, faces, cams, size, depth_tol=1.0, generator=torch.Generator().manual_seed(0))
    assert len(samples) > 20

    def f(v, light):
        return photometric_consistency_loss(v, vertex_normals(v, faces), faces, cams, size, logs, light, samples)

    # sampled points sit on pixel centres, where bilinear lookup has a kink: test slightly off them
    moved = verts + 2e-3 * torch.randn(verts.shape, generator=torch.Generator().manual_seed(1), dtype=verts.dtype)
    assert torch.autograd.gradcheck(f, (moved.requires_grad_(), sh.clone().requires_grad_()), eps=1e-6, atol=1e-5)


def test_photometric_stage_fits_lights_and_lowers_its_loss(model):
    subj = render_subject(model, (-30.0, 0.0, 30.0), image_size=192, seed=5)
    model.use_landmark_embedding("static")
    views = views_from_arrays(subj.images, subj.landmarks2d)
    res = MultiViewFitter(model, get_config("fast", **{"iters.photo": 24}), progress=False).fit(views)
    assert res.views.light is not None and res.views.light.shape == (3, 9, 3)
    light = res.history["light"]
    assert light[-1] < light[0]  # the lights alone already explain the photos better
    assert "photo" in res.history and len(res.history["photo"]) == 24
    off = MultiViewFitter(model, get_config("fast", **{"iters.photo": 24}, **without("photo")), progress=False)
    assert "photo" not in off.fit(views).history  # the ablation switch removes the stage


def test_photometric_term_alone_recovers_a_perturbed_shape(model):
    """Render known parameters, start the photometric stage (no landmarks) from the true cameras and
    a perturbed shape: the shape error must drop well below the start."""
    from mfnet.evaluate.synthetic import face_region, vertex_error_mm
    from mfnet.types import HeadParams, ViewParams

    model.use_landmark_embedding("static")
    subj = render_subject(model, (-35.0, 0.0, 35.0), image_size=256, seed=11)
    views = views_from_arrays(subj.images, subj.landmarks2d)
    with torch.no_grad():
        gt = model(subj.shape[None], subj.expression[None], subj.pose[None])
    region = face_region(model, gt.vertices[0].numpy(), gt.landmarks[0].numpy())

    def error(shape):
        with torch.no_grad():
            p = model(shape[None], subj.expression[None], subj.pose[None])
        return vertex_error_mm(p.vertices[0].numpy(), gt.vertices[0].numpy(), p.landmarks[0].numpy(),
                               gt.landmarks[0].numpy(), region).mean_mm

    start = subj.shape + 0.4 * torch.randn(model.n_shape, generator=torch.Generator().manual_seed(2))
    init = (HeadParams(start, subj.expression.clone(), torch.zeros(3)),
            ViewParams(subj.view_rotations.clone(), subj.cameras.scale.clone(), subj.cameras.trans.clone()))
    cfg = get_config("default", iters=dict(pose=0, shape=0, flow=0, photo=120),
                     weights=dict(landmarks=0.0, eye=0.0, lip=0.0), photo=dict(w_reg=1e-6, lr_scale=0.4))
    res = MultiViewFitter(model, cfg, progress=False).fit(views, init=init)
    before, after = error(start), error(res.head.shape)
    print(f"shape error {before:.2f} -> {after:.2f} mm")
    assert after < 0.65 * before, (before, after)  # measured 1.23 -> 0.69 mm


def test_identity_prior_grows_with_the_photometric_noise():
    """The photometric stage's identity prior is scaled by (residual / photo.noise_ref)^2 within [1, 10]:
    clean renders keep it, noisy real photos get a stronger one (mfnet.fit.stages.noise_scale)."""
    from mfnet.fit.stages import noise_scale

    assert noise_scale(0.02, 0.04) == 1.0 and noise_scale(0.04, 0.04) == 1.0
    assert noise_scale(0.08, 0.04) == pytest.approx(4.0) and noise_scale(1.0, 0.04) == 10.0
    assert noise_scale(float("nan"), 0.04) == 1.0
    assert noise_scale(0.5, 0.0) == 1.0  # off


def test_standardised_residual_ignores_each_photos_exposure_and_contrast():
    """photo_normalise: a per-view affine change of the log albedo (exposure, contrast) leaves the term
    unchanged, which the plain difference does not."""
    from mfnet.losses.photometric import PhotoPlan, SurfaceSamples, _standardised_difference

    g = torch.Generator().manual_seed(0)
    K = 200
    s = SurfaceSamples(torch.zeros(K, dtype=torch.long), torch.ones(K, dtype=torch.long), torch.arange(K),
                       torch.full((K, 3), 1 / 3))
    faces = torch.arange(3 * K).reshape(K, 3)
    plan = PhotoPlan.build(s, faces, 2, 3 * K, torch.float64)
    a = torch.randn(K, 3, generator=g, dtype=torch.float64)
    b = a + 0.1 * torch.randn(K, 3, generator=g, dtype=torch.float64)
    L = torch.empty(2 * K, 3, dtype=torch.float64)
    L[plan.pos_a], L[plan.pos_b] = a, b
    d1 = _standardised_difference(L, plan, s, 2, None)
    L2 = L.clone()
    L2[plan.pos_b] = 3.0 * b + 0.7
    d2 = _standardised_difference(L2, plan, s, 2, None)
    torch.testing.assert_close(d1, d2, atol=1e-4, rtol=1e-4)  # up to the 1e-3 std floor
    assert not torch.allclose(plan.diff(L), plan.diff(L2))


def test_samples_barely_change_when_the_geometry_barely_changes(model):
    """The samples are chosen by each pixel's own priority: a head moved by a fraction of a pixel
    keeps nearly all its sample points (a random draw by index redrew them all, which made the fit's
    result jump with invisible changes of the photos)."""
    size = 256
    subj = render_subject(model, (-30.0, 0.0, 30.0), image_size=size, seed=2)
    n = len(subj.yaws_deg)
    pose = torch.cat([subj.view_rotations, subj.pose[3:].expand(n, -1)], 1)
    with torch.no_grad():
        verts = model(subj.shape.expand(n, -1), subj.expression.expand(n, -1), pose).vertices
    picks = []
    for v in (verts, verts * 1.002):  # about a third of a pixel at the face's border
        s = covisible_samples(v, model.faces, subj.cameras, size, max_points_per_pair=500,
                              generator=torch.Generator().manual_seed(0))
        picks.append(set(zip(s.view_a.tolist(), s.view_b.tolist(), s.face_idx.tolist())))
    assert len(picks[0]) > 2000
    assert len(picks[0] & picks[1]) > 0.7 * len(picks[0])  # 0.82 here; 0.12 with a random draw by index
