"""HeadModel / LBS: analytic properties against an independent numpy reference."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from mfnet.headmodel import lbs as L
from mfnet.headmodel.data import HeadModelData, HeadModelError
from mfnet.headmodel.model import HeadModel
from synthetic_model import make_synthetic_model


def reference_lbs(data: HeadModelData, shape, expr, pose15, trans):
    """Straightforward per-joint numpy implementation of FLAME LBS (scipy rotations)."""
    v = data.v_template + data.shapedirs[:, :, : len(shape)] @ shape + data.exprdirs[:, :, : len(expr)] @ expr
    Jnt = data.J_regressor @ v
    R = Rotation.from_rotvec(pose15.reshape(5, 3)).as_matrix()
    if data.posedirs is not None:
        feat = (R[1:] - np.eye(3)).reshape(-1)
        v = v + (feat @ data.posedirs).reshape(-1, 3)
    G = []
    for j in range(5):
        T = np.eye(4)
        T[:3, :3] = R[j]
        p = data.parents[j]
        T[:3, 3] = Jnt[j] - (Jnt[p] if p >= 0 else 0)
        G.append(T if p < 0 else G[p] @ T)
    A = []
    for j in range(5):
        M = G[j].copy()
        M[:3, 3] -= G[j][:3, :3] @ Jnt[j]
        A.append(M)
    A = np.stack(A)
    T = np.einsum("vj,jmn->vmn", data.weights, A)
    out = np.einsum("vmn,vn->vm", T[:, :3, :3], v) + T[:, :3, 3]
    return out + trans


@pytest.fixture(scope="module")
def data():
    return make_synthetic_model()


def test_zero_pose_equals_template(data):
    m = HeadModel(data)
    out = m()
    assert torch.allclose(out.vertices[0], torch.as_tensor(data.v_template), atol=1e-6)


def test_matches_numpy_reference(data):
    m = HeadModel(data, dtype=torch.float64)
    rng = np.random.default_rng(1)
    shape, expr = rng.normal(size=4), rng.normal(size=3)
    pose = rng.normal(size=15) * 0.3
    trans = rng.normal(size=3) * 0.1
    out = m(torch.tensor(shape)[None], torch.tensor(expr)[None], torch.tensor(pose)[None], torch.tensor(trans)[None])
    ref = reference_lbs(data, shape, expr, pose, trans)
    np.testing.assert_allclose(out.vertices[0].numpy(), ref, atol=1e-9)


def test_global_rotation_pivots_about_root_joint():
    data = make_synthetic_model(posedirs=False)
    m = HeadModel(data, dtype=torch.float64)
    rvec = np.array([0.1, 0.7, -0.2])
    pose = torch.zeros(1, 15, dtype=torch.float64)
    pose[0, :3] = torch.tensor(rvec)
    out = m(pose=pose)
    J0 = data.J_regressor[0].astype(np.float64) @ data.v_template.astype(np.float64)
    R = Rotation.from_rotvec(rvec).as_matrix()
    expect = (data.v_template - J0) @ R.T + J0
    np.testing.assert_allclose(out.vertices[0].numpy(), expect, atol=1e-6)


def test_6d_and_matrix_pose_agree_with_axis_angle(data):
    m = HeadModel(data, dtype=torch.float64)
    pose = torch.randn(2, 5, 3, dtype=torch.float64) * 0.4
    R = L.axis_angle_to_matrix(pose)
    a = m(pose=pose).vertices
    b = m(pose=L.matrix_to_rot6d(R), pose_repr="6d").vertices
    c = m(pose=R, pose_repr="matrix").vertices
    assert torch.allclose(a, b, atol=1e-10) and torch.allclose(a, c, atol=1e-10)
    assert torch.allclose(L.matrix_to_axis_angle(R), pose, atol=1e-6)


def test_rodrigues_matches_scipy():
    r = torch.randn(50, 3, dtype=torch.float64)
    np.testing.assert_allclose(L.axis_angle_to_matrix(r).numpy(), Rotation.from_rotvec(r.numpy()).as_matrix(), atol=1e-7)


def test_batched_and_gradients(data):
    m = HeadModel(data, dtype=torch.float64)
    shape = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    pose = (torch.randn(3, 15, dtype=torch.float64) * 0.3).requires_grad_()
    single = torch.stack([m(shape[i:i + 1], pose=pose[i:i + 1]).vertices[0] for i in range(3)])
    assert torch.allclose(m(shape, pose=pose).vertices, single)

    def f(s, p):
        o = m(s, pose=p)
        return o.vertices[:, :5], o.landmarks[:, :3]

    assert torch.autograd.gradcheck(f, (shape, pose))


def test_landmarks_follow_embedding(data):
    m = HeadModel(data)
    out = m(torch.randn(2, 4))
    v = out.vertices
    f = data.faces[data.lmk_faces_idx[5]]
    expect = (v[:, f] * torch.as_tensor(data.lmk_bary_coords[5])[None, :, None]).sum(1)
    assert torch.allclose(out.landmarks[:, 5], expect, atol=1e-6)


def test_dynamic_contour_follows_yaw(data):
    m = HeadModel(data, dtype=torch.float64)
    pose = torch.zeros(2, 15, dtype=torch.float64)
    pose[1, 1] = np.deg2rad(-20)  # yaw the head: FLAME sign convention selects row 20
    out = m(pose=pose, dynamic_contour=True)
    v = out.vertices
    for b, row in ((0, 0), (1, 20)):
        f = data.faces[data.dyn_lmk_faces_idx[row, 3]]
        expect = (v[b, f] * torch.as_tensor(data.dyn_lmk_bary_coords[row, 3], dtype=torch.float64)[:, None]).sum(0)
        assert torch.allclose(out.landmarks[b, 3], expect)
    # the inner 51 points are untouched by the contour
    assert torch.allclose(out.landmarks[:, 17:], m(pose=pose).landmarks[:, 17:])


def test_save_load_roundtrip(tmp_path, data):
    p = data.save(tmp_path / "m.npz")
    back = HeadModelData.load(p)
    for k, v in data.to_arrays().items():
        if k != "meta":
            np.testing.assert_array_equal(back.to_arrays()[k], v)
    assert back.meta["name"] == "synthetic"


def test_invalid_model_errors_name_the_problem(tmp_path, data):
    bad = make_synthetic_model()
    bad.weights = bad.weights * 2
    with pytest.raises(HeadModelError, match="sum to 1"):
        bad.validate("bad.npz")
    arrays = data.to_arrays()
    del arrays["J_regressor"]
    np.savez(tmp_path / "x.npz", **arrays)
    with pytest.raises(HeadModelError, match="missing arrays: J_regressor"):
        HeadModelData.load(tmp_path / "x.npz")
    (tmp_path / "t.npz").write_bytes(b"PK\x03\x04garbage")
    with pytest.raises(HeadModelError, match="t.npz"):
        HeadModelData.load(tmp_path / "t.npz")
    with pytest.raises(HeadModelError, match="no such"):
        HeadModelData.load(tmp_path / "missing.npz")


def test_landmarks_only_path_matches_full_forward(data):
    m = HeadModel(data, dtype=torch.float64)
    shape, expr = torch.randn(2, 4, dtype=torch.float64), torch.randn(2, 3, dtype=torch.float64)
    pose = torch.randn(2, 15, dtype=torch.float64) * 0.3
    for dyn in (False, True):
        full = m(shape, expr, pose, dynamic_contour=dyn)
        fast = m(shape, expr, pose, dynamic_contour=dyn, landmarks_only=True)
        assert torch.allclose(full.landmarks, fast.landmarks, atol=1e-10)
        assert torch.allclose(full.joints, fast.joints, atol=1e-10)
        assert fast.vertices.shape[1] < full.vertices.shape[1] or data.num_vertices <= 3 * 68


def test_vertex_subset_matches_full_forward(data):
    m = HeadModel(data, dtype=torch.float64)
    shape, expr = torch.randn(2, 4, dtype=torch.float64), torch.randn(2, 3, dtype=torch.float64)
    pose = torch.randn(2, 15, dtype=torch.float64) * 0.3
    ids = torch.tensor([5, 0, 17, 33])
    assert torch.allclose(m.vertex_subset(ids)(shape, expr, pose), m(shape, expr, pose).vertices[:, ids], atol=1e-10)


def test_switch_landmark_embedding(tmp_path):
    data = make_synthetic_model()
    rng = np.random.default_rng(3)
    b = rng.random((68, 3))
    data.embeddings["mydetector"] = (rng.integers(0, data.num_faces, 68), (b / b.sum(1, keepdims=True)).astype(np.float32))
    data = HeadModelData.load(data.save(tmp_path / "e.npz"))  # the embedding survives save/load
    m = HeadModel(data, dtype=torch.float64)
    shape = torch.randn(1, 4, dtype=torch.float64)
    static = m(shape).landmarks
    assert m.use_landmark_embedding("mydetector") and not m.use_landmark_embedding("other")
    switched = m(shape)
    f, bb = data.embeddings["mydetector"]
    expect = (switched.vertices[0][torch.as_tensor(data.faces[f])] * torch.as_tensor(bb, dtype=torch.float64)[..., None]).sum(1)
    assert torch.allclose(switched.landmarks[0], expect)
    assert torch.allclose(m(shape, landmarks_only=True).landmarks, switched.landmarks)
    m.use_landmark_embedding("static")
    assert torch.allclose(m(shape).landmarks, static)


def test_one_coefficient_row_serves_every_pose(data):
    """One head seen in several views: a single shape/expression row broadcast over the poses gives
    exactly what the row repeated per pose gives (full mesh, landmarks-only path, vertex subsets),
    and a row count that fits neither is refused."""
    m = HeadModel(data, dtype=torch.float64)
    g = torch.Generator().manual_seed(3)
    shape = torch.randn(1, m.n_shape, generator=g, dtype=torch.float64)
    expr = torch.randn(1, m.n_expr, generator=g, dtype=torch.float64)
    pose = 0.3 * torch.randn(3, 15, generator=g, dtype=torch.float64)
    one, rep = m(shape, expr, pose), m(shape.expand(3, -1), expr.expand(3, -1), pose)
    torch.testing.assert_close(one.vertices, rep.vertices)
    torch.testing.assert_close(one.landmarks, rep.landmarks)
    fast = m(shape, expr, pose, landmarks_only=True)
    torch.testing.assert_close(fast.landmarks, rep.landmarks)
    ids = torch.arange(0, m.num_vertices, 3)
    torch.testing.assert_close(m.vertex_subset(ids)(shape, expr, pose), rep.vertices[:, ids])
    with pytest.raises(ValueError, match="coefficient rows"):
        m.vertex_subset(ids)(shape.expand(2, -1), expr.expand(2, -1), pose)


def test_masks_move_with_the_model(data):
    """HeadModel.to() moves the named vertex masks too (device), keeping them integer (dtype changes)."""
    from mfnet.headmodel.model import HeadModel

    m = HeadModel(data)
    if not m.masks:
        m.masks = {"face": torch.arange(5)}
    m64 = m.to(torch.float64)
    assert all(v.dtype == torch.long for v in m64.masks.values())
    meta = m.to("meta")
    assert all(v.device.type == "meta" for v in meta.masks.values())
    assert meta.v_template.device.type == "meta"
