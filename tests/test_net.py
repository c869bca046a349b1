"""MFNet network: shapes, fusion behaviour, view dropout, checkpoints, inference API, weight init."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision

from mfnet.errors import MfnetError
from mfnet.net import (CheckpointError, InitWeightsError, MFNet, NetConfigError, init_from_network,
                       load_checkpoint, load_init, predict, save_checkpoint)
from mfnet.types import HeadParams, ViewParams, Views

S = 64


def _net(fusion="meanmax", **kw):
    torch.manual_seed(0)
    return MFNet(6, 5, backbone="resnet18", fusion=fusion, image_size=S, hidden=64, tex_dim=4, **kw).eval()


@pytest.fixture(scope="module")
def images():
    return torch.rand(2, 5, 3, S, S, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("fusion", ["meanmax", "attention"])
def test_order_invariant_fusion_any_view_count(fusion, images):
    net = _net(fusion)
    with torch.no_grad():
        for n in (1, 3, 5):
            out = net(images[:, :n])
            assert out.shape.shape == (2, 6) and out.expression.shape == (2, 5) and out.jaw.shape == (2, 3)
            assert out.rotation.shape == (2, n, 3, 3) and out.scale.shape == (2, n) and out.trans.shape == (2, n, 2)
            assert out.light.shape == (2, n, 9, 3) and out.texture.shape == (2, n, 4)
            R = out.rotation
            assert torch.allclose(R @ R.transpose(-1, -2), torch.eye(3).expand_as(R), atol=1e-5)
        perm = torch.tensor([3, 0, 4, 2, 1])
        a, b = net(images), net(images[:, perm])
    for k in ("shape", "expression", "jaw"):  # shared codes: invariant to the view order
        assert torch.allclose(getattr(a, k), getattr(b, k), atol=1e-5), k
    assert torch.allclose(a.scale[:, perm], b.scale, atol=1e-5)  # per-view outputs follow their view


def test_concat_fusion_fixed_views(images):
    net = _net("concat", n_views=3)
    with torch.no_grad():
        out = net(images[:, :3])
        assert out.shape.shape == (2, 6) and out.rotation.shape == (2, 3, 3, 3)
        swapped = net(images[:, [1, 0, 2]])
    assert not torch.allclose(out.shape, swapped.shape)  # the paper's concat is order dependent
    with pytest.raises(NetConfigError, match="exactly 3 views"):
        net(images[:, :2])


def test_untrained_output_is_the_prior(images):
    net = MFNet(6, 5, "resnet18", "meanmax", image_size=S, hidden=64, expression_bounds=(0.0, 1.0),
                camera_prior=(4.0, 0.01, -0.02)).eval()
    with torch.no_grad():
        out = net(images[:, :3])
    assert torch.allclose(out.rotation, torch.eye(3).expand_as(out.rotation), atol=0.05)
    assert torch.allclose(out.scale, torch.full_like(out.scale, 4.0), rtol=0.05)
    assert ((out.expression >= 0) & (out.expression <= 1)).all() and out.expression.mean() < 0.1
    assert out.shape.abs().max() < 0.1


def test_view_dropout_keeps_a_view():
    net = _net("meanmax", view_dropout=0.9).train()
    mask = torch.ones(64, 3, dtype=torch.bool)
    mask[0, 1:] = False
    kept = net._dropout_mask(mask)
    assert kept.any(1).all() and not (kept & ~mask).any()
    assert kept.float().mean() < 0.6  # views are really hidden
    net.train()
    out = net(torch.rand(2, 3, 3, S, S))  # dropout path runs and still gives every view's outputs
    assert out.scale.shape == (2, 3)


def test_bad_settings():
    with pytest.raises(NetConfigError, match="backbone"):
        MFNet(4, 4, backbone="vgg16")
    with pytest.raises(NetConfigError, match="fusion"):
        MFNet(4, 4, backbone="resnet18", fusion="sum")


def test_predict_checkpoint_roundtrip(tmp_path, images):
    net = _net("attention")
    views = Views(images[0, :3], torch.zeros(3, 68, 2), torch.ones(3, 68), np.zeros((3, 2, 3)), ["a", "b", "c"])
    head, vp = predict(net, views)
    assert isinstance(head, HeadParams) and isinstance(vp, ViewParams)
    assert head.shape.shape == (6,) and vp.rotation.shape == (3, 3) and vp.light.shape == (3, 9, 3)
    assert head.pose(vp.rotation).shape == (3, 15)
    path = save_checkpoint(tmp_path / "net.pt", net, step=7, head_model="tiny")
    net2, ckpt = load_checkpoint(path)
    assert ckpt["step"] == 7 and ckpt["net_config"]["fusion"] == "attention"
    head2, vp2 = predict(net2, views.images)
    assert torch.equal(head.shape, head2.shape) and torch.equal(vp.scale, vp2.scale)
    # predictions on bigger crops: same cameras (weak perspective is resolution independent)
    big = torch.nn.functional.interpolate(views.images, size=(2 * S, 2 * S), mode="bilinear", align_corners=False)
    _, vp3 = predict(net2, big)
    assert torch.allclose(vp3.scale, vp.scale, rtol=0.05)


def test_checkpoint_errors(tmp_path):
    with pytest.raises(CheckpointError, match="no such network checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(tmp_path / "junk.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not an mfnet network checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    assert issubclass(CheckpointError, MfnetError)


def test_init_from_network_checks_the_head_model(tmp_path):
    from mfnet.headmodel import HeadModel
    from synthetic_model import make_synthetic_model

    model = HeadModel(make_synthetic_model(n_shape=4, n_expr=3))
    views = Views(torch.rand(3, 3, S, S), torch.zeros(3, 68, 2), torch.ones(3, 68), np.zeros((3, 2, 3)), list("abc"))
    good = save_checkpoint(tmp_path / "good.pt", MFNet(4, 3, "resnet18", "concat", image_size=S, hidden=32))
    head, vp = init_from_network(good, views, model)
    out = model(head.shape[None].expand(3, -1), head.expression[None].expand(3, -1), head.pose(vp.rotation))
    assert out.vertices.shape[0] == 3 and torch.isfinite(out.vertices).all()
    with pytest.raises(CheckpointError, match="exactly 3 views"):
        init_from_network(good, Views(views.images[:2], views.landmarks[:2], views.landmark_weights[:2],
                                      views.crop_to_original[:2], ["a", "b"]), model)
    bad = save_checkpoint(tmp_path / "bad.pt", MFNet(6, 3, "resnet18", "meanmax", image_size=S, hidden=32))
    with pytest.raises(CheckpointError, match="6 shape / 3 expression"):
        init_from_network(bad, views, model)


# ------------------------------------------------------------------------------- weight init files
def _fake_resnet_state(name: str, seed: int) -> dict:
    torch.manual_seed(seed)
    return getattr(torchvision.models, name)(weights=None).state_dict()


def test_deca_init_from_fabricated_file(tmp_path):
    src = _fake_resnet_state("resnet18", 5)
    e_flame = {f"encoder.{k}": v for k, v in src.items() if not k.startswith("fc.")}
    e_flame["encoder.layer1.0.conv1.weight"] = torch.zeros(3, 3)  # wrong shape: skipped
    e_flame["layers.0.weight"] = torch.zeros(1024, 512)  # DECA regressor: skipped
    e_flame["layers.2.weight"] = torch.zeros(236, 1024)
    torch.save({"E_flame": e_flame, "E_detail": {}, "D_detail": {}}, tmp_path / "deca_model.tar")
    net = _net("concat")
    before = net.encoder.layer1[0].conv1.weight.clone()
    report = load_init(net, "deca", tmp_path / "deca_model.tar")
    target = net.encoder.state_dict()
    assert len(report.loaded) == len(e_flame) - 3 and len(report.skipped) == 3
    assert report.missing == ["layer1.0.conv1.weight"]
    assert torch.equal(target["layer4.1.conv2.weight"], src["layer4.1.conv2.weight"])
    assert torch.equal(target["bn1.running_var"], src["bn1.running_var"])
    assert torch.equal(net.encoder.layer1[0].conv1.weight, before)
    assert "loaded" in str(report)


def test_imagenet_init_and_errors(tmp_path):
    src = _fake_resnet_state("resnet18", 6)
    torch.save({f"module.{k}": v for k, v in src.items()}, tmp_path / "resnet18.pth")
    net = _net("meanmax")
    report = load_init(net, "imagenet", tmp_path / "resnet18.pth")
    assert len(report.loaded) == len(src) - 2 and set(report.skipped) == {"module.fc.weight", "module.fc.bias"}
    assert torch.equal(net.encoder.conv1.weight, src["conv1.weight"])
    # a ResNet-50 file does not fit a ResNet-18: clear error
    torch.save(_fake_resnet_state("resnet50", 0), tmp_path / "r50.pth")
    with pytest.raises(InitWeightsError, match="made for another ResNet"):
        load_init(_net("meanmax"), "imagenet", tmp_path / "r50.pth")
    with pytest.raises(InitWeightsError, match="no such"):
        load_init(net, "deca", tmp_path / "nothing.tar")
    torch.save({"something": {}}, tmp_path / "notdeca.tar")
    with pytest.raises(InitWeightsError, match="E_flame"):
        load_init(net, "deca", tmp_path / "notdeca.tar")
    (tmp_path / "garbage.pth").write_text("hello")
    with pytest.raises(InitWeightsError, match="not a readable"):
        load_init(net, "imagenet", tmp_path / "garbage.pth")
    with pytest.raises(InitWeightsError, match="unknown init"):
        load_init(net, "vggface", tmp_path / "resnet18.pth")
