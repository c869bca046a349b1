"""write_reconstruction: folder layout, round-trips, OpenCV cameras, overlays, report, atomicity."""
from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from mfnet.export import reconstruction as recmod
from mfnet.export.cameras import (apply_affine, estimate_pivot, posed_from_pivot, project_opencv, project_weak,
                                  axis_angle_to_matrix)
from mfnet.export.mesh import read_obj
from mfnet.export.reconstruction import draw_overlay, view_stems, write_reconstruction
from mfnet.utils.io import MANIFEST
from mfnet.export.report import build_report, loss_curve_svg, viewer_mesh
from mfnet.headmodel.landmarks import NOW_LANDMARKS
from mfnet.headmodel.model import HeadModel
from mfnet.render.cameras import WeakPerspectiveCameras
from mfnet.types import HeadParams, Reconstruction, ViewParams
from synthetic_model import make_synthetic_model

REPO = Path(__file__).resolve().parents[1]
CROP = 64


def _similarity(k, angle, tx, ty):
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[k * c, -k * s, tx], [k * s, k * c, ty]])


def make_record(texture: bool = True, light: bool = True, seed: int = 0, inv_distance: float | None = None):
    """A 3-view record built from the synthetic model, with consistent fitted landmarks and photos
    (``inv_distance``: cameras at a finite distance, 1/m)."""
    rng = np.random.default_rng(seed)
    model = HeadModel(make_synthetic_model(n_verts=80), dtype=torch.float64)
    dt = torch.float64
    shape = torch.tensor(rng.normal(size=model.n_shape) * 0.5, dtype=dt)
    expr = torch.tensor(rng.normal(size=model.n_expr) * 0.3, dtype=dt)
    jaw = torch.tensor([0.05, 0.0, 0.0], dtype=dt)
    rot = torch.tensor([[0.0, 0.0, 0.0], [0.05, 0.6, 0.0], [0.15, -0.45, 0.08]], dtype=dt)
    head = HeadParams(shape, expr, jaw)
    n = rot.shape[0]
    with torch.no_grad():
        canon = model(shape[None], expr[None], head.pose(torch.zeros(1, 3, dtype=dt)))
        posed = model(shape.expand(n, -1), expr.expand(n, -1), head.pose(rot))
    scale = torch.tensor([7.0, 6.5, 8.0], dtype=dt)
    trans = torch.tensor([[0.0, 0.01], [0.01, -0.005], [-0.01, 0.0]], dtype=dt)
    lights = torch.tensor(rng.normal(size=(n, 9, 3)), dtype=dt) if light else None
    k = None if inv_distance is None else torch.full((n,), float(inv_distance), dtype=dt)
    views = ViewParams(rot, scale, trans, lights, k)
    lmk_crop = WeakPerspectiveCameras(scale, trans, k).project(posed.landmarks, (CROP, CROP))[..., :2].numpy()
    A = np.stack([_similarity(3.0, 0.0, 100.0, 40.0), _similarity(2.5, 0.2, 150.0, 60.0),
                  _similarity(4.0, -0.3, 120.0, 90.0)])
    fitted = apply_affine(lmk_crop, A)
    detected = fitted + rng.normal(size=fitted.shape) * 1.5
    V = canon.vertices[0].numpy()
    F = model.faces.numpy()
    vt = rng.random((len(V), 2)) if texture else None
    ft = F.copy() if texture else None
    tex = (rng.random((32, 32, 3)) * 255).astype(np.uint8) if texture else None
    rec = Reconstruction(
        model_name="synthetic", head=head, views=views, vertices=V, faces=F,
        names=["photos/front.jpg", "photos/left side.png", "photos/front.JPG"], crop_size=CROP,
        crop_to_original=A, detected_landmarks=detected, fitted_landmarks=fitted,
        landmarks3d=canon.landmarks[0].numpy(), vt=vt, ft=ft, texture=tex,
        history={"pose": list(np.linspace(1, 0.1, 20)), "shape": list(np.geomspace(0.1, 0.01, 30))},
        timings={"detect": 0.5, "pose": 1.25, "shape": 3.0}, warnings=["view 2: low landmark confidence"],
    )
    photos = [np.full((400, 480, 3), 90 + 30 * i, np.uint8) for i in range(n)]
    return rec, posed.vertices.numpy(), photos, canon.joints[0, 0].numpy()


@pytest.fixture(scope="module")
def record():
    return make_record()


def _siblings(path):
    return sorted(p.name for p in path.parent.iterdir() if p.name != path.name)


def test_writes_every_file(tmp_path, record):
    rec, posed, photos, _ = record
    out = write_reconstruction(rec, tmp_path / "out", posed_vertices=posed, photos=photos)
    names = sorted(p.name for p in out.iterdir() if p.name != MANIFEST)
    assert names == sorted(["mesh.obj", "mesh.mtl", "texture.png", "mesh.ply", "mesh.glb", "params.npz",
                            "params.json", "landmarks.json", "report.html", "overlay_front.png",
                            "overlay_left_side.png", "overlay_front_2.png"])
    assert _siblings(out) == []  # no temporary folders left beside it
    assert "map_Kd texture.png" in (out / "mesh.mtl").read_text()
    assert (out / "mesh.obj").read_text().count("mtllib mesh.mtl") == 1
    from PIL import Image
    np.testing.assert_array_equal(np.asarray(Image.open(out / "texture.png")), rec.texture)
    back = read_obj(out / "mesh.obj")
    assert back["vertices"].shape == rec.vertices.shape
    np.testing.assert_allclose(back["vertices"], rec.vertices, atol=1e-6)
    np.testing.assert_array_equal(back["faces"], rec.faces)
    import trimesh
    glb = trimesh.load(out / "mesh.glb", force="mesh", process=False)
    assert glb.visual.kind == "texture"
    assert len(trimesh.load(out / "mesh.ply", process=False).vertices) == len(rec.vertices)


def test_params_roundtrip(tmp_path, record):
    rec, posed, photos, _ = record
    out = write_reconstruction(rec, tmp_path / "out", posed_vertices=posed, report=False)
    with np.load(out / "params.npz") as z:  # no pickles needed
        np.testing.assert_array_equal(z["shape"], rec.head.shape.numpy())
        np.testing.assert_array_equal(z["expression"], rec.head.expression.numpy())
        np.testing.assert_array_equal(z["jaw"], rec.head.jaw.numpy())
        np.testing.assert_array_equal(z["rotation"], rec.views.rotation.numpy())
        np.testing.assert_array_equal(z["scale"], rec.views.scale.numpy())
        np.testing.assert_array_equal(z["trans"], rec.views.trans.numpy())
        np.testing.assert_array_equal(z["light"], rec.views.light.numpy())
        np.testing.assert_array_equal(z["crop_to_original"], rec.crop_to_original)
        assert int(z["crop_size"]) == CROP
        np.testing.assert_array_equal(z["now_landmarks3d"], rec.landmarks3d[list(NOW_LANDMARKS)])
        np.testing.assert_allclose(z["reprojection_error_px"], rec.reprojection_error_px)
        assert z["names"].tolist() == rec.names and str(z["model_name"]) == "synthetic"
        K, R, t = z["K"], z["R"], z["t"]
    doc = json.loads((out / "params.json").read_text())
    assert doc["model"]["name"] == "synthetic" and len(doc["views"]) == 3
    np.testing.assert_array_equal(np.array(doc["views"][1]["opencv"]["K"]), K[1])
    np.testing.assert_array_equal(np.array(doc["views"][2]["opencv"]["t"]), t[2])
    assert doc["head"]["shape"] == rec.head.shape.tolist()
    assert doc["cameras"]["posed_source"] == "the fitted head as posed in each view"
    assert len(doc["now_landmarks3d"]["points"]) == 7
    for Ri in R:  # proper rotations
        np.testing.assert_allclose(Ri @ Ri.T, np.eye(3), atol=1e-9)
        assert np.linalg.det(Ri) == pytest.approx(1.0)
        assert np.allclose(K[0][1:, 0], 0) and K[0][2, 2] == 1


def test_landmarks_json_equals_record(tmp_path, record):
    rec, posed, photos, _ = record
    out = write_reconstruction(rec, tmp_path / "out", posed_vertices=posed, photos=photos, report=False)
    doc = json.loads((out / "landmarks.json").read_text())
    for i, v in enumerate(doc["views"]):
        assert v["image"] == ["front.jpg", "left side.png", "front.JPG"][i]
        np.testing.assert_array_equal(np.array(v["detected"]), rec.detected_landmarks[i])
        np.testing.assert_array_equal(np.array(v["fitted"]), rec.fitted_landmarks[i])
        assert v["mean_error_px"] == pytest.approx(rec.reprojection_error_px[i])
        assert (out / v["overlay"]).exists()


@pytest.mark.parametrize("mode", ["posed", "pivot", "estimated"])
def test_opencv_cameras_match_weak_perspective(tmp_path, record, mode):
    rec, posed, photos, root = record
    kw = {"posed": {"posed_vertices": posed}, "pivot": {"pivot": root}, "estimated": {}}[mode]
    out = write_reconstruction(rec, tmp_path / mode, report=False, formats=("obj",), **kw)
    with np.load(out / "params.npz") as z:
        K, R, t = z["K"], z["R"], z["t"]
    canonical = read_obj(out / "mesh.obj")["vertices"]  # what a user would project
    want = project_weak(posed, rec.views.scale.numpy(), rec.views.trans.numpy(), CROP, rec.crop_to_original)
    got = project_opencv(canonical, K, R, t)
    face = np.ptp(want, axis=1).max(-1)  # face size per view, original pixels
    err = np.linalg.norm(got - want, axis=-1).max(-1)
    assert (err < 0.01 * face).all(), (err, face)
    # OpenCV itself agrees with our pinhole convention
    for i in range(3):
        rvec = cv2.Rodrigues(R[i])[0]
        cvp = cv2.projectPoints(canonical, rvec, t[i], K[i], np.zeros(5))[0][:, 0]
        np.testing.assert_allclose(cvp, got[i], atol=1e-6)


@pytest.mark.parametrize("mode", ["posed", "estimated"])
def test_opencv_cameras_of_a_fit_at_a_finite_distance_are_exact(tmp_path, mode):
    """Cameras fitted at a finite distance (inverse distance 2.5/m: 40 cm) are pinholes: the exported
    OpenCV cameras reproduce their projection of mesh.obj exactly, and params.npz keeps the distance."""
    rec, posed, photos, root = make_record(inv_distance=2.5)
    kw = {"posed_vertices": posed} if mode == "posed" else {}
    out = write_reconstruction(rec, tmp_path / mode, report=False, formats=("obj",), **kw)
    with np.load(out / "params.npz") as z:
        K, R, t, k = z["K"], z["R"], z["t"], z["inv_distance"]
    np.testing.assert_array_equal(k, [2.5, 2.5, 2.5])
    assert "<th>camera distance</th>" in build_report(rec) and "<td>40 cm</td>" in build_report(rec)
    canonical = read_obj(out / "mesh.obj")["vertices"]
    want = project_weak(posed, rec.views.scale.numpy(), rec.views.trans.numpy(), CROP, rec.crop_to_original, k)
    got = project_opencv(canonical, K, R, t)
    face = np.ptp(want, axis=1).max(-1)
    tol = 1e-5 if mode == "posed" else 0.01  # mesh.obj holds 6-7 digits; the estimated pivot is a fit
    assert (np.linalg.norm(got - want, axis=-1).max(-1) < tol * face).all()
    # the perspective is real: the orthographic projection of the same heads differs by more
    ortho = project_weak(posed, rec.views.scale.numpy(), rec.views.trans.numpy(), CROP, rec.crop_to_original)
    assert (np.linalg.norm(ortho - want, axis=-1).max(-1) > 0.05 * face).all()


def test_pivot_conventions(record):
    """Posed heads are the canonical head rotated about the root joint; the estimate finds it."""
    rec, posed, _, root = record
    Rv = axis_angle_to_matrix(rec.views.rotation.numpy())
    np.testing.assert_allclose(posed_from_pivot(rec.vertices, Rv, root), posed, atol=1e-9)
    piv, rms = estimate_pivot(rec.landmarks3d, rec.fitted_landmarks, Rv, rec.views.scale.numpy(),
                              rec.views.trans.numpy(), CROP, rec.crop_to_original, rec.vertices.mean(0))
    assert rms < 0.05
    np.testing.assert_allclose(piv, root, atol=2e-3)


def test_rewriting_an_output_folder_replaces_only_mfnet_files(tmp_path, record):
    rec, posed, photos, _ = record
    out = write_reconstruction(rec, tmp_path / "out", posed_vertices=posed)  # textured: mesh.mtl, texture.png
    assert {"mesh.mtl", "texture.png"} <= {p.name for p in out.iterdir()}
    rec2, *_ = make_record(texture=False, light=False)
    write_reconstruction(rec2, out, posed_vertices=posed)  # an mfnet folder: no --overwrite needed
    names = {p.name for p in out.iterdir()}
    assert "mesh.mtl" not in names and "texture.png" not in names  # stale mfnet files go
    assert "mtllib" not in (out / "mesh.obj").read_text()
    assert {"mesh.obj", "params.npz", "report.html"} <= names
    assert _siblings(out) == [] and not any(p.name.startswith(".mfnet-tmp") for p in out.iterdir())
    with np.load(out / "params.npz") as z:
        assert "light" not in z.files


def test_foreign_files_are_never_lost(tmp_path, record):
    from mfnet.errors import MfnetError

    rec, posed, photos, _ = record
    out = tmp_path / "out"
    (out / "sub").mkdir(parents=True)
    (out / "notes.txt").write_text("mine")
    (out / "sub" / "data.bin").write_bytes(b"123")
    with pytest.raises(MfnetError, match="did not write.*--overwrite"):
        write_reconstruction(rec, out, posed_vertices=posed)
    write_reconstruction(rec, out, posed_vertices=posed, overwrite=True)
    assert (out / "notes.txt").read_text() == "mine" and (out / "sub" / "data.bin").read_bytes() == b"123"
    assert (out / "mesh.obj").exists()
    rec2, *_ = make_record(texture=False, light=False)
    write_reconstruction(rec2, out, posed_vertices=posed, overwrite=True)  # stale mfnet files go, the user's stay
    assert not (out / "texture.png").exists() and (out / "notes.txt").read_text() == "mine"
    # an existing file as the output folder: an error, the file untouched
    f = tmp_path / "afile"
    f.write_text("keep")
    with pytest.raises(MfnetError, match="existing file"):
        write_reconstruction(rec, f, posed_vertices=posed)
    assert f.read_text() == "keep" and sorted(p.name for p in tmp_path.iterdir()) == ["afile", "out"]


def test_failure_leaves_previous_output(tmp_path, record, monkeypatch):
    rec, posed, photos, _ = record
    out = write_reconstruction(rec, tmp_path / "out", posed_vertices=posed)
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(recmod, "write_ply", boom)
    with pytest.raises(OSError, match="disk full"):
        write_reconstruction(rec, out, posed_vertices=posed, photos=photos)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert _siblings(out) == []
    # a failure in a later stage too
    monkeypatch.undo()
    monkeypatch.setattr("mfnet.export.report.build_report", lambda *a, **k: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        write_reconstruction(rec, out, posed_vertices=posed)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert _siblings(out) == []


def test_formats_and_errors(tmp_path, record):
    rec, posed, photos, _ = record
    out = write_reconstruction(rec, tmp_path / "ply", formats=("ply",), report=False)
    assert sorted(p.name for p in out.iterdir() if p.name != MANIFEST) == ["landmarks.json", "mesh.ply", "params.json", "params.npz",
                                                      "texture.png"]
    with pytest.raises(ValueError, match="unknown mesh format"):
        write_reconstruction(rec, tmp_path / "x", formats=("stl",))
    with pytest.raises(ValueError, match="photos"):
        write_reconstruction(rec, tmp_path / "x", photos=photos[:2])
    with pytest.raises(ValueError, match="posed vertices"):
        write_reconstruction(rec, tmp_path / "x", posed_vertices=posed[:, :5])
    assert not (tmp_path / "x").exists() and _siblings(tmp_path / "ply") == []


def test_save_method_and_non_rigid_warning(tmp_path, record):
    rec, posed, photos, _ = record
    bent = posed.copy()
    bent[1, :10] += 0.02
    out = rec.save(tmp_path / "saved", posed_vertices=bent)
    doc = json.loads((out / "params.json").read_text())
    assert doc["cameras"]["posed_source"] == "the fitted head as posed in each view"
    assert "not the canonical mesh rotated" in (out / "report.html").read_text()


def test_overlay_draws_mesh_and_landmarks(record):
    rec, posed, photos, _ = record
    from mfnet.export.reconstruction import export_cameras
    cams = export_cameras(rec, posed)
    pts = project_weak(cams.posed, rec.views.scale.numpy(), rec.views.trans.numpy(), CROP, rec.crop_to_original)
    img = draw_overlay(photos[0], pts[0], cams.posed[0], rec.faces, rec.detected_landmarks[0],
                       rec.fitted_landmarks[0])
    assert img.shape == photos[0].shape and img.dtype == np.uint8
    assert (img[395:, 400:] == photos[0][395:, 400:]).all()  # far corner untouched
    cx, cy = np.round(rec.fitted_landmarks[0][30]).astype(int)
    r, g, b = img[cy, cx].astype(int)
    assert r > 200 and g < 100  # a red fitted landmark
    # a half-size photo with the original size given: the mesh lands at half the coordinates
    small = photos[0][::2, ::2].copy()
    img2 = recmod.draw_overlay(small, recmod._to_photo(pts[0], small.shape[:2], photos[0].shape[:2]), cams.posed[0],
                               rec.faces)
    centre = recmod._to_photo(pts[0].mean(0), small.shape[:2], photos[0].shape[:2])
    x, y = np.round(centre).astype(int)
    assert (img2[y, x] != small[y, x]).any()


def test_report_is_self_contained(tmp_path, record):
    rec, posed, photos, _ = record
    out = write_reconstruction(rec, tmp_path / "out", posed_vertices=posed, photos=photos)
    page = (out / "report.html").read_text()
    assert "<script src" not in page and "http://" not in page and "https://" not in page
    assert page.count("<polyline") == 2 and page.count("data:image/jpeg;base64,") == 3
    assert "data:image/png;base64," in page and "<canvas" in page
    assert "view 2: low landmark confidence" in page and "synthetic" in page
    start = page.index('id="mesh-data">') + len('id="mesh-data">')
    mesh = json.loads(page[start:page.index("</script>", start)])
    assert len(mesh["f"]) == 3 * len(rec.faces) and len(mesh["c"]) == 3 * len(rec.faces)


def test_viewer_mesh_subsamples_and_svg():
    rng = np.random.default_rng(0)
    v = rng.random((5000, 3))
    f = rng.integers(0, 5000, size=(50000, 3))
    m = viewer_mesh(v, f, max_faces=20000)
    nf = len(m["f"]) // 3
    assert nf <= 20000 and max(m["f"]) < len(m["v"]) // 3 and m["c"] is None
    assert np.abs(np.array(m["v"])).max() <= 1.0 + 1e-3
    svg = loss_curve_svg([3.0, 2.0, float("nan"), 1.0], "pose <1>")
    assert "<polyline" in svg and "pose &lt;1&gt;" in svg
    assert "<polyline" in loss_curve_svg([0.0, -1.0, 1.0], "neg")
    assert "no finite" in loss_curve_svg([], "empty")


def test_view_stems_unique_and_safe():
    assert view_stems(["a/IMG 1.jpg", "b/IMG 1.png", "<array 0>", "..."]) == ["IMG_1", "IMG_1_2", "array_0", "view3"]


def test_build_report_without_cameras(record):
    rec, *_ = record
    page = build_report(rec)
    assert "<canvas" in page and "Overlays" not in page


def test_permissions_nan_landmarks_and_model_version(tmp_path, record):
    import dataclasses
    import os
    import stat
    rec, posed, photos, _ = record
    det = rec.detected_landmarks.copy()
    det[1, 5] = np.nan  # an undetected point
    rec2 = dataclasses.replace(rec, detected_landmarks=det)
    out = write_reconstruction(rec2, tmp_path / "out", posed_vertices=posed, photos=photos, model_version="2.0")
    old = os.umask(0o022)
    os.umask(old)
    assert stat.S_IMODE(out.stat().st_mode) == 0o777 & ~old
    assert stat.S_IMODE((out / "mesh.obj").stat().st_mode) == 0o666 & ~old
    doc = json.loads((out / "landmarks.json").read_text())  # strict JSON: NaN became null
    assert doc["views"][1]["detected"][5] == [None, None] and doc["views"][1]["mean_error_px"] is None
    params = json.loads((out / "params.json").read_text())
    assert params["model"] == {"name": "synthetic", "version": "2.0"}
    assert "synthetic (2.0)" in (out / "report.html").read_text()


def test_overlay_agrees_with_renderer_warped_back(record):
    """Pixel conventions: the overlay silhouette equals the crop render mapped by crop_to_original."""
    from mfnet.export.reconstruction import export_cameras
    from mfnet.render import Renderer
    rec, posed, photos, _ = record
    cams = export_cameras(rec, posed)
    pts = project_weak(cams.posed, rec.views.scale.numpy(), rec.views.trans.numpy(), CROP, rec.crop_to_original)
    with torch.no_grad():
        mask = Renderer(CROP).render(torch.as_tensor(posed), torch.as_tensor(rec.faces),
                                     rec.views.cameras()).mask[:, 0].numpy()
    h, w = photos[0].shape[:2]
    for i in range(3):
        index_to_px = np.vstack([rec.crop_to_original[i], [0, 0, 1]]) @ np.array([[1, 0, 0.5], [0, 1, 0.5], [0, 0, 1]])
        ref = cv2.warpAffine(mask[i].astype(np.float32), index_to_px[:2], (w, h)) > 0.5
        ov = draw_overlay(photos[i], pts[i], cams.posed[i], rec.faces)
        got = (ov != photos[i]).any(-1)
        got[:60, :150] = ref[:60, :150] = False  # the legend
        assert (ref & got).sum() / (ref | got).sum() > 0.93
        cy, cx = (np.mean(np.nonzero(b), axis=1) for b in (ref, got))
        assert np.abs(cy - cx).max() < 0.75  # a half-crop-pixel slip would be 1.2-2 px here


def test_errors_in_percent_of_the_eye_distance(tmp_path, record):
    """Each view's landmark error divided by its own outer-eye-corner distance (iBUG 36-45)."""
    import dataclasses

    rec, posed, _, _ = record
    det = rec.detected_landmarks.copy()
    det[:] = 0.0
    det[:, 36], det[:, 45] = (0.0, 0.0), (200.0, 0.0)  # 200 px between the eyes
    fit = det.copy()
    fit[:, :, 0] += 4.0  # every landmark 4 px off
    rec2 = dataclasses.replace(rec, detected_landmarks=det, fitted_landmarks=fit)
    np.testing.assert_allclose(rec2.reprojection_error_iod, 2.0)  # 4 / 200
    out = write_reconstruction(rec2, tmp_path / "o", posed_vertices=posed, report=False)
    lm = json.loads((out / "landmarks.json").read_text())
    assert [round(v["mean_error_iod_percent"], 6) for v in lm["views"]] == [2.0] * 3


def test_overlay_keeps_the_photo_visible():
    """The head is drawn light (30 %) with a thin outline: inside it the photo still dominates."""
    photo = np.zeros((200, 200, 3), np.uint8)
    photo[:, :100] = (0, 0, 255)
    V = np.array([[20.0, 20, 0], [180, 20, 0], [100, 180, 0]])
    out = draw_overlay(photo, V[:, :2], V, np.array([[0, 1, 2]]))
    inside = out[60, 60].astype(int)  # a blue photo pixel under the head
    assert inside[2] > 150 and inside[0] < 120
    assert (out[20, 60] > 200).all() or (out[21, 60] > 200).all()  # white outline on the top edge


@pytest.mark.skipif(__import__("shutil").which("chromium") is None, reason="Debian chromium not installed")
def test_report_page_in_headless_chromium_offline(tmp_path, record):
    """The page works with the network off: its viewer draws every face of the mesh."""
    import importlib.util

    rec, posed, photos, _ = record
    out = write_reconstruction(rec, tmp_path / "o", posed_vertices=posed, photos=photos)
    spec = importlib.util.spec_from_file_location("check_report", REPO / "scripts" / "check_report.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    drawn, total = mod.drawn_faces(out / "report.html")
    assert total == len(rec.faces) and drawn == total
