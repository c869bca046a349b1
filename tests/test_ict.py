"""ICT-FaceKit converter: properties of the converted model against the kit's own data.

Expected counts come from the kit's README tables (parsed here), positions and bases from
the repacked npz; the original-OBJ layout is exercised with a tiny kit written to tmp.
"""
from __future__ import annotations

import http.server
import json
import re
import shutil
import socket
import threading
import zipfile
from functools import partial

import numpy as np
import pytest

from mfnet.headmodel.data import HeadModelData, HeadModelError
from mfnet.headmodel.ict import DEFAULT_REGIONS, convert_ict
from mfnet.headmodel.ict_fetch import fetch_ict
from mfnet.headmodel.objio import read_obj, read_obj_vertices

README_NAMES = {  # converter region -> README "Face Model Topology" geometry names
    "face": ["Face"], "head_neck": ["Head and Neck"], "mouth_socket": ["Mouth socket"],
    "eye_sockets": ["Eye socket left", "Eye socket right"], "eyeballs": ["Eyeball left", "Eyeball right"],
}


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="session")
def readme(ict_dir):
    """{geometry name: (v0, v1, f0, f1)} from the README's topology table (inclusive)."""
    text = (ict_dir / "README.md").read_text()
    table = text[text.index("### Face Model Topology"):text.index("### UV Layout")]
    rows = re.findall(r"\|\s*#\d+\s*\|\s*([^|]+?)\s*\|\s*\[(\d+):(\d+)\]\s*\|\s*\[(\d+):(\d+)\]", table)
    return {name: tuple(int(x) for x in nums) for name, *nums in rows}


@pytest.fixture(scope="session")
def npz(ict_dir):
    with np.load(ict_dir / "ict_facekit_vertices.npz") as z:
        return {k: z[k] for k in z.files}


@pytest.fixture(scope="session")
def polygons(ict_dir):
    """Corner lists [(v, vt), ...] of every polygon of the kit's OBJ (0-based), and its vt."""
    polys, vt = [], []
    for line in (ict_dir / "generic_neutral_mesh.obj").read_text().splitlines():
        if line.startswith("f "):
            polys.append([tuple(int(i) - 1 for i in c.split("/")[:2]) for c in line.split()[1:]])
        elif line.startswith("vt "):
            vt.append([float(x) for x in line.split()[1:3]])
    return polys, np.array(vt)


@pytest.fixture(scope="session")
def model(ict_dir):
    return convert_ict(ict_dir)


def kept_ranges(readme, regions):
    return [readme[n] for r in regions for n in README_NAMES[r]]


def kept_vertices(readme, regions):
    return np.concatenate([np.arange(v0, v1 + 1) for v0, v1, _, _ in kept_ranges(readme, regions)])


def landmarks(ict_dir):
    return np.array(json.loads((ict_dir / "vertex_indices.json").read_text())["idx_to_landmark_verts"])


def pose(m: HeadModelData, joint: int, rotvec) -> np.ndarray:
    """Rotate one joint (and its descendants) by linear blend skinning, numpy only."""
    from scipy.spatial.transform import Rotation

    P = m.v_template.astype(np.float64)
    J = m.J_regressor @ P
    moved = {joint}
    for j in range(m.num_joints):
        if m.parents[j] in moved:
            moved.add(j)
    w = m.weights[:, sorted(moved)].sum(1, keepdims=True)
    R = Rotation.from_rotvec(rotvec).as_matrix()
    return (1 - w) * P + w * ((P - J[joint]) @ R.T + J[joint])


# ----------------------------------------------------------------------------- default model
def test_validates_and_round_trips(model, tmp_path):
    model.validate()
    back = HeadModelData.load(model.save(tmp_path / "ict.npz"))
    assert back.meta["expression_names"] == model.meta["expression_names"]
    np.testing.assert_array_equal(back.faces, model.faces)
    assert model.posedirs is None and model.meta["license"] == "MIT" and model.meta["units"] == "m"


def test_counts_match_readme_regions(model, readme, polygons):
    ranges = kept_ranges(readme, DEFAULT_REGIONS)
    assert model.num_vertices == sum(v1 - v0 + 1 for v0, v1, _, _ in ranges)
    kept_polys = [p for _, _, f0, f1 in ranges for p in polygons[0][f0:f1 + 1]]
    assert model.meta["counts"]["polygons"] == sum(f1 - f0 + 1 for _, _, f0, f1 in ranges)
    assert model.num_faces == sum(len(p) - 2 for p in kept_polys)
    assert model.num_shape == 100 and model.num_expression == 57


def test_positions_and_bases_equal_npz_on_kept_vertices(model, npz, readme):
    keep = kept_vertices(readme, DEFAULT_REGIONS)
    np.testing.assert_allclose(model.v_template, npz["neutral"][keep] * 0.01, atol=1e-7)
    np.testing.assert_allclose(model.shapedirs, npz["identity_deltas"][:, keep].transpose(1, 2, 0) * 0.01,
                               atol=1e-8)
    np.testing.assert_allclose(model.exprdirs, npz["expression_deltas"][:, keep].transpose(1, 2, 0) * 0.01,
                               atol=1e-8)
    assert model.meta["expression_names"] == [str(s) for s in npz["expression_names"]]


def test_units_metres(model):
    height = np.ptp(model.v_template[:, 1])
    assert 0.2 < height < 0.35
    assert np.ptp(model.v_template[:, 0]) < 0.3


def test_face_normals_point_forward_and_outward(model):
    P = model.v_template.astype(np.float64)
    tri = P[model.faces]
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    in_face = np.isin(model.faces, model.masks["face"]).all(1)
    assert n[in_face, 2].sum() > 0.3 * np.linalg.norm(n[in_face], axis=1).sum()
    # outward: the (nearly closed) head encloses a positive volume of a few litres, and most of
    # the skin area faces away from the head's centre
    c = tri - P.mean(0)
    volume = np.einsum("ij,ij->i", c[:, 0], np.cross(c[:, 1], c[:, 2])).sum() / 6
    assert 0.002 < volume < 0.008
    skin = np.isin(model.faces, np.r_[model.masks["face"], model.masks["head_neck"]]).all(1)
    area = np.linalg.norm(n[skin], axis=1)
    assert area[((c.mean(1) * n).sum(1) > 0)[skin]].sum() > 0.75 * area.sum()


def test_weights_and_regressor_are_convex(model):
    for A in (model.weights, model.J_regressor):
        assert A.min() >= 0
    np.testing.assert_allclose(model.weights.sum(1), 1, atol=1e-5)
    np.testing.assert_allclose(model.J_regressor.sum(1), 1, atol=1e-5)
    np.testing.assert_array_equal(model.parents, [-1, 0, 1, 1, 1])


def test_joints_plausible(model, ict_dir, npz):
    J = model.J_regressor @ model.v_template
    lm = npz["neutral"][landmarks(ict_dir)] * 0.01
    nose, mouth = lm[30], lm[62]
    g, neck, jaw, eye_l, eye_r = J
    assert eye_l[0] > nose[0] + 0.02 and eye_r[0] < nose[0] - 0.02          # left = subject's left = +x
    assert abs(eye_l[0] + eye_r[0]) < 1e-4 and np.allclose(eye_l[1:], eye_r[1:], atol=1e-4)
    assert eye_l[1] > nose[1] and eye_l[2] < nose[2]
    assert abs(jaw[0]) < 1e-4 and jaw[1] < eye_l[1] and jaw[2] < mouth[2] - 0.03
    assert g[1] < neck[1] < jaw[1]
    assert g[1] < model.v_template[:, 1].min() + 0.05


def test_landmarks_are_kit_vertices(model, ict_dir, npz):
    P = model.v_template[model.faces[model.lmk_faces_idx]]
    pts = np.einsum("lk,lkc->lc", model.lmk_bary_coords, P)
    np.testing.assert_allclose(pts, npz["neutral"][landmarks(ict_dir)] * 0.01, atol=1e-7)
    np.testing.assert_allclose(model.lmk_bary_coords.sum(1), 1)


def test_jaw_rotation_opens_mouth(model):
    lm = np.array(model.meta["landmark_vertices"])
    moved = pose(model, 2, [0.2, 0, 0])
    d = np.linalg.norm(moved - model.v_template, axis=1)
    assert (moved[lm[[56, 57, 58, 65, 66, 67]], 1] - model.v_template[lm[[56, 57, 58, 65, 66, 67]], 1] < -0.01).all()
    assert d[lm[[49, 50, 51, 52, 53, 61, 62, 63]]].max() < 1e-3
    brows = model.v_template[lm[17:27], 1].max()
    forehead = model.masks["face"][model.v_template[model.masks["face"], 1] > brows + 0.01]
    assert forehead.size > 100 and d[forehead].max() < 1e-3
    assert d[lm[8]] > 0.015                                                  # chin moves


def test_neck_rotation_moves_head_not_neck_base(model):
    lm = np.array(model.meta["landmark_vertices"])
    moved = pose(model, 1, [0, 0.5, 0])
    d = np.linalg.norm(moved - model.v_template, axis=1)
    ring = np.nonzero(model.J_regressor[0])[0]
    assert d[lm[30]] > 0.03 and d[ring].max() < 0.2 * d[lm[30]]
    eyes = model.masks["eyeballs"]
    assert np.allclose(model.weights[eyes][:, 3:].sum(1), 1)


def test_uv_atlas(model, polygons, readme):
    assert model.vt.min() >= 0 and model.vt.max() <= 1 and model.ft.shape == model.faces.shape
    cells = [(c["offset"][0], c["offset"][1], c["scale"]) for c in model.meta["uv_atlas"].values()]
    for i, (u0, v0, s) in enumerate(cells):
        assert 0 <= u0 and u0 + s <= 1 and 0 <= v0 and v0 + s <= 1
        for u1, v1, s1 in cells[i + 1:]:
            assert u0 + s <= u1 + 1e-9 or u1 + s1 <= u0 + 1e-9 or v0 + s <= v1 + 1e-9 or v1 + s1 <= v0 + 1e-9
    # the face material's corners keep their UVs, scaled into its cell
    polys, vt = polygons
    cell = model.meta["uv_atlas"]["M_Face"]
    keep = kept_vertices(readme, DEFAULT_REGIONS)
    f1 = readme["Face"][3]
    want: dict[int, list] = {}
    for p in polys[:f1 + 1]:
        for v, t in p:
            want.setdefault(v, set()).add(t)
    n_face_tris = sum(len(p) - 2 for p in polys[:f1 + 1])        # faces follow the polygon order
    corners = {(int(keep[v]), int(t)) for v, t in
               zip(model.faces[:n_face_tris].ravel(), model.ft[:n_face_tris].ravel())}
    assert len(corners) == sum(len(ts) for ts in want.values())
    for v, t in corners:
        src = np.asarray(cell["offset"]) + cell["scale"] * vt[sorted(want[v])]
        assert np.abs(src - model.vt[t]).sum(1).min() < 1e-6


def test_masks(model, readme, ict_dir):
    m, V = model.masks, model.num_vertices
    assert all(idx.min() >= 0 and idx.max() < V for idx in m.values())
    narrow = re.search(r"Narrow face area\s*\|\s*\[0:(\d+)\]", (ict_dir / "README.md").read_text())
    assert len(m["face"]) == readme["Face"][1] + 1 and len(m["narrow_face"]) == int(narrow.group(1)) + 1
    assert set(m["narrow_face"]) <= set(m["face"])
    lm = np.array(model.meta["landmark_vertices"])
    assert lm[30] in m["nose"] and lm[51] in m["lips"] and lm[57] in m["lips"] and lm[30] not in m["lips"]
    assert lm[36] in m["eyes"] and lm[45] in m["eyes"] and set(m["eyeballs"]) <= set(m["eyes"])
    P = model.v_template
    assert P[m["neck"], 1].max() < P[lm[8], 1] and P[m["scalp"], 1].min() > P[lm[30], 1]


# ----------------------------------------------------------------------------- options, errors
def test_region_selection_changes_counts(ict_dir, readme):
    regions = ("face", "head_neck", "mouth_socket")
    m = convert_ict(ict_dir, regions=regions, n_shape=5, n_expr=3)
    assert m.num_vertices == len(kept_vertices(readme, regions))
    assert m.num_shape == 5 and m.num_expression == 3 and "mouth_interior" in m.masks
    small = convert_ict(ict_dir, regions=("face",), n_shape=2, n_expr=1)
    assert small.num_vertices == readme["Face"][1] + 1
    np.testing.assert_allclose(small.J_regressor.sum(1), 1, atol=1e-5)
    assert small.J_regressor.min() >= 0
    with pytest.raises(HeadModelError, match="face"):
        convert_ict(ict_dir, regions=("head_neck",))
    with pytest.raises(HeadModelError, match="among"):
        convert_ict(ict_dir, regions=("face", "hair"))


def test_wrong_folder_is_a_clear_error(tmp_path):
    with pytest.raises(HeadModelError, match="FaceXModel") as err:
        convert_ict(tmp_path)
    assert "git clone" in str(err.value)
    with pytest.raises(HeadModelError):
        fetch_ict(tmp_path / "nothing.txt", tmp_path / "dest")


# ----------------------------------------------------------------------------- original kit layout
@pytest.fixture(scope="session")
def fake_kit(ict_dir, npz, tmp_path_factory):
    """ICT-FaceKit-master/FaceXModel with the neutral, 3 identity and 2 expression OBJs."""
    root = tmp_path_factory.mktemp("kit") / "ICT-FaceKit-master"
    fx = root / "FaceXModel"
    fx.mkdir(parents=True)
    (root / "README.md").write_text("not the real readme\n")
    for name in ("generic_neutral_mesh.obj", "vertex_indices.json"):
        shutil.copy(ict_dir / name, fx / name)
    neutral = read_obj_vertices(fx / "generic_neutral_mesh.obj")
    shapes = {f"identity{i:03d}": npz["identity_deltas"][i] for i in range(3)}
    shapes.update({str(n): npz["expression_deltas"][i] for i, n in enumerate(npz["expression_names"][:2])})
    for name, delta in shapes.items():
        v = neutral + delta.astype(np.float64)
        (fx / f"{name}.obj").write_text("mtllib ICTFaceModelMaterial.mtl\n"
                                        + "".join(f"v {x:.9g} {y:.9g} {z:.9g}\n" for x, y, z in v))
    return root


def test_original_kit_matches_repacked(fake_kit, ict_dir):
    kit = convert_ict(fake_kit, n_shape=3)
    ref = convert_ict(ict_dir, n_shape=3, n_expr=2)
    assert kit.meta["source_format"] == "FaceXModel OBJs"
    assert kit.meta["expression_names"] == ref.meta["expression_names"]
    a, b = kit.to_arrays(), ref.to_arrays()
    assert set(a) == set(b)
    for k in a:
        if k != "meta":
            np.testing.assert_allclose(a[k], b[k], atol=1e-6, err_msg=k)
    with pytest.raises(HeadModelError, match="identity"):
        convert_ict(fake_kit, n_shape=4)


def test_fetch_from_folder_and_zip(fake_kit, ict_dir, tmp_path):
    assert fetch_ict(ict_dir, tmp_path / "a") == ict_dir
    assert fetch_ict(fake_kit, tmp_path / "a") == fake_kit / "FaceXModel"
    archive = tmp_path / "master.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for f in fake_kit.rglob("*"):
            zf.write(f, f"ICT-FaceKit-master/{f.relative_to(fake_kit)}")
    out = fetch_ict(archive, tmp_path / "b")
    assert out == tmp_path / "b" / "FaceXModel"
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in (fake_kit / "FaceXModel").iterdir())
    m = convert_ict(out, n_shape=3, n_expr=1)
    assert m.num_expression == 1
    # over http (local server), and a clear error when the download fails
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(Quiet, directory=str(tmp_path))) as srv:
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        try:
            out = fetch_ict(f"http://127.0.0.1:{srv.server_address[1]}/master.zip", tmp_path / "c")
        finally:
            srv.shutdown()
    assert (out / "identity002.obj").is_file() and not list((tmp_path / "c").glob(".ict-download-*"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(HeadModelError, match="--from"):
        fetch_ict(f"http://127.0.0.1:{port}/master.zip", tmp_path / "d")


def test_obj_reader(ict_dir, npz):
    mesh = read_obj(ict_dir / "generic_neutral_mesh.obj")
    assert mesh.vertices.shape == (26719, 3) and mesh.num_polygons == 26384
    np.testing.assert_allclose(mesh.vertices, npz["neutral"], atol=1e-5)
    tri_v, tri_vt, tri_poly = mesh.triangulate(np.array([0]))
    assert tri_v.shape == (2, 3) and set(tri_v.ravel()) == set(mesh.corner_v[:4])
    assert mesh.materials[mesh.poly_material[0]] == "M_Face"


def test_obj_reader_polygons_and_indices(tmp_path):
    f = tmp_path / "t.obj"
    f.write_text("v 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\nv 0.5 1.5 0 1 0 0\nvt 0 0\nvt 1 1\nvn 0 0 1\n"
                 "f 1 2 3\nusemtl A\nf 1/1 2/2 3/1 4/2\nusemtl B\nf -5//1 -4//1 -3//1 -1//1 -2//1\n")
    mesh = read_obj(f)
    assert mesh.vertices.shape == (5, 3) and mesh.uvs.shape == (2, 2)
    np.testing.assert_array_equal(mesh.poly_size, [3, 4, 5])
    assert [mesh.materials[m] if m >= 0 else None for m in mesh.poly_material] == [None, "A", "B"]
    np.testing.assert_array_equal(mesh.corner_v[7:], [0, 1, 2, 4, 3])
    assert (mesh.corner_vt[:3] == -1).all() and (mesh.corner_vt[7:] == -1).all()
    tri_v, tri_vt, tri_poly = mesh.triangulate()
    np.testing.assert_array_equal(tri_poly, [0, 1, 1, 2, 2, 2])
    np.testing.assert_array_equal(tri_v[1:3], [[0, 1, 2], [0, 2, 3]])
    np.testing.assert_array_equal(tri_vt[1:3], [[0, 1, 0], [0, 0, 1]])
    # every fan triangle keeps the polygon's (counter-clockwise, +z) winding
    P = mesh.vertices[tri_v]
    assert (np.cross(P[:, 1] - P[:, 0], P[:, 2] - P[:, 0])[:, 2] > 0).all()
    np.testing.assert_array_equal(read_obj_vertices(f), mesh.vertices)
