"""Calibrated rigs (--cameras): perspective renders with known cameras; the fitted head must land
where it really is in the rig's world frame."""
from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from mfnet.cli.main import main
from mfnet.data.synthetic import frontal_light, skin_albedo
from mfnet.errors import MfnetError
from mfnet.render import PerspectiveCameras, Renderer, intrinsics_from_fov, look_at_opencv


@pytest.fixture(scope="module")
def rig(ict_dir, tmp_path_factory):
    import os

    os.environ["MFNET_ICT_DIR"] = str(ict_dir)
    from mfnet.calibrate.install import load_model

    model = load_model()
    size = 512
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        out = model(torch.randn(1, model.n_shape, generator=g) * 0.7)
        center = out.landmarks[0, 27:36].mean(0)  # aim the cameras at the nose
        Rs, ts = [], []
        for yaw in (-35.0, 0.0, 35.0):
            eye = center + 0.55 * torch.tensor([math.sin(math.radians(yaw)), 0.0, math.cos(math.radians(yaw))])
            R, t = look_at_opencv(eye, center)
            Rs.append(R.reshape(3, 3))
            ts.append(t.reshape(3))
        R, t = torch.stack(Rs), torch.stack(ts)
        K = intrinsics_from_fov(22.0, (size, size), batch=3)
        cams = PerspectiveCameras(K, R, t)
        albedo = skin_albedo(model, g)
        img = Renderer(size).render(out.vertices.expand(3, -1, -1), model.faces, cams,
                                    vertex_colors=albedo.expand(3, -1, -1), sh_coeffs=frontal_light(n=3),
                                    background=torch.full((3, 3, size, size), 0.5)).image
    d = tmp_path_factory.mktemp("rig")
    names = []
    for i, im in enumerate(img):
        p = d / f"cam{i}.png"
        Image.fromarray((im.clamp(0, 1).permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)).save(p)
        names.append(p)
    K_cv = K.numpy().copy()
    K_cv[:, :2, 2] -= 0.5  # renderer pixel centres (+0.5) -> OpenCV (integers)
    doc = {"units": "mm", "cameras": [{"image": p.name, "K": K_cv[i].tolist(), "R": R[i].tolist(),
                                       "t": (t[i] * 1000).tolist()} for i, p in enumerate(names)]}
    (d / "cams.json").write_text(json.dumps(doc))
    return model, names, d / "cams.json", out


def test_calibrated_rig_places_the_head(rig, tmp_path):
    import mfnet

    model, names, cams_json, gt = rig
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rec = mfnet.reconstruct(names, model=model, preset="fast", progress=False, cameras=cams_json)
    c = rec.calibrated_cameras
    # the true head sits at the world origin, unrotated
    assert np.linalg.norm(c["head_translation"]) < 0.015, c["head_translation"]
    assert np.degrees(np.linalg.norm(c["head_rotation"])) < 8.0, c["head_rotation"]
    face = float(np.ptp(rec.detected_landmarks[0], axis=0).max())
    assert np.median(rec.reprojection_error_px) < 0.05 * face  # (the -35° view detects worse)
    rec.save(tmp_path / "out")
    saved = json.loads((tmp_path / "out" / "params.json").read_text())["calibrated_rig"]
    np.testing.assert_allclose(np.array(saved["t"]), c["t"], atol=1e-9)


def test_camera_file_errors(rig, tmp_path, capsys):
    model, names, cams_json, _ = rig
    bad = tmp_path / "bad.json"
    bad.write_text('{"cameras": [{"K": 1}]}')
    from mfnet.fit.calibrated import load_cameras_json

    with pytest.raises(MfnetError, match="not a valid cameras file"):
        load_cameras_json(bad, [str(n) for n in names])
    two = json.loads(cams_json.read_text())
    for cam in two["cameras"]:
        cam["image"] = ""
    two["cameras"] = two["cameras"][:2]
    (tmp_path / "two.json").write_text(json.dumps(two))
    with pytest.raises(MfnetError, match="2 cameras for 3 photos"):
        load_cameras_json(tmp_path / "two.json", [str(n) for n in names])
    assert main(["reconstruct", *map(str, names), "--cameras", str(tmp_path / "missing.json"), "--quiet",
                 "--out", str(tmp_path / "o")]) == 2
    assert "no such cameras file" in capsys.readouterr().err
