"""FLAME file loaders against faithful fixtures (see tests/fixtures_flame.py)."""
from __future__ import annotations

import os
import pickle
import sys
import time
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
import fixtures_flame as ff  # noqa: E402

from mfnet.headmodel.data import HeadModelData, HeadModelError  # noqa: E402
from mfnet.headmodel.flame import (  # noqa: E402
    LandmarkEmbedding, build_flame_from_folder, build_flame_model, find_flame_files, load_flame_masks,
    load_flame_pickle, load_flame_uvs, load_landmark_embedding, load_mediapipe_embedding)
from mfnet.headmodel.safe_pickle import UnsafePickleError, safe_load_npy, safe_loads  # noqa: E402

V, F = 40, 60


@pytest.fixture(scope="module")
def arrays():
    return ff.make_flame_arrays(V, F)


@pytest.fixture(scope="module")
def emb():
    return ff.make_embedding(F)


@pytest.fixture()
def deca_dir(tmp_path, arrays, emb):
    """A DECA-like data/ folder."""
    ff.write_flame_pickle(tmp_path / "generic_model.pkl", arrays, protocol=2)
    ff.write_deca_landmark_embedding(tmp_path / "landmark_embedding.npy", emb)
    ff.write_flame_masks(tmp_path / "FLAME_masks.pkl", V)
    vt, ft = ff.make_uvs(arrays["f"])
    ff.write_head_template_obj(tmp_path / "head_template.obj", arrays["v_template"], arrays["f"], vt, ft)
    ff.write_mediapipe_embedding(tmp_path / "mediapipe_landmark_embedding.npz", F)
    return tmp_path


def _assert_raw_equal(raw, arrays):
    for key in ("v_template", "f", "shapedirs", "posedirs", "weights", "kintree_table", "J"):
        np.testing.assert_array_equal(raw[key], arrays[key], err_msg=key)
        assert raw[key].dtype == arrays[key].dtype, key
    assert (raw["J_regressor"] != arrays["J_regressor"]).nnz == 0
    assert raw["J_regressor"].format == "csc"
    assert raw["bs_style"] == "lbs" and raw["bs_type"] == "lrotmin"


# ------------------------------------------------------------ chumpy pickles
@pytest.mark.parametrize("protocol", [0, 1, 2])
def test_chumpy_pickle_loads_without_chumpy(tmp_path, arrays, protocol):
    path = ff.write_flame_pickle(tmp_path / "generic_model.pkl", arrays, protocol=protocol)
    blob = path.read_bytes()
    assert b"chumpy.ch\nCh\n" in blob and b"numpy.core.multiarray\n_reconstruct\n" in blob
    assert b"scipy.sparse.csc\ncsc_matrix\n" in blob and b"__builtin__\nset\n" in blob
    assert (b"copy_reg\n_reconstructor\n" in blob) == (protocol < 2)
    assert "chumpy" not in sys.modules
    raw = load_flame_pickle(path)
    _assert_raw_equal(raw, arrays)
    assert type(raw["shapedirs"]) is np.ndarray
    assert "chumpy.ch.Ch" in raw["_globals"]
    assert "chumpy" not in sys.modules


def test_select_standin_and_py3_protocol2(tmp_path):
    a = np.arange(24.0).reshape(2, 3, 4)
    with ff.fake_chumpy() as (Ch, Select):
        sel = Select()
        sel.__dict__.update({"a": ff.make_ch(Ch, a), "idxs": np.array([5, 1, 7, 0]),
                             "preferred_shape": (2, 2), "_dirty_vars": set()})
        blob = ff.py2_dumps({"sel": sel}, 2)
    out = safe_loads(blob)["sel"]
    np.testing.assert_array_equal(out, a.ravel()[[5, 1, 7, 0]].reshape(2, 2))
    # Python 3 pickles bytes at protocol 2 via _codecs.encode: accepted (latin1 only)
    masks = {"face": np.arange(5)}
    (tmp_path / "m.pkl").write_bytes(pickle.dumps(masks, protocol=2))
    np.testing.assert_array_equal(load_flame_masks(tmp_path / "m.pkl")["face"], np.arange(5))


# ----------------------------------------------------------------- security
@pytest.mark.parametrize("module,name", [("os", "system"), ("posix", "system"), ("builtins", "eval"),
                                         ("__builtin__", "getattr"), ("subprocess", "Popen"),
                                         ("numpy", "load"), ("chumpy.ch_ops", "add"),
                                         ("torch", "LongStorage"), ("torch", "load")])
def test_code_execution_refused(tmp_path, module, name):
    marker = tmp_path / "pwned"
    path = tmp_path / "generic_model.pkl"
    path.write_bytes(ff.evil_pickle(marker, module, name))
    with pytest.raises(UnsafePickleError) as ei:
        load_flame_pickle(path)
    msg = str(ei.value)
    assert f"refusing to load global {module}.{name}" in msg and str(path) in msg
    assert "must not execute code" in msg
    assert isinstance(ei.value, HeadModelError)
    assert not marker.exists()


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_reduce_payload_refused(tmp_path, protocol):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    path = tmp_path / "landmark_embedding.npy"
    arr = np.empty((), dtype=object)
    arr[()] = {"static_lmk_faces_idx": Evil()}
    np.save(path, arr, allow_pickle=True)
    with pytest.raises(UnsafePickleError, match="refusing to load global"):
        load_landmark_embedding(path)
    (tmp_path / "x.pkl").write_bytes(pickle.dumps({"v_template": Evil()}, protocol=protocol))
    with pytest.raises(UnsafePickleError):
        load_flame_pickle(tmp_path / "x.pkl")
    assert not marker.exists()


def test_restricted_helpers_cannot_be_abused():
    # copy_reg._reconstructor only builds stand-ins from object
    bad = b"ccopy_reg\n_reconstructor\n(cnumpy\nndarray\nc__builtin__\nobject\nNtR."
    with pytest.raises(UnsafePickleError):
        safe_loads(bad)
    # BUILD cannot patch an allowed callable (dict state or slot state)
    for state in (b"}U\x03_fnK\x01s", b"N}U\x03_fnK\x01s\x86"):
        with pytest.raises(HeadModelError):
            safe_loads(b"\x80\x02ccopy_reg\n_reconstructor\n" + state + b"b.")
    with ff.fake_chumpy() as (Ch, _):
        blob = ff.py2_dumps({"x": ff.make_ch(Ch, np.ones(3))}, 0)
    np.testing.assert_array_equal(safe_loads(blob)["x"], np.ones(3))  # still works after the attempts
    # persistent ids (torch storages) are only accepted inside torch's own stream
    with pytest.raises(UnsafePickleError, match="persistent id"):
        safe_loads(b"\x80\x02U\x03abcQ.")


def test_legacy_torch_tensors():
    data = np.arange(12, dtype=np.float64) * 0.5
    out = safe_loads(ff.legacy_torch_tensor_pickle(data, "DoubleStorage", (3, 2), (1, 3), offset=1))["t"]
    np.testing.assert_array_equal(out, np.lib.stride_tricks.as_strided(data[1:], (3, 2), (8, 24)))
    ints = np.arange(10, dtype=np.int64)  # pre-1.0 storage view: elements 2..6
    out = safe_loads(ff.legacy_torch_tensor_pickle(ints, "LongStorage", (5,), (1,), view=("v", 2, 5)))["t"]
    np.testing.assert_array_equal(out, ints[2:7])
    with pytest.raises(HeadModelError, match="past the end"):
        safe_loads(ff.legacy_torch_tensor_pickle(ints, "LongStorage", (4, 4), (4, 1)))
    with pytest.raises(HeadModelError, match="elements"):
        safe_loads(ff.legacy_torch_tensor_pickle(ints, "LongStorage", (2,), (1,), count=11))
    with pytest.raises(UnsafePickleError, match="torch.BFloat16Storage"):  # no numpy dtype: refused
        safe_loads(ff.legacy_torch_tensor_pickle(ints, "BFloat16Storage", (2,), (1,)))


# ------------------------------------------------------------- bad files
def test_bad_model_files(tmp_path, arrays):
    good = ff.write_flame_pickle(tmp_path / "generic_model.pkl", arrays).read_bytes()
    cases = {
        "truncated.pkl": (good[: len(good) // 2], "truncated"),
        "text.pkl": (b"this is not a pickle at all\n", "not a readable pickle"),
        "empty.pkl": (b"", "truncated"),
        "list.pkl": (ff.py2_dumps([1, 2]), "not a FLAME model dict"),
    }
    for fname, (blob, what) in cases.items():
        (tmp_path / fname).write_bytes(blob)
        with pytest.raises(HeadModelError) as ei:
            load_flame_pickle(tmp_path / fname)
        msg = str(ei.value)
        assert fname in msg and what in msg and "flame.is.tue.mpg.de" in msg, msg
    ff.write_flame_pickle(tmp_path / "nokey.pkl", arrays, drop=("posedirs",))
    with pytest.raises(HeadModelError, match=r"nokey\.pkl: missing key\(s\) posedirs.*flame2023_Open"):
        load_flame_pickle(tmp_path / "nokey.pkl")
    ff.write_flame_pickle(tmp_path / "shape.pkl", arrays, override={"posedirs": np.zeros((V, 3, 35))})
    with pytest.raises(HeadModelError, match=r"shape\.pkl: wrong shape: posedirs must be \(V=40, 3, 36\)"):
        load_flame_pickle(tmp_path / "shape.pkl")
    ff.write_flame_pickle(tmp_path / "faces.pkl", arrays, override={"f": arrays["f"] + V})
    with pytest.raises(HeadModelError, match=r"faces\.pkl: face indices outside"):
        load_flame_pickle(tmp_path / "faces.pkl")
    with pytest.raises(HeadModelError, match="nothere.pkl: no such file"):
        load_flame_pickle(tmp_path / "nothere.pkl")


# -------------------------------------------------------------------- build
def test_build_validates_and_roundtrips(deca_dir, arrays, emb, tmp_path):
    data = build_flame_model(deca_dir / "generic_model.pkl",
                             landmark_embedding=deca_dir / "landmark_embedding.npy",
                             mediapipe_embedding=deca_dir / "mediapipe_landmark_embedding.npz",
                             masks=deca_dir / "FLAME_masks.pkl", uvs=deca_dir / "head_template.obj")
    assert data.shapedirs.shape == (V, 3, 300) and data.exprdirs.shape == (V, 3, 100)
    np.testing.assert_allclose(data.shapedirs, arrays["shapedirs"][:, :, :300].astype(np.float32))
    np.testing.assert_allclose(data.exprdirs, arrays["shapedirs"][:, :, 300:].astype(np.float32))
    assert data.posedirs.shape == (36, 3 * V)
    v, k, p = 7, 2, 30
    assert data.posedirs[p, 3 * v + k] == np.float32(arrays["posedirs"][v, k, p])
    np.testing.assert_allclose(data.J_regressor, arrays["J_regressor"].toarray().astype(np.float32))
    assert data.parents.tolist() == [-1, 0, 1, 1, 1] and data.faces.dtype == np.int64
    np.testing.assert_array_equal(data.lmk_faces_idx[17:], emb["static_faces"])
    np.testing.assert_array_equal(data.lmk_faces_idx[:17], emb["dyn_faces"][0])
    assert data.dyn_lmk_faces_idx.shape == (79, 17) and data.mp_lmk_indices.shape == (105,)
    assert data.vt.shape[1] == 2 and data.ft.shape == (F, 3) and set(data.masks) == set(ff.MASK_NAMES) | {"eyeballs", "eye_left", "eye_right", "eyes"}
    eyeballs = np.union1d(data.masks["left_eyeball"], data.masks["right_eyeball"])
    np.testing.assert_array_equal(data.masks["eyeballs"], eyeballs)  # the name mfnet's stages look up
    meta = data.meta
    assert meta["source"] == "FLAME" and meta["variant"] == "FLAME 2020" and meta["units"] == "m"
    assert meta["file_components"] == {"shape": 300, "expression": 100} and "zero_directions_dropped" not in meta
    assert "non-commercial" in meta["license"] and meta["files"]["model"] == "generic_model.pkl"
    out = data.save(tmp_path / "out" / "flame2020.npz")
    back = HeadModelData.load(out)
    for key, value in data.to_arrays().items():
        if key != "meta":
            np.testing.assert_array_equal(back.to_arrays()[key], value, err_msg=key)
    assert back.meta["variant"] == "FLAME 2020" and back.masks.keys() == data.masks.keys()


def test_build_options_and_errors(deca_dir):
    model = deca_dir / "generic_model.pkl"
    lmk = deca_dir / "landmark_embedding.npy"
    small = build_flame_model(model, landmark_embedding=lmk, n_shape=50, n_expr=10, name="tiny")
    assert small.num_shape == 50 and small.num_expression == 10 and small.name == "tiny"
    with pytest.raises(HeadModelError, match="n_shape=301"):
        build_flame_model(model, landmark_embedding=lmk, n_shape=301)
    with pytest.raises(HeadModelError, match="landmark embedding is required.*landmark_embedding.npy"):
        build_flame_model(model)
    other = LandmarkEmbedding(np.full(68, F + 3), np.full((68, 3), 1 / 3))
    with pytest.raises(HeadModelError, match="belongs to another mesh"):
        build_flame_model(model, landmark_embedding=other)


def test_flame2023_open_variant(tmp_path, emb):
    arrays = ff.make_flame_arrays(V, F, n_comp=150)  # 50 shape + last 100 expression (metadata)
    path = ff.write_flame_pickle(tmp_path / "flame2023_Open.pkl", arrays, variant="open")
    raw = load_flame_pickle(path)
    assert not any(g.startswith("chumpy") for g in raw["_globals"])
    lmk = ff.write_deca_landmark_embedding(tmp_path / "landmark_embedding.npy", emb)
    data = build_flame_model(path, landmark_embedding=lmk, n_shape=50)
    assert data.meta["variant"] == "FLAME 2023 Open" and "CC BY 4.0" in data.meta["license"]
    np.testing.assert_allclose(data.exprdirs, arrays["shapedirs"][:, :, 50:].astype(np.float32))
    assert data.num_shape == 50 and data.num_expression == 100
    p23 = ff.write_flame_pickle(tmp_path / "flame2023.pkl", ff.make_flame_arrays(V, F))
    assert build_flame_model(p23, landmark_embedding=lmk).meta["variant"] == "FLAME 2023"


# ---------------------------------------------------------------- embeddings
def test_deca_landmark_embedding(tmp_path, emb):
    path = ff.write_deca_landmark_embedding(tmp_path / "landmark_embedding.npy", emb)
    raw = safe_load_npy(path)
    assert isinstance(raw, dict) and raw["dynamic_lmk_bary_coords"].dtype == np.float32
    lm = load_landmark_embedding(path)
    np.testing.assert_array_equal(lm.faces_idx, np.concatenate([emb["dyn_faces"][0], emb["static_faces"]]))
    np.testing.assert_array_equal(lm.dyn_faces_idx, emb["dyn_faces"])
    np.testing.assert_allclose(lm.dyn_bary_coords, emb["dyn_bary"], atol=1e-6)
    assert lm.faces_idx.dtype == np.int64 and lm.bary_coords.shape == (68, 3)


def test_ringnet_static_and_dynamic(tmp_path, emb):
    static = ff.write_ringnet_static(tmp_path / "flame_static_embedding.pkl", emb["static_faces"], emb["static_bary"])
    assert static.read_bytes().startswith(b"(dp")  # protocol 0, Python 2
    with pytest.raises(HeadModelError, match="flame_dynamic_embedding.npy"):
        load_landmark_embedding(static)
    dyn = ff.write_ringnet_dynamic(tmp_path / "flame_dynamic_embedding.npy", emb)
    for lm in (load_landmark_embedding(static), load_landmark_embedding(static, dyn)):
        np.testing.assert_array_equal(lm.faces_idx, np.concatenate([emb["dyn_faces"][0], emb["static_faces"]]))
        np.testing.assert_allclose(lm.bary_coords[:17], emb["dyn_bary"][0])
        np.testing.assert_array_equal(lm.dyn_faces_idx, emb["dyn_faces"])
        assert lm.files == ["flame_static_embedding.pkl", "flame_dynamic_embedding.npy"]
    with pytest.raises(HeadModelError, match="dynamic_path"):
        load_landmark_embedding(dyn)


def test_tf_flame_static_68(tmp_path, emb):
    faces = np.concatenate([emb["dyn_faces"][0], emb["static_faces"]])
    bary_ = np.concatenate([emb["dyn_bary"][0], emb["static_bary"]])
    path = ff.write_ringnet_static(tmp_path / "flame_static_embedding_68.pkl", faces, bary_, protocol=2)
    lm = load_landmark_embedding(path)
    np.testing.assert_array_equal(lm.faces_idx, faces)
    assert lm.dyn_faces_idx is None
    bad = ff.write_ringnet_static(tmp_path / "bad.pkl", faces[:60], bary_[:60])
    with pytest.raises(HeadModelError, match="60 points, expected 51 or 68"):
        load_landmark_embedding(bad)


def test_mediapipe_masks_uvs(tmp_path, arrays):
    written = ff.write_mediapipe_embedding(tmp_path / "mediapipe_landmark_embedding.npz", F)
    mp = load_mediapipe_embedding(tmp_path / "mediapipe_landmark_embedding.npz")
    np.testing.assert_array_equal(mp.faces_idx, written["lmk_face_idx"])
    np.testing.assert_array_equal(mp.landmark_indices, written["landmark_indices"])
    masks = ff.write_flame_masks(tmp_path / "FLAME_masks.pkl", V)
    loaded = load_flame_masks(tmp_path / "FLAME_masks.pkl")
    assert loaded.keys() == masks.keys()
    for name in masks:
        np.testing.assert_array_equal(loaded[name], masks[name])
        assert loaded[name].dtype == np.int64
    vt, ft = ff.make_uvs(arrays["f"])
    obj = ff.write_head_template_obj(tmp_path / "head_template.obj", arrays["v_template"], arrays["f"], vt, ft)
    lvt, lft = load_flame_uvs(obj)
    np.testing.assert_allclose(lvt, vt, atol=1e-6)
    np.testing.assert_array_equal(lft, ft)
    nvt, nft = load_flame_uvs(ff.write_flame_texture_npz(tmp_path / "FLAME_texture.npz", vt, ft))
    np.testing.assert_array_equal(nft, ft)
    (tmp_path / "quad.obj").write_text("vt 0 0\nvt 1 0\nvt 1 1\nvt 0 1\nf 1/1 2/2 3/3 4/4\n")
    with pytest.raises(HeadModelError, match="expected triangles"):
        load_flame_uvs(tmp_path / "quad.obj")
    (tmp_path / "novt.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
    with pytest.raises(HeadModelError, match="faces need v/vt"):
        load_flame_uvs(tmp_path / "novt.obj")


# ---------------------------------------------------------------- discovery
def test_find_flame_files_deca_folder(deca_dir):
    files = find_flame_files(deca_dir)
    assert files.model.name == "generic_model.pkl" and files.landmark_embedding.name == "landmark_embedding.npy"
    assert files.masks.name == "FLAME_masks.pkl" and files.uvs.name == "head_template.obj"
    data = build_flame_from_folder(deca_dir, n_expr=50)
    assert data.num_expression == 50 and data.mp_lmk_faces_idx is not None


def test_find_flame_files_ringnet_subfolders(tmp_path, arrays, emb):
    (tmp_path / "FLAME2020").mkdir()
    (tmp_path / "model").mkdir()
    ff.write_flame_pickle(tmp_path / "FLAME2020" / "generic_model.pkl", arrays)
    ff.write_ringnet_static(tmp_path / "model" / "flame_static_embedding.pkl", emb["static_faces"], emb["static_bary"])
    ff.write_ringnet_dynamic(tmp_path / "model" / "flame_dynamic_embedding.npy", emb)
    files = find_flame_files(tmp_path)
    assert files.landmark_embedding.name == "flame_static_embedding.pkl" and files.uvs is None
    data = build_flame_from_folder(tmp_path)
    assert data.dyn_lmk_faces_idx.shape == (79, 17) and data.vt is None
    with pytest.raises(HeadModelError, match="no FLAME model found"):
        find_flame_files(tmp_path / "model")


# ---------------------------------------------------------------- real size
@pytest.mark.slow
def test_real_size_model(tmp_path):
    arrays = ff.make_flame_arrays(5023, 9976)
    emb = ff.make_embedding(9976)
    t0 = time.perf_counter()
    path = ff.write_flame_pickle(tmp_path / "generic_model.pkl", arrays, protocol=2)
    lmk = ff.write_deca_landmark_embedding(tmp_path / "landmark_embedding.npy", emb)
    t1 = time.perf_counter()
    data = build_flame_model(path, landmark_embedding=lmk)
    t2 = time.perf_counter()
    assert data.num_vertices == 5023 and data.num_faces == 9976 and data.posedirs.shape == (36, 15069)
    assert data.J_regressor.shape == (5, 5023)
    assert t2 - t1 < 20, f"loading took {t2 - t1:.1f}s (writing {t1 - t0:.1f}s)"
