"""The cameras' focal length: read from EXIF (or given), carried to crop pixels, and turned into each
view's camera distance by the uncalibrated rig."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from synthetic_model import make_synthetic_model
from mfnet.errors import MfnetError
from mfnet.fit.config import DistanceOptions, FitConfig
from mfnet.fit.rig import WeakPerspectiveRig
from mfnet.fit.stages import Stage, run_stage
from mfnet.fit.terms import FitState, LandmarkTerms
from mfnet.fit.views import crop_focal, views_from_arrays
from mfnet.headmodel.model import HeadModel
from mfnet.types import HeadParams
from mfnet.utils.exif import FULL_FRAME_DIAGONAL_MM, focal_exif, focal_px_from_35mm
from mfnet.utils.images import load_view


@pytest.fixture(scope="module")
def model():
    return HeadModel(make_synthetic_model())


def _photo(path, size=(240, 320), exif=None, fmt=None):
    img = Image.fromarray(np.full((*size, 3), 128, np.uint8))
    kw = {} if exif is None else {"exif": exif}
    img.save(path, format=fmt, **kw)
    return path


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_the_35mm_focal_length_is_read_from_exif(tmp_path, fmt):
    """A 50 mm-equivalent lens on a 320x240 photo: f = 50 / 43.27 x 400 px (the frame's diagonal)."""
    p = _photo(tmp_path / f"a.{fmt.lower()}", exif=focal_exif(50), fmt=fmt)
    v = load_view(p)
    assert v.focal_px == pytest.approx(50 / math.hypot(36, 24) * 400.0)
    assert FULL_FRAME_DIAGONAL_MM == pytest.approx(43.2666, abs=1e-4)
    assert load_view(_photo(tmp_path / f"b.{fmt.lower()}", fmt=fmt)).focal_px is None  # none recorded
    cropped = Image.Exif()
    cropped.get_ifd(0x8769).update({0xA405: 50, 0xA002: 4000, 0xA003: 3000})  # recorded 4:3, the photo is square
    assert load_view(_photo(tmp_path / f"c.{fmt.lower()}", (240, 240), cropped.tobytes(), fmt)).focal_px is None
    resized = Image.Exif()
    resized.get_ifd(0x8769).update({0xA405: 50, 0xA002: 4000, 0xA003: 3000})  # 4:3 at 320x240: resized, fine
    assert load_view(_photo(tmp_path / f"d.{fmt.lower()}", exif=resized.tobytes(), fmt=fmt)).focal_px == pytest.approx(
        50 / math.hypot(36, 24) * 400.0)


def test_focal_length_from_the_sensor_resolution_follows_a_resize(tmp_path):
    """FocalLength 4 mm on a sensor of 1000 px/cm recorded at 1280 px wide: 400 px at 1280, 100 px on a
    copy resized to 320 px; rotated by EXIF orientation, the same."""
    exif = Image.Exif()
    ifd = exif.get_ifd(0x8769)
    ifd[0x920A], ifd[0xA20E], ifd[0xA210], ifd[0xA002], ifd[0xA003] = 4.0, 1000.0, 3, 1280, 960
    assert load_view(_photo(tmp_path / "s.jpg", exif=exif.tobytes())).focal_px == pytest.approx(100.0)
    exif[0x0112] = 6  # stored on its side
    v = load_view(_photo(tmp_path / "r.jpg", exif=exif.tobytes()))
    assert v.original_size == (320, 240) and v.focal_px == pytest.approx(100.0)
    broken = Image.Exif()
    broken.get_ifd(0x8769)[0x920A] = 4.0  # a focal length without the sensor's resolution: unknown
    assert load_view(_photo(tmp_path / "u.jpg", exif=broken.tobytes())).focal_px is None


def test_crop_focal_scales_to_the_crop_and_checks_the_given_value():
    """Crop pixels = original pixels / (original pixels per crop pixel); NaN where unknown; a given
    35 mm value replaces EXIF for every photo; nonsense is a clear error."""
    c2o = np.array([[[2.0, 0, 10], [0, 2.0, 5]], [[0.0, -4.0, 3], [4.0, 0, 1]]])  # 2 and 4 px per crop px
    f = crop_focal([(240, 320), (240, 320)], [300.0, None], c2o)
    assert f[0].item() == pytest.approx(150.0) and math.isnan(f[1].item())
    assert crop_focal([(240, 320)] * 2, [None, None], c2o) is None
    given = crop_focal([(240, 320)] * 2, [300.0, None], c2o, focal_35mm=26)
    want = focal_px_from_35mm(26, (240, 320))
    assert given.tolist() == pytest.approx([want / 2, want / 4])
    for bad in (0.0, -5.0, float("nan")):
        with pytest.raises(MfnetError, match="35 mm-equivalent"):
            crop_focal([(240, 320)] * 2, [None, None], c2o, focal_35mm=bad)


def _landmarks_from_50cm(model, n=3, size=256):
    """Landmarks of the mean head seen by pinholes 50 cm away (k = 2/m) at scale 4: focal 2 half-crops."""
    rot = torch.tensor([[0.0, -0.5, 0.0], [0.1, 0.0, 0.0], [0.0, 0.5, 0.0]])[:n]
    head = HeadParams(torch.zeros(model.n_shape), torch.zeros(model.n_expr), torch.zeros(3))
    true = WeakPerspectiveRig(rot, torch.full((n,), math.log(4.0)), torch.zeros(n, 2), inv_distance=2.0)
    lmk3d = model(head.shape[None], head.expression[None], head.pose(rot)).landmarks
    return head, true.cameras().project(lmk3d, (size, size))[..., :2].detach()


def test_a_known_focal_length_gives_each_view_its_distance_in_the_landmark_stages(model):
    """With the focal length known, k = scale / focal in every stage: a landmark stage that does not move
    the shared distance finds k = 2 and fits the perspective landmarks (the orthographic rig cannot);
    a view without a focal length uses the shared (here held) distance."""
    size = 256
    head, lmk = _landmarks_from_50cm(model, size=size)
    views = views_from_arrays(torch.rand(3, 3, size, size), lmk)
    views.focal_px = torch.full((3,), 2.0 * size / 2)
    opts = DistanceOptions(start=0.0, estimate=True)
    errors = {}
    for name, focal in (("focal", True), ("ortho", False)):
        rig = WeakPerspectiveRig.initialise(model, views, head, None, False, DistanceOptions(0.0, False, focal=focal))
        state = FitState(model, views, rig, head.shape.clone(), head.expression.clone(), head.jaw.clone(),
                         dynamic_contour=False)
        run_stage(Stage("cameras", 300, ("camera",), [(LandmarkTerms(1.0, 0.0, 0.0), 1.0)]), state, FitConfig())
        errors[name] = float((state.landmarks2d().detach() - lmk).norm(dim=-1).mean())
        if focal:
            k = rig.cameras().inv_distance
            assert k.tolist() == pytest.approx([2.0] * 3, abs=0.05)
            assert rig.distance_groups(FitConfig().lr) == []  # nothing shared left to estimate
    assert errors["focal"] < 0.05 and errors["ortho"] > 3 * errors["focal"]
    views.focal_px = torch.tensor([256.0, 2.0, 256.0])  # view 1: a camera a few mm away, nonsense
    with pytest.warns(UserWarning, match="view1: its focal length .* ignored"):
        mixed = WeakPerspectiveRig.initialise(model, views, head, None, False, DistanceOptions(0.5, True))
    k = mixed.cameras().inv_distance
    assert float(k[1].detach()) == 0.5 and mixed.distance_groups(FitConfig().lr) != []
    assert float(k[0].detach()) == pytest.approx(float(mixed.log_scale[0].detach().exp()) / 2.0)
    k[0].backward()
    assert mixed.log_scale.grad[0] != 0 and float(mixed.inv_distance.grad.abs().sum()) == 0  # k of view 0: its scale's


def test_a_single_view_keeps_weak_perspective_unless_asked(model):
    """One photo cannot tell the face's depth from the camera's distance: its focal length is used only
    with ``distance.focal_single_view``; ``distance.focal=false`` ignores it for several views too."""
    size = 256
    head, lmk = _landmarks_from_50cm(model, size=size)
    one = views_from_arrays(torch.rand(1, 3, size, size), lmk[:1])
    one.focal_px = torch.full((1,), 256.0)
    held = DistanceOptions(0.0, False)
    assert WeakPerspectiveRig.initialise(model, one, head, None, False, held).cameras().inv_distance is None
    rig = WeakPerspectiveRig.initialise(model, one, head, None, False, DistanceOptions(0.0, False, focal_single_view=True))
    assert float(rig.cameras().inv_distance[0].detach()) == pytest.approx(float(rig.log_scale[0].detach().exp()) / 2.0)
    three = views_from_arrays(torch.rand(3, 3, size, size), lmk)
    three.focal_px = torch.full((3,), 256.0)
    off = WeakPerspectiveRig.initialise(model, three, head, None, False, DistanceOptions(0.0, False, focal=False))
    assert off.cameras().inv_distance is None


def test_the_command_line_checks_focal_before_any_work(tmp_path, capsys):
    """A nonsensical --focal, or --focal with a calibrated rig, is one clear line and exit 2, before any
    heavy work: no output folder appears."""
    from mfnet.cli.main import main

    photo = _photo(tmp_path / "a.jpg")
    (tmp_path / "c.json").write_text('{"cameras": []}')
    for extra, message in ((["--focal", "-3"], "35 mm-equivalent focal length"),
                           (["--focal", "26", "--cameras", str(tmp_path / "c.json")], "give one of them")):
        assert main(["reconstruct", str(photo), "--out", str(tmp_path / "o"), "--quiet", *extra]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_a_given_focal_length_reaches_views_prepared_by_the_caller():
    """``reconstruct(views=..., focal=MM)``: the given 35 mm value becomes each view's crop focal length
    (views from arrays: crop = original pixels)."""
    from mfnet.pipeline import _prepare_views

    views = views_from_arrays(torch.rand(2, 3, 64, 64), torch.zeros(2, 68, 2))
    out, caught = _prepare_views(None, views, 64, "mediapipe", 50.0, lambda *a: None, {})
    assert out.focal_px.tolist() == pytest.approx([focal_px_from_35mm(50.0, (64, 64))] * 2) and caught == []
    same, _ = _prepare_views(None, views, 64, "mediapipe", None, lambda *a: None, {})
    assert same.focal_px is None
