"""The fit's public pieces: sectioned settings and their overrides, camera rigs, loss-term objects,
the stages a configuration builds, and a reconstruction that leaves the caller's model alone."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from synthetic_model import make_synthetic_model

from mfnet.errors import MfnetError
from mfnet.fit.config import (ABLATIONS, FitConfig, LearningRates, apply_overrides, get_config, get_preset,
                              setting_names, without)
from mfnet.fit.fitter import MultiViewFitter
from mfnet.fit.rig import WeakPerspectiveRig
from mfnet.fit.stages import build_stages, noise_scale
from mfnet.fit.terms import FitState, LandmarkTerms, PriorTerm
from mfnet.fit.views import views_from_arrays
from mfnet.headmodel.model import HeadModel
from mfnet.losses.weights import LossWeights
from mfnet.train.config import LossConfig
from mfnet.types import HeadParams


# ----------------------------------------------------------------------------- settings
def test_overrides_by_section_dict_and_object():
    cfg = apply_overrides(FitConfig(), {"iters.photo": 0, "weights.landmarks": "0.5", "seed": "3",
                                        "photo": {"points": "250"}, "lr": LearningRates(shape=0.1)})
    assert cfg.iters.photo == 0 and cfg.weights.landmarks == 0.5 and cfg.seed == 3
    assert cfg.photo.points == 250 and isinstance(cfg.photo.points, int) and cfg.lr.shape == 0.1
    assert FitConfig().iters.photo == 200  # the defaults are not changed
    assert apply_overrides(FitConfig(), {"photo.normalise": "true"}).photo.normalise is True


@pytest.mark.parametrize("settings", [{"distance.start": "-0.5"}, {"distance.start": "4"},
                                      {"distance.max": "0"}, {"distance.max": "6", "distance.start": "1"}])
def test_camera_distance_settings_are_checked(settings):
    with pytest.raises(MfnetError, match="distance.start=.*distance.max="):
        apply_overrides(FitConfig(), settings)
    assert apply_overrides(FitConfig(), {"distance.start": "1.5", "distance.max": "2"}).distance.start == 1.5


@pytest.mark.parametrize("key,value", [("iters_photo", 0), ("iters.nope", 1), ("photo.w_reg", "abc"),
                                       ("photo.normalise", "maybe"), ("photo.points", "2.5"),
                                       ("iters", {"nope": 1})])
def test_bad_overrides_are_clear_errors(key, value):
    with pytest.raises(MfnetError, match="iters.photo|expected"):
        apply_overrides(FitConfig(), {key: value})


def test_presets_and_pipeline_settings():
    fast, best = get_preset("fast"), get_preset("best", crop_size=320)
    assert fast.fit.iters.flow == 0 and fast.fit.iters.photo == 0 and fast.pipeline.crop_size == 192
    assert best.pipeline.crop_size == 320 and best.pipeline.texture_size == 1024 and best.fit.flow.every == 10
    assert get_preset("fast").fit is not fast.fit  # a fresh object each time: nothing shared to mutate
    with pytest.raises(MfnetError, match="unknown preset"):
        get_config("quick")
    with pytest.raises(MfnetError, match="crop_size='big': expected a int"):
        get_preset("fast", crop_size="big")
    assert get_preset("fast", crop_size="320").pipeline.crop_size == 320
    assert "photo.w_reg" in setting_names() and "crop_size" in setting_names()


def test_one_loss_weights_for_fit_and_training():
    assert isinstance(FitConfig().weights, LossWeights) and isinstance(LossConfig().weights, LossWeights)
    assert LossConfig().weights.reg_shape == 1e-4 and FitConfig().weights.reg_shape == 1e-2  # paper vs measured
    assert without("reg")["photo.w_reg"] == 0.0 and set(ABLATIONS) >= {"multiop", "photo", "singlelmk"}
    with pytest.raises(MfnetError, match="unknown loss term"):
        without("nose")


# ----------------------------------------------------------------------------- objects
@pytest.fixture(scope="module")
def model():
    return HeadModel(make_synthetic_model(n_verts=80))


def _views(model, n=2, size=128):
    rot = torch.tensor([[0.0, 0.3 * i, 0.0] for i in range(n)])
    head = HeadParams(torch.zeros(model.n_shape), torch.zeros(model.n_expr), torch.zeros(3))
    rig = WeakPerspectiveRig(rot, torch.full((n,), math.log(2.0)), torch.zeros(n, 2))
    lmk = rig.cameras().project(model(head.shape[None], head.expression[None], head.pose(rot)).landmarks,
                                (size, size))[..., :2]
    return views_from_arrays(torch.rand(n, 3, size, size), lmk.detach()), rig, head


def test_landmark_terms_vanish_at_the_truth_and_prior_is_analytic(model):
    views, rig, head = _views(model)
    state = FitState(model, views, rig, head.shape.clone(), head.expression.clone(), head.jaw.clone(),
                     dynamic_contour=False)  # as the target landmarks were made
    with torch.no_grad():
        parts = LandmarkTerms(1.0, 1.0, 0.5).parts(state, 0)
        assert set(parts) == {"singlelmk", "eye", "lip"} and all(float(v) < 1e-5 for v in parts.values())
        state.rig = WeakPerspectiveRig(rig.rotation, rig.log_scale, rig.translation + 0.1)
        state.begin_step()
        assert float(LandmarkTerms(1.0, 1.0, 0.5).parts(state, 0)["singlelmk"]) > 1e-3  # moved: no longer zero
    state.shape = torch.full((model.n_shape,), 2.0)
    state.expression = torch.full((model.n_expr,), 1.0)
    prior = PriorTerm(0.5, 0.25)
    assert float(prior(state, 0)) == pytest.approx(0.5 * 4.0 * model.n_shape + 0.25 * model.n_expr, rel=1e-6)
    prior.scale = 3.0  # the photometric stage's noise scaling multiplies the identity weight only
    assert float(prior(state, 0)) == pytest.approx(1.5 * 4.0 * model.n_shape + 0.25 * model.n_expr, rel=1e-6)
    state.shape_fixed = True  # a fixed identity has no prior
    assert float(prior(state, 0)) == pytest.approx(0.25 * model.n_expr, rel=1e-6)


def test_stages_follow_the_weights_and_view_count(model):
    views, rig, head = _views(model)

    def names(cfg, v=views):
        st = FitState(model, v, rig, head.shape.clone(), head.expression.clone(), head.jaw.clone())
        return [s.name for s in build_stages(cfg, st, None, None, lambda: None)]

    assert names(FitConfig()) == ["pose", "shape", "flow", "light", "photo"]
    assert names(apply_overrides(FitConfig(), without("multiop"))) == ["pose", "shape", "light", "photo"]
    assert names(apply_overrides(FitConfig(), without("photo"))) == ["pose", "shape", "flow"]
    one = views.select([0])
    assert names(FitConfig(), one) == ["pose", "shape"]  # flow and photometric terms need two views
    assert noise_scale(0.08, 0.04) == pytest.approx(4.0)
    st = FitState(model, views, rig, head.shape.clone(), head.expression.clone(), head.jaw.clone())
    moving = {s.name: "distance" in s.groups for s in build_stages(FitConfig(), st, None, None, lambda: None)}
    assert moving == {"pose": False, "shape": False, "flow": True, "light": False, "photo": True}
    held = apply_overrides(FitConfig(), {"distance.estimate": False})
    assert not any("distance" in s.groups for s in build_stages(held, st, None, None, lambda: None))


def test_camera_distance_is_recovered_and_kept_in_range(model):
    """Landmarks seen from 50 cm (inverse distance 2/m): a stage that moves the cameras and their
    distance from a weak-perspective start finds the distance; the rig keeps it within [0, max]."""
    from mfnet.fit.config import DistanceOptions
    from mfnet.fit.stages import Stage, run_stage

    n, size = 3, 256
    rot = torch.tensor([[0.0, -0.5, 0.0], [0.1, 0.0, 0.0], [0.0, 0.5, 0.0]])
    head = HeadParams(torch.zeros(model.n_shape), torch.zeros(model.n_expr), torch.zeros(3))
    true = WeakPerspectiveRig(rot, torch.full((n,), math.log(4.0)), torch.zeros(n, 2), inv_distance=2.0)
    lmk3d = model(head.shape[None], head.expression[None], head.pose(rot)).landmarks
    lmk = true.cameras().project(lmk3d, (size, size))[..., :2].detach()
    views = views_from_arrays(torch.rand(n, 3, size, size), lmk)
    rig = WeakPerspectiveRig.initialise(model, views, head, None, False, DistanceOptions(start=0.0, estimate=True))
    assert rig.cameras().inv_distance is not None and float(rig.inv_distance.detach()) == 0.0
    state = FitState(model, views, rig, head.shape.clone(), head.expression.clone(), head.jaw.clone(),
                     dynamic_contour=False)
    cfg = FitConfig()
    run_stage(Stage("cameras", 300, ("camera", "distance"), [(LandmarkTerms(1.0, 0.0, 0.0), 1.0)]), state, cfg)
    assert float(rig.inv_distance.detach()) == pytest.approx(2.0, abs=0.2)
    with torch.no_grad():
        rig.inv_distance.fill_(7.0)
    rig.constrain()
    assert float(rig.inv_distance.detach()) == DistanceOptions().max
    # held at 0: no finite distance at all (the weak-perspective cameras of MFNet)
    ortho = WeakPerspectiveRig.initialise(model, views, head, None, False, DistanceOptions(start=0.0, estimate=False))
    assert ortho.cameras().inv_distance is None and ortho.distance_groups(cfg.lr) == []


def test_reconstruct_leaves_the_callers_model_alone(model):
    """A shallow copy is fitted: the caller's landmark embedding and tensors stay as they were."""
    m = HeadModel(make_synthetic_model(n_verts=80))
    before = m.lmk_faces_idx.clone()
    name = m.embedding_name
    copy = m.shallow_copy()
    copy.lmk_faces_idx = before.flip(0)
    copy.to(torch.float64)
    assert m.embedding_name == name and torch.equal(m.lmk_faces_idx, before) and m.v_template.dtype == torch.float32
    assert copy.v_template.dtype == torch.float64 and copy.shapedirs.data_ptr() != m.shapedirs.data_ptr()


def test_fitter_result_carries_posed_heads_and_projection(model):
    views, rig, head = _views(model)
    res = MultiViewFitter(model, get_config("fast", **{"iters.pose": 5, "iters.shape": 5}), progress=False).fit(views)
    n = len(views)
    assert res.posed_vertices.shape == (n, model.num_vertices, 3) and res.landmarks2d.shape == (n, 68, 2)
    again = res.views.cameras().project(
        model(res.head.shape[None], res.head.expression[None], res.head.pose(res.views.rotation)).landmarks,
        (views.size, views.size))[..., :2]
    np.testing.assert_allclose(res.landmarks2d.numpy(), again.numpy(), atol=1e-4)
    np.testing.assert_allclose(res.project(res.posed_vertices).numpy(), res.views.cameras().project(
        res.posed_vertices, (views.size, views.size))[..., :2].numpy())
    assert set(res.history) == {"pose", "shape"} and isinstance(res.rig, WeakPerspectiveRig)


def test_command_line_set_is_checked_before_the_work(tmp_path, capsys, monkeypatch):
    """`mfnet reconstruct --set` takes the same names; a wrong one is one clear line, exit 2, before the
    model is loaded."""
    from PIL import Image

    from mfnet.cli.main import main

    photo = tmp_path / "a.png"
    Image.new("RGB", (64, 64)).save(photo)

    def no_model(*a, **k):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr("mfnet.headmodel.registry.load_head_model", no_model)
    for item, msg in (("iters.foo=1", "unknown fit setting 'iters.foo'"), ("photo.w_reg=abc", "expected a float"),
                      ("photo.w_reg", "expected SECTION.FIELD=VALUE")):
        assert main(["reconstruct", str(photo), "--out", str(tmp_path / "out"), "--set", item]) == 2
        assert msg in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_several_heads_fit_as_their_views_alone(model):
    """Several heads in one batched fit (a shared head for all views, then one head per view: what
    the same-person check fits) move as separate fits of their views would, also for views of
    different heads. Not bit for bit: where the L1 landmark gradient of a parameter cancels to
    rounding noise, Adam turns that noise into a small step."""
    n, size = 3, 128
    g = torch.Generator().manual_seed(0)
    shapes, exprs = torch.randn(n, model.n_shape, generator=g), 0.3 * torch.rand(n, model.n_expr, generator=g)
    rot = torch.tensor([[0.0, -0.3, 0.0], [0.1, 0.0, 0.0], [0.0, 0.4, 0.0]])
    true = WeakPerspectiveRig(rot, torch.full((n,), math.log(2.0)), torch.zeros(n, 2))
    heads = HeadParams(shapes, exprs, torch.zeros(n, 3))
    lmk = true.cameras().project(model(*heads.codes(), heads.pose(rot)).landmarks, (size, size))[..., :2]
    noisy = lmk.detach() + torch.randn(lmk.shape, generator=g)  # a detector's noise: no exact solution
    views = views_from_arrays(torch.rand(n, 3, size, size), noisy)
    cfg = get_config("fast", **{"iters.pose": 20, "iters.shape": 40})
    both = MultiViewFitter(model, cfg, progress=False, heads=[0, 0, 0, 1, 2, 3]).fit(views.select([0, 1, 2] * 2))
    assert both.head.shape.shape == (n + 1, model.n_shape) and both.head.jaw.shape == (n + 1, 3)
    err = (both.landmarks2d - noisy.repeat(2, 1, 1)).norm(dim=-1).mean(1)  # (2N,) px

    def check(fit, rows, head):
        ref = (fit.landmarks2d - noisy[rows]).norm(dim=-1).mean(1)
        np.testing.assert_allclose(err[[r + (head > 0) * n for r in rows]].numpy(), ref.numpy(), rtol=0.03)
        np.testing.assert_allclose(both.head.shape[head].numpy(), fit.head.shape.numpy(), atol=0.1)

    shared = MultiViewFitter(model, cfg, progress=False).fit(views)
    check(shared, [0, 1, 2], 0)
    for i in range(n):
        check(MultiViewFitter(model, cfg, progress=False).fit(views.select([i])), [i], i + 1)
    assert float(err[n:].mean()) < 0.8 * float(err[:n].mean())  # one head cannot explain three
    for bad in ([0, 2], [0]):
        with pytest.raises(ValueError, match="heads"):
            MultiViewFitter(model, cfg, heads=bad, progress=False).fit(views.select([0, 1]))
    with pytest.raises(ValueError, match="heads"):
        MultiViewFitter(model, cfg, fixed_shape=torch.zeros(model.n_shape), heads=[0, 1])
