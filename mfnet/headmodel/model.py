"""`HeadModel`: the FLAME layer as a torch module, for any model in the mfnet format."""
from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .data import HeadModelData
from .landmarks import contour_rows_from_rotation, vertices_to_landmarks
from .lbs import axis_angle_to_matrix, flat_dirs, lbs, rot6d_to_matrix

POSE_JOINTS = 5  # global, neck, jaw, eye_left, eye_right


@dataclass
class HeadOutput:
    vertices: torch.Tensor  # (B, V, 3)
    landmarks: torch.Tensor  # (B, 68, 3) iBUG order
    joints: torch.Tensor  # (B, J, 3) posed joints
    mp_landmarks: torch.Tensor | None = None  # (B, M, 3) MediaPipe-embedded points, if the model has them


class HeadModel(nn.Module):
    """FLAME-style morphable head: ``forward(shape, expression, pose, translation)``.

    * ``shape`` (B, S) identity coefficients, ``expression`` (B, E);
    * ``pose`` (B, 15) or (B, 5, 3) axis-angle for [global, neck, jaw, eye_l, eye_r],
      or (B, 5, 6) / (B, 30) continuous 6D rotations when ``pose_repr='6d'``,
      or (B, 5, 3, 3) rotation matrices;
    * ``translation`` (B, 3) added last.

    Missing arguments default to zeros (the batch size comes from whichever is given).
    Landmarks come from the final vertices; with ``dynamic_contour=True`` and a model
    that ships FLAME's dynamic embedding, the 17 jaw-line points follow head yaw.
    ``landmarks_only=True`` poses just the vertices the landmarks need (much faster for
    landmark fitting); ``vertices`` then holds only that subset.
    """

    def __init__(self, data: HeadModelData, n_shape: int | None = None, n_expr: int | None = None,
                 dtype: torch.dtype = torch.float32):
        super().__init__()
        data.validate(data.name)
        self.data_meta = dict(data.meta)
        self.name = data.name
        self.n_shape = data.num_shape if n_shape is None else min(int(n_shape), data.num_shape)
        self.n_expr = data.num_expression if n_expr is None else min(int(n_expr), data.num_expression)

        def f(a):
            return torch.as_tensor(np.asarray(a), dtype=dtype)

        def i(a):
            return torch.as_tensor(np.asarray(a).astype(np.int64))

        self.register_buffer("v_template", f(data.v_template))
        dirs = np.concatenate([data.shapedirs[:, :, : self.n_shape], data.exprdirs[:, :, : self.n_expr]], axis=2)
        self.register_buffer("shapedirs", f(dirs))
        self.register_buffer("_dirs_flat", flat_dirs(self.shapedirs), persistent=False)  # what lbs multiplies
        self.register_buffer("posedirs", f(data.posedirs) if data.posedirs is not None else None)
        self.register_buffer("J_regressor", f(data.J_regressor))
        self.register_buffer("lbs_weights", f(data.weights))
        self.register_buffer("parents", i(data.parents))
        self.register_buffer("faces", i(data.faces))
        self.register_buffer("lmk_faces_idx", i(data.lmk_faces_idx))
        self.register_buffer("lmk_bary_coords", f(data.lmk_bary_coords))
        has_dyn = data.dyn_lmk_faces_idx is not None
        self.register_buffer("dyn_lmk_faces_idx", i(data.dyn_lmk_faces_idx) if has_dyn else None)
        self.register_buffer("dyn_lmk_bary_coords", f(data.dyn_lmk_bary_coords) if has_dyn else None)
        has_mp = data.mp_lmk_faces_idx is not None
        self.register_buffer("mp_lmk_faces_idx", i(data.mp_lmk_faces_idx) if has_mp else None)
        self.register_buffer("mp_lmk_bary_coords", f(data.mp_lmk_bary_coords) if has_mp else None)
        self.register_buffer("mp_lmk_indices", i(data.mp_lmk_indices) if has_mp else None)
        self.register_buffer("vt", f(data.vt) if data.vt is not None else None)
        self.register_buffer("ft", i(data.ft) if data.ft is not None else None)
        self.masks = {k: torch.as_tensor(v.astype(np.int64)) for k, v in data.masks.items()}
        self._data = data
        self.embedding_name = "static"
        self._build_landmark_subset(data, dtype)

    @property
    def embeddings(self) -> list[str]:
        return ["static", *sorted(self._data.embeddings)]

    def extra_embedding(self, name: str) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(faces (L,), bary (L, 3)) of a stored embedding such as 'mediapipe478', on this device."""
        if name not in self._data.embeddings:
            return None
        f, b = self._data.embeddings[name]
        dev, dt = self.v_template.device, self.v_template.dtype
        return torch.as_tensor(np.asarray(f, np.int64), device=dev), torch.as_tensor(np.asarray(b), dtype=dt, device=dev)

    def use_landmark_embedding(self, name: str) -> bool:
        """Switch the 68 landmarks to a detector-calibrated embedding (e.g. 'mediapipe') when the
        model has one; 'static' restores the model's own. Returns whether ``name`` is in use."""
        if name != "static" and (name not in self._data.embeddings or len(self._data.embeddings[name][0]) != 68):
            return False
        if name == self.embedding_name:
            return True
        faces, bary = ((self._data.lmk_faces_idx, self._data.lmk_bary_coords) if name == "static"
                       else self._data.embeddings[name])
        dev, dt = self.v_template.device, self.v_template.dtype
        self.lmk_faces_idx = torch.as_tensor(np.asarray(faces, np.int64), device=dev)
        self.lmk_bary_coords = torch.as_tensor(np.asarray(bary), dtype=dt, device=dev)
        from dataclasses import replace

        self._build_landmark_subset(replace(self._data, lmk_faces_idx=np.asarray(faces), lmk_bary_coords=bary), dt)
        self.embedding_name = name
        return True

    def _build_landmark_subset(self, data: HeadModelData, dtype) -> None:
        """Vertices touched by the landmark embeddings, for a cheap landmarks-only forward."""
        dev = self.v_template.device
        faces_used = [np.asarray(data.lmk_faces_idx).reshape(-1)]
        if data.dyn_lmk_faces_idx is not None:
            faces_used.append(data.dyn_lmk_faces_idx.reshape(-1))
        ids = np.unique(data.faces[np.concatenate(faces_used)].reshape(-1))
        remap = np.full(data.num_vertices, -1, np.int64)
        remap[ids] = np.arange(len(ids))
        vid = torch.as_tensor(ids.astype(np.int64), device=dev)
        Jt = data.J_regressor.astype(np.float64) @ data.v_template.astype(np.float64)
        Jd = np.einsum("jv,vck->jck", data.J_regressor.astype(np.float64), self.shapedirs.detach().double().cpu().numpy())
        template, shapedirs, weights, posedirs = subset_bases(self, vid)
        subset = {"_lmk_vids": vid, "_lmk_faces_remap": torch.as_tensor(remap[data.faces], device=dev),
                  "_J_template": torch.as_tensor(Jt, dtype=dtype, device=dev),
                  "_J_dirs": flat_dirs(torch.as_tensor(Jd, dtype=dtype, device=dev)),
                  "_lmk_template": template, "_lmk_shapedirs": shapedirs, "_lmk_weights": weights,
                  "_lmk_posedirs": posedirs}
        for name, value in subset.items():
            self.register_buffer(name, value, persistent=False)

    # ----------------------------------------------------------------- loading
    @classmethod
    def from_file(cls, path: str | Path, **kwargs) -> "HeadModel":
        return cls(HeadModelData.load(path), **kwargs)

    @property
    def num_vertices(self) -> int:
        return int(self.v_template.shape[0])

    @property
    def has_dynamic_contour(self) -> bool:
        return self.dyn_lmk_faces_idx is not None

    @property
    def expression_bounds(self) -> tuple[float, float] | None:
        """(0, 1) for blendshape-activation models (ICT-FaceKit), None for PCA codes (FLAME)."""
        conv = str(self.data_meta.get("expression_coefficients", ""))
        return (0.0, 1.0) if "[0, 1]" in conv else None

    def template_landmarks(self) -> torch.Tensor:
        """(68, 3) the model's own (static) iBUG landmarks on the mean head, whichever embedding is in use."""
        d = self._data
        corners = np.asarray(d.faces)[np.asarray(d.lmk_faces_idx)]  # (68, 3) vertex ids
        tri = self.v_template[torch.as_tensor(corners, device=self.v_template.device)]
        bary = torch.as_tensor(np.asarray(d.lmk_bary_coords), dtype=tri.dtype, device=tri.device)
        return (tri * bary[..., None]).sum(1)

    @property
    def has_uvs(self) -> bool:
        return self.vt is not None

    def _apply(self, fn, recurse: bool = True):
        """``.to()`` / ``.cuda()`` / ``.double()`` move the named vertex masks with the buffers (they are
        index tensors in a plain dict, which ``nn.Module`` would not see)."""
        out = super()._apply(fn, recurse)
        self.masks = {k: fn(v) for k, v in self.masks.items()}
        return out

    def shallow_copy(self) -> "HeadModel":
        """A new model object sharing this one's tensors (no memory copied): moving the copy (``.to``)
        or switching its landmark embedding leaves this model as it was."""
        new = copy.copy(self)
        new._parameters, new._buffers, new._modules = dict(self._parameters), dict(self._buffers), dict(self._modules)
        new._non_persistent_buffers_set = set(self._non_persistent_buffers_set)
        new.masks = dict(self.masks)
        return new

    def vertex_subset(self, vertex_ids: torch.Tensor) -> "VertexSubset":
        """A callable that poses only ``vertex_ids`` (same result as ``forward(...).vertices[:, ids]``)."""
        return VertexSubset(self, vertex_ids)

    # ----------------------------------------------------------------- forward
    def pose_to_matrices(self, pose: torch.Tensor, pose_repr: str = "axis_angle") -> torch.Tensor:
        B = pose.shape[0]
        if pose_repr == "matrix" or (pose.dim() == 4 and pose.shape[-2:] == (3, 3)):
            return pose.reshape(B, POSE_JOINTS, 3, 3)
        if pose_repr == "6d":
            return rot6d_to_matrix(pose.reshape(B, POSE_JOINTS, 6))
        if pose_repr == "axis_angle":
            return axis_angle_to_matrix(pose.reshape(B, POSE_JOINTS, 3))
        raise ValueError(f"unknown pose_repr {pose_repr!r}: use 'axis_angle', '6d' or 'matrix'")

    def forward(self, shape: torch.Tensor | None = None, expression: torch.Tensor | None = None,
                pose: torch.Tensor | None = None, translation: torch.Tensor | None = None,
                pose_repr: str = "axis_angle", dynamic_contour: bool = False,
                landmarks_only: bool = False) -> HeadOutput:
        given = [t for t in (shape, expression, pose, translation) if t is not None]
        B = max(t.shape[0] for t in given) if given else 1  # shape/expression may be one row for all poses
        dev, dt = self.v_template.device, self.v_template.dtype
        if shape is None:
            shape = torch.zeros(B, self.n_shape, device=dev, dtype=dt)
        if expression is None:
            expression = torch.zeros(B, self.n_expr, device=dev, dtype=dt)
        if shape.shape[-1] != self.n_shape or expression.shape[-1] != self.n_expr:
            raise ValueError(f"{self.name}: expected shape (B, {self.n_shape}) and expression (B, {self.n_expr}), "
                             f"got {tuple(shape.shape)} and {tuple(expression.shape)}")
        if pose is None:
            rot = torch.eye(3, device=dev, dtype=dt).expand(B, POSE_JOINTS, 3, 3)
        else:
            rot = self.pose_to_matrices(pose, pose_repr)
        if shape.shape[0] != expression.shape[0]:
            n = max(shape.shape[0], expression.shape[0])
            shape, expression = shape.expand(n, -1), expression.expand(n, -1)
        coeffs = torch.cat([shape, expression], dim=1).to(dt)
        faces = self.faces
        if landmarks_only:  # pose only the vertices the landmark embeddings touch
            verts, joints = lbs(coeffs, rot.to(dt), self._lmk_template, self._lmk_shapedirs, self._lmk_posedirs,
                                (self._J_template, self._J_dirs), self.parents, self._lmk_weights)
            faces = self._lmk_faces_remap
        else:
            verts, joints = lbs(coeffs, rot.to(dt), self.v_template, self._dirs_flat, self.posedirs,
                                self.J_regressor, self.parents, self.lbs_weights)
        if translation is not None:
            verts = verts + translation[:, None, :].to(dt)
            joints = joints + translation[:, None, :].to(dt)
        lmk_faces, lmk_bary = self.lmk_faces_idx, self.lmk_bary_coords
        if dynamic_contour and self.has_dynamic_contour:
            rows = contour_rows_from_rotation(rot[:, 0] @ rot[:, 1])
            lmk_faces = torch.cat([self.dyn_lmk_faces_idx[rows], lmk_faces[17:].expand(B, -1)], dim=1)
            lmk_bary = torch.cat([self.dyn_lmk_bary_coords[rows], lmk_bary[17:].expand(B, -1, -1)], dim=1)
        landmarks = vertices_to_landmarks(verts, faces, lmk_faces, lmk_bary)
        mp = None
        if self.mp_lmk_faces_idx is not None and not landmarks_only:
            mp = vertices_to_landmarks(verts, faces, self.mp_lmk_faces_idx, self.mp_lmk_bary_coords)
        return HeadOutput(vertices=verts, landmarks=landmarks, joints=joints, mp_landmarks=mp)


def xyz_columns(vertex_ids: torch.Tensor) -> torch.Tensor:
    """Columns ``3i, 3i+1, 3i+2`` of each vertex ``i`` in a ``(., 3V)`` array (flat blend/pose directions)."""
    return (vertex_ids[:, None] * 3 + torch.arange(3, device=vertex_ids.device)).reshape(-1)


def subset_bases(model: HeadModel, vertex_ids: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The template (K, 3), flat blend directions (D, 3K), skinning weights (K, J) and pose correctives
    (P, 3K) or None of the vertices ``vertex_ids`` (K,): what :func:`lbs` needs to pose only them."""
    cols = xyz_columns(vertex_ids)
    posedirs = None if model.posedirs is None else model.posedirs[:, cols].contiguous()
    return (model.v_template[vertex_ids].clone(), model._dirs_flat[:, cols], model.lbs_weights[vertex_ids].contiguous(),
            posedirs)


class VertexSubset:
    """Pose a fixed subset of a :class:`HeadModel`'s vertices, with the bases gathered once.

    Joints come from the model's precomputed joint directions, so the result is exact."""

    def __init__(self, model: HeadModel, vertex_ids: torch.Tensor):
        vid = vertex_ids.to(model.v_template.device, torch.long)
        self.model, self.vertex_ids = model, vid
        self.template, self.shapedirs, self.weights, self.posedirs = subset_bases(model, vid)

    def __call__(self, shape: torch.Tensor, expression: torch.Tensor, pose: torch.Tensor,
                 pose_repr: str = "axis_angle") -> torch.Tensor:
        m = self.model
        rot = m.pose_to_matrices(pose, pose_repr).to(m.v_template.dtype)
        coeffs = torch.cat([shape, expression], dim=1).to(m.v_template.dtype)
        verts, _ = lbs(coeffs, rot, self.template, self.shapedirs, self.posedirs, (m._J_template, m._J_dirs),
                       m.parents, self.weights)
        return verts
