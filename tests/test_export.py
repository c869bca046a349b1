"""Export round-trips: what we write is what readers (ours and trimesh) read back."""
from __future__ import annotations

import numpy as np
import trimesh

from mfnet.export.mesh import read_obj, write_glb, write_obj, write_ply
from synthetic_model import make_synthetic_model


def _mesh():
    d = make_synthetic_model()
    rng = np.random.default_rng(0)
    vt = rng.random((len(d.v_template) + 7, 2))
    ft = rng.integers(0, len(vt), size=d.faces.shape)
    return d.v_template.astype(np.float64), d.faces, vt, ft


def test_obj_roundtrip_with_uvs_and_texture(tmp_path):
    v, f, vt, ft = _mesh()
    tex = (np.random.default_rng(1).random((16, 16, 3)) * 255).astype(np.uint8)
    p = write_obj(tmp_path / "mesh.obj", v, f, vt, ft, texture=tex)
    back = read_obj(p)
    np.testing.assert_allclose(back["vertices"], v, atol=1e-6)
    np.testing.assert_array_equal(back["faces"], f)
    np.testing.assert_allclose(back["vt"], vt, atol=1e-6)
    np.testing.assert_array_equal(back["ft"], ft)
    assert "map_Kd mesh.png" in (tmp_path / "mesh.mtl").read_text()
    from PIL import Image
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "mesh.png")), tex)
    # trimesh agrees on the geometry
    tm = trimesh.load(p, process=False, force="mesh")
    assert len(tm.faces) == len(f)
    # no temporary files left behind
    assert sorted(x.name for x in tmp_path.iterdir()) == ["mesh.mtl", "mesh.obj", "mesh.png"]


def test_ply_and_glb_roundtrip(tmp_path):
    v, f, vt, ft = _mesh()
    ply = trimesh.load(write_ply(tmp_path / "m.ply", v, f), process=False)
    np.testing.assert_allclose(ply.vertices, v, atol=1e-6)
    np.testing.assert_array_equal(ply.faces, f)
    tex = np.full((8, 8, 3), 128, np.uint8)
    glb = trimesh.load(write_glb(tmp_path / "m.glb", v, f, vt, ft, tex), force="mesh", process=False)
    assert len(glb.faces) == len(f)
    # every original (vertex position) appears, the seam split only duplicates
    assert np.allclose(np.unique(np.round(glb.vertices, 5), axis=0), np.unique(np.round(v, 5), axis=0), atol=1e-5)
