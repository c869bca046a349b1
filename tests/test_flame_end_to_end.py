"""FLAME end to end (issue 14): the open model written in FLAME's own file formats (tests/flame_standin.py),
installed with `mfnet models add`, reconstructed with `mfnet reconstruct` from James's two real photos and
from synthetic renders, and the outputs read back as another FLAME tool would.

Two stand-ins: the full open head (15,156 vertices) and a face-and-head cut resampled to FLAME's 5,023
vertices (tests/flame_resample.py). They are built once per test session (shared by the xdist workers,
under a file lock). Skipped without ../shared (the ICT-FaceKit and the real-scan data).
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest
from filelock import FileLock

import fixtures_flame as ff
import flame_standin as fs
from mfnet.cli.main import main

pytestmark = pytest.mark.slow


@contextlib.contextmanager
def _home(path: Path):
    old = os.environ.get("MFNET_HOME")
    os.environ["MFNET_HOME"] = str(path)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("MFNET_HOME", None)
        else:
            os.environ["MFNET_HOME"] = old


def flame_conventions(data, dyn_faces, dyn_bary):
    """``data`` as a FLAME file can carry it: expression codes without bounds (FLAME has no way to say
    'blendshape activations in [0, 1]'), the stand-in's dynamic contour, no calibrated embedding yet."""
    meta = {k: v for k, v in data.meta.items() if k != "expression_coefficients"}
    meta.update(source="FLAME conventions (ICT-FaceKit arrays)", name="ict-flame-conventions")
    return replace(data, dyn_lmk_faces_idx=dyn_faces, dyn_lmk_bary_coords=dyn_bary, meta=meta, embeddings={})


def _build(root: Path, ict_dir: Path) -> None:
    from flame_resample import resample_head

    from mfnet.headmodel.data import HeadModelData
    from mfnet.headmodel.ict import convert_ict
    from mfnet.calibrate.install import try_calibrate

    native = convert_ict(ict_dir)
    fs.write_flame_folder(native, root / "full")
    cut = resample_head(convert_ict(ict_dir, regions=("face", "head_neck", "eyeballs")), 5023, "ict-5k")
    fs.write_flame_folder(cut, root / "5k")
    log = []
    with _home(root / "home"):
        for name in ("full", "5k"):
            assert main(["models", "add", f"flame-{name}", str(root / name)]) == 0
        full = HeadModelData.load(root / "home" / "models" / "flame-full.npz")
        ref = flame_conventions(native, full.dyn_lmk_faces_idx, full.dyn_lmk_bary_coords)
        assert try_calibrate(ref, "mediapipe")
        ref.save(root / "ict-flame-conventions.npz")
        log.append("built")
    (root / "done").write_text("\n".join(log))


@dataclass
class Standin:
    root: Path

    def folder(self, which: str) -> Path:
        return self.root / which

    def model(self, which: str) -> Path:
        return self.root / "home" / "models" / f"flame-{which}.npz"

    @property
    def reference(self) -> Path:
        return self.root / "ict-flame-conventions.npz"


@pytest.fixture(scope="session")
def standin(tmp_path_factory, ict_dir) -> Standin:
    base = tmp_path_factory.getbasetemp()
    root = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "flame-standin"
    with FileLock(str(root) + ".lock"):
        if not (root / "done").exists():
            _build(root, ict_dir)
    return Standin(root)


@pytest.fixture(scope="session")
def james_photos(standin):
    from mfnet.errors import MfnetError
    from mfnet.evaluate.realscans import james_views, load_scan

    try:
        return james_views()[0], load_scan("james")
    except MfnetError as exc:
        pytest.skip(str(exc))


def _reconstruct(photos, model: Path, out: Path, *extra) -> Path:
    args = ["reconstruct", *map(str, photos), "--model", str(model), "--out", str(out), "--threads", "1", "--quiet"]
    assert main([*args, *extra]) == 0
    return out


def _obj_vertices(path: Path) -> np.ndarray:
    from mfnet.headmodel.objio import read_obj_vertices

    return read_obj_vertices(path)


# ----------------------------------------------------------------------------- the files
def test_standin_files_are_laid_out_as_flame(standin):
    from mfnet.headmodel.flame import load_flame_pickle, load_landmark_embedding

    raw = load_flame_pickle(standin.folder("5k") / "generic_model.pkl")
    assert {"chumpy.ch.Ch", "scipy.sparse.csc.csc_matrix", "numpy.core.multiarray._reconstruct",
            "__builtin__.set"} <= set(raw["_globals"])  # Python 2 names, as FLAME 2020 pickles hold
    assert raw["v_template"].shape == (5023, 3) and raw["shapedirs"].shape == (5023, 3, 400)
    assert raw["posedirs"].shape == (5023, 3, 36) and raw["J_regressor"].shape == (5, 5023)
    assert raw["kintree_table"][0, 1:].tolist() == [0, 1, 1, 1] and raw["bs_style"] == "lbs"
    head = (standin.folder("5k") / "generic_model.pkl").read_bytes()[:2]
    assert head == b"\x80\x02"  # protocol 2, as Python 2 wrote FLAME 2020
    lm = load_landmark_embedding(standin.folder("5k") / "landmark_embedding.npy")
    assert lm.source.startswith("DECA") and lm.dyn_faces_idx.shape == (79, 17)
    np.testing.assert_array_equal(lm.dyn_faces_idx[0], lm.faces_idx[:17])  # DECA: full[:17] = frontal row


def test_models_add_gives_the_native_model(standin):
    """The FLAME-format copy of the full model, installed by `mfnet models add`, holds the native arrays."""
    from mfnet.headmodel.data import HeadModelData

    flame, ref = HeadModelData.load(standin.model("full")), HeadModelData.load(standin.reference)
    for key in ("v_template", "faces", "shapedirs", "exprdirs", "J_regressor", "weights", "parents",
                "lmk_faces_idx", "lmk_bary_coords", "dyn_lmk_faces_idx", "dyn_lmk_bary_coords", "ft"):
        np.testing.assert_array_equal(getattr(flame, key), getattr(ref, key), err_msg=key)
    np.testing.assert_allclose(flame.vt, ref.vt, atol=1e-6)  # head_template.obj keeps 6 decimals
    for name in ("face", "lips", "eyeballs", "eyes", "eye_left", "eye_right", "nose", "neck"):
        np.testing.assert_array_equal(flame.masks[name], ref.masks[name], err_msg=name)
    m = flame.meta
    assert m["source"] == "FLAME" and m["variant"] == "FLAME 2020" and flame.posedirs is None
    assert m["file_components"] == {"shape": 300, "expression": 100}
    assert m["zero_directions_dropped"] == {"shape": 200, "expression": 43}
    # landmark calibration ran on install (FLAME files carry no texture and no calibrated landmarks)
    assert "mediapipe" in flame.embeddings
    for a, b in zip(flame.embeddings["mediapipe"], ref.embeddings["mediapipe"]):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("variant", ["2023", "open"])
def test_flame2023_layouts_build_the_same_model(standin, tmp_path, variant):
    from mfnet.headmodel.data import HeadModelData
    from mfnet.headmodel.flame import build_flame_from_folder, load_flame_pickle

    ref = HeadModelData.load(standin.model("5k"))
    folder = tmp_path / variant
    folder.mkdir()
    raw_pkl = standin.folder("5k") / "generic_model.pkl"
    arrays = {k: v for k, v in load_flame_pickle(raw_pkl).items() if not k.startswith("_")}
    ff.write_flame_pickle(folder / fs.MODEL_FILES[variant], arrays, variant="open" if variant == "open" else "2020")
    for f in ("landmark_embedding.npy", "FLAME_masks.pkl", "head_template.obj"):
        (folder / f).symlink_to(standin.folder("5k") / f)
    data = build_flame_from_folder(folder)
    assert data.meta["variant"] == {"2023": "FLAME 2023", "open": "FLAME 2023 Open"}[variant]
    for key in ("v_template", "shapedirs", "exprdirs", "J_regressor", "weights", "lmk_faces_idx", "dyn_lmk_faces_idx"):
        np.testing.assert_array_equal(getattr(data, key), getattr(ref, key), err_msg=key)


def test_dynamic_contour_follows_the_head_yaw(standin):
    """The jaw-line landmarks of the side turning away slide to the head's outline (as a 2-D detector
    places them); frontal, they are the static ones."""
    import torch

    from mfnet.headmodel.lbs import axis_angle_to_matrix
    from mfnet.headmodel.registry import load_head_model

    model = load_head_model(standin.model("5k"))
    model.use_landmark_embedding("static")
    for yaw_deg in (0.0, 30.0, -30.0):
        pose = torch.zeros(1, 15)
        pose[0, 1] = np.radians(yaw_deg)
        dyn = model(pose=pose, dynamic_contour=True).landmarks[0]
        static = model(pose=pose).landmarks[0]
        if yaw_deg == 0:
            torch.testing.assert_close(dyn, static)
            continue
        side = float(np.sign(yaw_deg))
        away = [i for i in range(17) if np.sign(float(model.template_landmarks()[i, 0])) == side and i != 8]
        R = axis_angle_to_matrix(pose[:, :3])[0]
        assert R[0, 2] * side > 0  # the turned-away side moves back, towards the outline
        # in the image (x), the dynamic points lie further out than the static ones: on the outline
        assert (side * (dyn[away, 0] - static[away, 0]) > 0.002).sum() >= len(away) // 2, (dyn[away], static[away])


# ----------------------------------------------------------------------------- mistakes
def _small_folder(tmp_path, name="generic_model.pkl", **kw) -> Path:
    arrays = ff.make_flame_arrays(V=60, F=80)
    ff.write_flame_pickle(tmp_path / name, arrays, **kw)
    return tmp_path / name


@pytest.mark.parametrize("case", ["no_embedding", "no_jaw", "wrong_mesh_embedding", "both_genders"])
def test_real_world_mistakes_give_one_line(standin, tmp_path, capsys, case):
    folder = tmp_path / case
    folder.mkdir()
    if case == "no_embedding":
        (folder / "generic_model.pkl").symlink_to(standin.folder("5k") / "generic_model.pkl")
        needle = "generic_model.pkl: a landmark embedding is required"
    elif case == "no_jaw":
        (folder / "flame2023_no_jaw.pkl").symlink_to(standin.folder("5k") / "generic_model.pkl")
        (folder / "landmark_embedding.npy").symlink_to(standin.folder("5k") / "landmark_embedding.npy")
        needle = "without jaw rotation"
    elif case == "wrong_mesh_embedding":  # the full head's embedding beside the 5k model
        (folder / "generic_model.pkl").symlink_to(standin.folder("5k") / "generic_model.pkl")
        (folder / "landmark_embedding.npy").symlink_to(standin.folder("full") / "landmark_embedding.npy")
        needle = "belongs to another mesh"
    else:
        for n in ("male_model.pkl", "female_model.pkl"):
            _small_folder(folder, n)
        needle = "pass the one you want"
    assert main(["models", "add", "bad", str(folder)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and needle in err and err.count("\n") == 1, err
    assert not (Path(os.environ["MFNET_HOME"]) / "models" / "bad.npz").exists()


def test_gendered_model_installs_with_a_warning(tmp_path, caplog):
    from mfnet.headmodel.data import HeadModelData

    folder = tmp_path / "flame2017"
    folder.mkdir()
    female = _small_folder(folder, "female_model.pkl")
    _small_folder(folder, "male_model.pkl")
    emb = ff.make_embedding(80)
    ff.write_deca_landmark_embedding(folder / "landmark_embedding.npy", emb)
    assert main(["models", "add", "flame-female", str(female)]) == 0  # the file named: no ambiguity
    data = HeadModelData.load(Path(os.environ["MFNET_HOME"]) / "models" / "flame-female.npz")
    assert data.meta["gender"] == "female"
    assert "not those of generic_model.pkl" in caplog.text


# ----------------------------------------------------------------------------- reconstructions
def test_james_flame_copy_gives_the_native_geometry(standin, james_photos, tmp_path):
    """`mfnet reconstruct` on James's two real photos through the FLAME loader path gives the geometry of the
    native open model (with the conventions a FLAME file can carry, see :func:`flame_conventions`)."""
    photos, _ = james_photos
    # the same silhouette region for both: FLAME's masks have no narrow face (the native model's default region)
    same = ("--set", "silhouette.region=face")
    a = _reconstruct(photos, standin.model("full"), tmp_path / "flame", *same)
    b = _reconstruct(photos, standin.reference, tmp_path / "native", *same)
    d = np.linalg.norm(_obj_vertices(a / "mesh.obj") - _obj_vertices(b / "mesh.obj"), axis=1) * 1000
    print(f"\nJames, FLAME-format copy vs native arrays: median {np.median(d):.4f} mm, max {d.max():.4f} mm")
    assert np.median(d) <= 0.05, np.median(d)
    assert (a / "flame_params.npz").exists() and not (b / "flame_params.npz").exists()


def _flame_numpy(raw: dict, shape, expr, pose15, translation) -> np.ndarray:
    """FLAME written from its definition (smplx's order of operations), numpy only: the vertices of a
    model pickle's raw arrays for one set of codes."""
    from scipy.spatial.transform import Rotation

    sd = raw["shapedirs"]
    v = raw["v_template"] + sd[:, :, :len(shape)] @ shape + sd[:, :, 300:300 + len(expr)] @ expr
    jr = raw["J_regressor"]
    J = np.asarray(jr @ v)
    Rs = Rotation.from_rotvec(np.asarray(pose15).reshape(5, 3)).as_matrix()
    v = v + (raw["posedirs"].reshape(-1, 36) @ (Rs[1:] - np.eye(3)).reshape(-1)).reshape(-1, 3)
    parents = [-1, 0, 1, 1, 1]
    G = np.zeros((5, 4, 4))
    for j in range(5):
        local = np.eye(4)
        local[:3, :3], local[:3, 3] = Rs[j], J[j] - (J[parents[j]] if j else 0)
        G[j] = local if j == 0 else G[parents[j]] @ local
    G[:, :3, 3] -= np.einsum("jab,jb->ja", G[:, :3, :3], J)
    T = np.einsum("vj,jab->vab", raw["weights"], G)
    return np.einsum("vab,vb->va", T[:, :3, :3], v) + T[:, :3, 3] + translation


def _read_flame_params(path: Path) -> dict:
    """A reader written from the README's description of flame_params.npz."""
    with np.load(path) as z:
        p = {k: z[k] for k in z.files}
    assert p["shape"].ndim == 1 and p["expr"].shape[0] == 1 and p["eyes_pose"].shape == (1, 6)
    assert p["static_offset"].shape == (1, len(p["static_offset"][0]), 3) and not p["static_offset"].any()
    pose = np.concatenate([p["rotation"][0], p["neck_pose"][0], p["jaw_pose"][0], p["eyes_pose"][0]])
    return {"shape": p["shape"].astype(np.float64), "expr": p["expr"][0].astype(np.float64), "pose": pose,
            "translation": p["translation"][0], "K": p["K"], "R": p["R"], "t": p["t"], "size": p["image_size"]}


def test_james_5k_model_outputs_for_flame_tools(standin, james_photos, tmp_path):
    """The FLAME-size stand-in on James: a sane NoW error, and outputs other FLAME tools read:
    flame_params.npz (codes reproduce mesh.obj through an independent FLAME; cameras project the fitted
    landmarks), the texture in FLAME's UV layout, the neutral head."""
    import json

    import trimesh

    from mfnet.evaluate.realscans import mean_head, score_mesh
    from mfnet.headmodel.flame import load_flame_pickle, load_flame_uvs

    photos, scan = james_photos
    out = _reconstruct(photos, standin.model("5k"), tmp_path / "james-5k", "--neutral")
    params = np.load(out / "params.npz")
    faces = np.asarray(trimesh.load(out / "mesh.ply", process=False).faces)
    verts = _obj_vertices(out / "mesh.obj")
    fitted = score_mesh(verts, faces, params["landmarks3d"], scan)["median"]
    mv, mf, ml = mean_head(str(standin.model("5k")))
    base = score_mesh(mv, mf, ml, scan)["median"]
    print(f"\nJames, FLAME-size (5,023 vertices) stand-in, default preset: NoW median {fitted:.3f} mm "
          f"(its mean head {base:.3f} mm)")
    assert fitted < base and fitted < 1.3, (fitted, base)

    fp = _read_flame_params(out / "flame_params.npz")
    assert fp["shape"].shape == (300,) and fp["expr"].shape == (100,) and fp["pose"].shape == (15,)
    raw = load_flame_pickle(standin.folder("5k") / "generic_model.pkl")
    again = _flame_numpy(raw, fp["shape"], fp["expr"], fp["pose"], fp["translation"])
    assert np.abs(again - verts).max() < 2e-5  # metres; float32 codes
    lmk = json.loads((out / "landmarks.json").read_text())["views"]
    for i, view in enumerate(lmk):
        X = params["landmarks3d"] @ fp["R"][i].T + fp["t"][i]
        x = X @ fp["K"][i].T
        px = x[:, :2] / x[:, 2:]
        fitted2d = np.asarray(view["fitted"])
        face_px = np.ptp(fitted2d, axis=0).max()
        assert np.abs(px - fitted2d).max() < 0.02 * face_px
        assert fp["size"][i].tolist() == [1200, 1600]  # width, height of each photo half

    vt, _ = load_flame_uvs(standin.folder("5k") / "head_template.obj")
    obj_vt = np.array([line.split()[1:3] for line in (out / "mesh.obj").read_text().splitlines()
                       if line.startswith("vt ")], np.float64)
    assert obj_vt.shape == vt.shape and np.abs(obj_vt - vt).max() < 1e-5  # FLAME's UV layout
    assert (out / "texture.png").exists() and (out / "neutral.obj").exists()
    assert _obj_vertices(out / "neutral.obj").shape == verts.shape


def test_synthetic_renders_through_the_flame_path(standin, tmp_path):
    """Renders of a random head of the FLAME-size stand-in, reconstructed by `mfnet reconstruct` (default
    preset: the landmarks-only `fast` fit of detected landmarks is no better than the mean head on such
    renders, for the native model too): the shape comes much closer to the truth than the mean head."""
    import torch
    from PIL import Image

    from mfnet.data.synthetic import render_subject, to_uint8
    from mfnet.evaluate.synthetic import face_region, vertex_error_mm
    from mfnet.headmodel.registry import load_head_model

    model = load_head_model(standin.model("5k"))
    subj = render_subject(model, (-30.0, 0.0, 30.0), image_size=320, seed=3, expression_scale=0.3)
    photos = []
    for i, img in enumerate(to_uint8(subj.images)):
        photos.append(tmp_path / f"view{i}.png")
        Image.fromarray(img).save(photos[-1])
    out = _reconstruct(photos, standin.model("5k"), tmp_path / "synth", "--no-report")
    with torch.no_grad():
        gt = model(subj.shape[None], subj.expression[None], subj.pose[None])
        mean = model()
    g, gl = gt.vertices[0].numpy(), gt.landmarks[0].numpy()
    face = face_region(model, g, gl)
    rec = vertex_error_mm(_obj_vertices(out / "mesh.obj"), g, np.load(out / "params.npz")["landmarks3d"], gl, face)
    base = vertex_error_mm(mean.vertices[0].numpy(), g, mean.landmarks[0].numpy(), gl, face)
    print(f"\nsynthetic FLAME-size head: {rec.mean_mm:.2f} mm (mean head {base.mean_mm:.2f} mm)")
    assert rec.mean_mm < 0.75 * base.mean_mm, (rec.mean_mm, base.mean_mm)


def test_single_photo_through_the_flame_path_uses_the_silhouette(standin, james_photos):
    """FLAME's masks have no narrow face: a single photo's silhouette term falls back to FLAME's 'face'."""
    import mfnet
    from mfnet.fit.config import get_config
    from mfnet.fit.stages import silhouette_region
    from mfnet.headmodel.registry import load_head_model

    photos, _ = james_photos
    model = load_head_model(str(standin.model("full")))
    assert "narrow_face" not in model.masks and silhouette_region(get_config("default"), model) == "face"
    rec = mfnet.reconstruct(photos[:1], model=model, preset="fast", progress=False)
    assert rec.person_outlines is not None and sum(len(c) for c in rec.person_outlines[0]) > 50
