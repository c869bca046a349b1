"""Soft silhouette and edge adjacency."""
from __future__ import annotations

import pytest
import torch

from mfnet.render import WeakPerspectiveCameras, face_adjacency, rasterize, silhouette_faces, soft_silhouette


def _tri(dtype=torch.float64):
    # counter-clockwise in y-down screen space would be back-facing: use the
    # front-facing (negative signed area) order
    return torch.tensor([[[8.3, 6.2, 1.0], [10.1, 25.7, 1.0], [26.6, 15.4, 1.0]]], dtype=dtype), torch.tensor([[0, 1, 2]])


def test_soft_silhouette_values_and_boundary_gradient():
    verts, faces = _tri()
    verts.requires_grad_(True)
    s = soft_silhouette(verts, faces, 32, sigma=0.5)
    frags = rasterize(verts, faces, 32)
    assert ((s >= 0) & (s <= 1)).all()
    assert (s[frags.mask] == 1).all()
    out = s[~frags.mask]
    assert (out > 0.01).sum() > 10 and (out < 0.99).all()
    s.sum().backward()
    g = verts.grad[0, :, :2]
    assert (g.norm(dim=1) > 1e-3).all()  # every boundary vertex gets a gradient
    assert verts.grad[0, :, 2].abs().max() == 0  # depth does not move the silhouette


def test_soft_silhouette_grows_when_triangle_moves_outward():
    verts, faces = _tri()
    centre = verts[0, :, :2].mean(0)
    base = soft_silhouette(verts, faces, 32).sum()
    for scale in (1.02, 1.1):
        v = verts.clone()
        v[0, :, :2] = centre + (v[0, :, :2] - centre) * scale
        assert soft_silhouette(v, faces, 32).sum() > base
    # and the gradient points outward: d(sum)/d(scale) > 0
    scale = torch.tensor(1.0, dtype=torch.float64, requires_grad=True)
    v = verts.clone()
    v = torch.cat([(centre + (v[..., :2] - centre) * scale), v[..., 2:]], -1)
    soft_silhouette(v, faces, 32).sum().backward()
    assert scale.grad > 0


def test_soft_silhouette_gradcheck():
    verts, faces = _tri()
    verts.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda v: soft_silhouette(v, faces, (20, 30), sigma=0.7), (verts * 0.7,), atol=1e-6)


def test_face_adjacency_closed_mesh():
    import trimesh

    m = trimesh.creation.icosphere(subdivisions=1)
    faces = torch.tensor(m.faces)
    nbr = face_adjacency(faces)
    assert (nbr >= 0).all()
    F = faces.shape[0]
    for k in range(3):  # symmetric: my neighbour across an edge has me as a neighbour
        back = nbr[nbr[:, k]]
        assert (back == torch.arange(F)[:, None]).any(1).all()
    # the neighbour across edge (v_k, v_k+1) contains both endpoints
    for k in range(3):
        e = faces[:, [k, (k + 1) % 3]]
        other = faces[nbr[:, k]]
        assert ((other[:, :, None] == e[:, None, :]).any(1)).all()
    # open mesh: removing a face creates boundary edges on its 3 neighbours
    nbr2 = face_adjacency(faces[1:])
    assert (nbr2 < 0).sum() == 3


def test_silhouette_faces_of_sphere_form_the_contour():
    import trimesh

    m = trimesh.creation.icosphere(subdivisions=3, radius=0.1)
    verts = torch.tensor(m.vertices, dtype=torch.float32)[None]
    faces = torch.tensor(m.faces)
    cams = WeakPerspectiveCameras(torch.tensor([6.0]), torch.zeros(1, 2))
    sv = cams.project(verts, 64)
    sel = silhouette_faces(sv, faces)[0]
    assert 0 < sel.sum() < 0.2 * faces.shape[0]
    # contour faces have normals nearly perpendicular to the view direction
    tri = verts[0, faces[sel]]
    n = torch.linalg.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    n = n / n.norm(dim=1, keepdim=True)
    assert n[:, 2].abs().max() < 0.45
    # the all-faces product has more factors (each <= 1): never smaller
    a = soft_silhouette(sv, faces, 64)
    b = soft_silhouette(sv, faces, 64, silhouette_faces_only=False)
    assert (b >= a - 1e-6).all()
    assert torch.equal((a > 0) & (b > 0), a > 0)
    assert (b - a).sum() > 0


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_soft_silhouette_dtype(dtype):
    verts, faces = _tri(dtype)
    assert soft_silhouette(verts, faces, 32).dtype == dtype
