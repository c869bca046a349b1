"""Linear blend skinning for FLAME-style head models, in plain PyTorch.

Order of operations (as in SMPL/FLAME):

1. ``v_shaped = v_template + shapedirs @ beta + exprdirs @ psi``
2. ``J = J_regressor @ v_shaped``
3. per-joint rotations from the pose (axis-angle or 6D); pose feature
   ``(R[1:] - I)`` flattened; ``v_posed = v_shaped + pose_feature @ posedirs``
4. rigid transforms along the kinematic chain (rest joint subtracted)
5. blend the transforms by the skinning weights, apply to ``v_posed``.

Everything is batched over the leading dimension and differentiable.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def axis_angle_to_matrix(rvec: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Rodrigues' formula. ``rvec (..., 3) -> (..., 3, 3)``; smooth at zero."""
    angle = torch.linalg.vector_norm(rvec + eps, dim=-1, keepdim=True)  # (..., 1)
    axis = rvec / angle
    cos = torch.cos(angle)[..., None]
    sin = torch.sin(angle)[..., None]
    x, y, z = axis.unbind(-1)
    zero = torch.zeros_like(x)
    K = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=-1).reshape(rvec.shape[:-1] + (3, 3))
    eye = torch.eye(3, dtype=rvec.dtype, device=rvec.device).expand_as(K)
    return eye + sin * K + (1 - cos) * (K @ K)


def matrix_to_axis_angle(R: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`axis_angle_to_matrix` for angles in [0, pi)."""
    cos = ((R.diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2).clamp(-1 + 1e-7, 1 - 1e-7)
    angle = torch.acos(cos)
    w = torch.stack([R[..., 2, 1] - R[..., 1, 2], R[..., 0, 2] - R[..., 2, 0], R[..., 1, 0] - R[..., 0, 1]], -1)
    sin = torch.sin(angle)
    scale = torch.where(sin.abs() > 1e-6, angle / (2 * sin), torch.full_like(sin, 0.5))
    return w * scale[..., None]


def rot6d_to_matrix(d6: torch.Tensor) -> torch.Tensor:
    """Continuous 6D rotation (Zhou et al. 2019): first two columns, Gram-Schmidt. ``(..., 6) -> (..., 3, 3)``."""
    a1, a2 = d6[..., :3], d6[..., 3:]
    b1 = F.normalize(a1, dim=-1)
    b2 = F.normalize(a2 - (b1 * a2).sum(-1, keepdim=True) * b1, dim=-1)
    b3 = torch.cross(b1, b2, dim=-1)
    return torch.stack([b1, b2, b3], dim=-1)


def matrix_to_rot6d(R: torch.Tensor) -> torch.Tensor:
    return torch.cat([R[..., :, 0], R[..., :, 1]], dim=-1)


def vertices2joints(J_regressor: torch.Tensor, vertices: torch.Tensor) -> torch.Tensor:
    """``(J, V) x (B, V, 3) -> (B, J, 3)``."""
    return J_regressor @ vertices


def flat_dirs(dirs: torch.Tensor) -> torch.Tensor:
    """Blend directions ``(V, 3, K)`` laid out as ``(K, 3V)``, one contiguous row per coefficient: the
    layout in which ``coeffs @ dirs`` is fastest (a few coefficient rows against a wide matrix; on CPU
    2-4x faster than multiplying by the transposed ``(3V, K)`` view, measured in docs/benchmarks.md)."""
    V, C, K = dirs.shape
    return dirs.reshape(V * C, K).T.contiguous()


def blend_shapes(coeffs: torch.Tensor, dirs: torch.Tensor) -> torch.Tensor:
    """``coeffs (B, K)``, ``dirs (V, 3, K)`` or :func:`flat_dirs` ``(K, 3V)`` -> offsets ``(B, V, 3)``
    (one matrix product)."""
    if dirs.dim() == 2:
        return (coeffs @ dirs).reshape(coeffs.shape[0], -1, 3)
    V, C, K = dirs.shape
    return (coeffs @ dirs.reshape(V * C, K).T).reshape(-1, V, C)


def batch_rigid_transform(rot_mats: torch.Tensor, joints: torch.Tensor, parents: torch.Tensor):
    """Compose joint transforms along the kinematic chain.

    rot_mats (B, J, 3, 3), joints (B, J, 3) in rest pose, parents (J,) with -1 root.
    Returns posed joints (B, J, 3) and relative transforms (B, J, 4, 4) that map a
    rest-pose point to its posed position (rest joint location subtracted).
    """
    B, J = joints.shape[:2]
    rel_joints = joints.clone()
    rel_joints[:, 1:] = joints[:, 1:] - joints[:, parents[1:]]
    local = torch.cat([rot_mats, rel_joints[..., None]], dim=-1)  # (B, J, 3, 4)
    bottom = torch.zeros(B, J, 1, 4, dtype=joints.dtype, device=joints.device)
    bottom[..., 0, 3] = 1
    local = torch.cat([local, bottom], dim=-2)  # (B, J, 4, 4)
    chain = [local[:, 0]]
    for j in range(1, J):  # J is 5 for FLAME: a loop over joints, not over data
        chain.append(chain[int(parents[j])] @ local[:, j])
    world = torch.stack(chain, dim=1)
    posed_joints = world[:, :, :3, 3]
    # subtract the transformed rest joint so the transform acts on rest-pose coordinates
    shift = (world[:, :, :3, :3] @ joints[..., None])[..., 0]
    rel = world.clone()
    rel[:, :, :3, 3] = world[:, :, :3, 3] - shift
    return posed_joints, rel


def lbs(
    betas: torch.Tensor,
    rot_mats: torch.Tensor,
    v_template: torch.Tensor,
    shapedirs: torch.Tensor,
    posedirs: torch.Tensor | None,
    J_regressor: torch.Tensor,
    parents: torch.Tensor,
    lbs_weights: torch.Tensor,
):
    """Shape + pose a template.

    betas (B, K) coefficients for ``shapedirs (V, 3, K)`` (or its :func:`flat_dirs` form; identity
    and expression concatenated); rot_mats (B, J, 3, 3). ``betas`` may have a single row shared by
    all B poses (one head seen in several views): it is then blended once. Returns vertices (B, V, 3)
    and posed joints (B, J, 3). ``J_regressor`` may instead be a pair ``(J_template, J_dirs)`` of
    precomputed joint locations and joint blend directions, so that a subset of vertices can be
    posed without shaping the whole mesh.
    """
    B = rot_mats.shape[0]
    if betas.shape[0] not in (1, B):
        raise ValueError(f"lbs: {betas.shape[0]} coefficient rows for {B} poses (give 1 or {B})")
    v_shaped = v_template[None] + blend_shapes(betas, shapedirs)
    if isinstance(J_regressor, tuple):  # precomputed (J_template (J, 3), J_dirs (J, 3, K)): vertex subsets
        J = J_regressor[0][None] + blend_shapes(betas, J_regressor[1])
    else:
        J = vertices2joints(J_regressor, v_shaped)
    J = J.expand(B, -1, -1)
    v_posed = v_shaped
    if posedirs is not None:
        eye = torch.eye(3, dtype=rot_mats.dtype, device=rot_mats.device)
        pose_feature = (rot_mats[:, 1:] - eye).reshape(B, -1)
        v_posed = v_shaped + (pose_feature @ posedirs).reshape(B, -1, 3)
    posed_joints, A = batch_rigid_transform(rot_mats, J, parents)
    nJ = A.shape[1]
    T = (lbs_weights @ A[:, :, :3].reshape(B, nJ, 12)).reshape(B, -1, 3, 4)  # (B, V, 3, 4) blended
    verts = (T[..., :3] * v_posed[:, :, None, :]).sum(-1) + T[..., 3]
    return verts, posed_joints
