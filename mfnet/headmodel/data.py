"""The mfnet head-model file format: one ``.npz`` holding a FLAME-style model.

Every head model mfnet uses (FLAME 2020/2023/2023-Open converted from its
pickle, the open ICT-FaceKit converted from its OBJs) is stored as a
:class:`HeadModelData` and saved with :meth:`HeadModelData.save`.

Arrays (V vertices, F triangles, J joints, S/E shape/expression components):

================== ============== ===========================================
key                shape / dtype  meaning
================== ============== ===========================================
v_template         (V, 3) f32     mean head, metres, y up, face towards +z
faces              (F, 3) i64     triangles (counter-clockwise seen from outside)
shapedirs          (V, 3, S) f32  identity basis (coefficients ~ N(0, 1))
exprdirs           (V, 3, E) f32  expression basis
posedirs           (P, 3V) f32    pose correctives, smplx layout, P = 9 (J-1);
                                  optional (absent: no correctives)
J_regressor        (J, V) f32     joints from the shaped template
weights            (V, J) f32     skinning weights, rows sum to 1
parents            (J,) i64       kinematic tree, parents[0] = -1
lmk_faces_idx      (68,) i64      static iBUG-68 embedding: face per landmark
lmk_bary_coords    (68, 3) f32    ... and its barycentric coordinates
dyn_lmk_faces_idx  (79, 17) i64   optional dynamic jaw-contour embedding
dyn_lmk_bary_coords(79, 17, 3)    (FLAME/RingNet convention, rows by yaw)
mp_lmk_faces_idx   (M,) i64       optional MediaPipe embedding
mp_lmk_bary_coords (M, 3) f32
mp_lmk_indices     (M,) i64       which of the 478 MediaPipe points
vt                 (T, 2) f32     optional UV coordinates in [0, 1], v up
ft                 (F, 3) i64     optional UV index per face corner
mask__<region>     (k,) i64       vertex indices of a named region
emb__<name>__faces (68,) i64      optional extra 68-point embeddings, e.g. one
emb__<name>__bary  (68, 3) f32    calibrated to a detector (see calibrate.py)
meta               json str       name, version, source, license, units ...
================== ============== ===========================================

Joints follow FLAME: 0 global, 1 neck, 2 jaw, 3 left eye, 4 right eye.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import MfnetError
from ..utils.io import atomic_path, npz_problem

FORMAT_VERSION = 1
JOINT_NAMES = ("global", "neck", "jaw", "eye_left", "eye_right")
FLAME_PARENTS = np.array([-1, 0, 1, 1, 1], dtype=np.int64)


class HeadModelError(MfnetError, ValueError):
    """A head-model file is missing, unreadable or malformed."""


@dataclass
class HeadModelData:
    v_template: np.ndarray
    faces: np.ndarray
    shapedirs: np.ndarray
    exprdirs: np.ndarray
    J_regressor: np.ndarray
    weights: np.ndarray
    parents: np.ndarray
    lmk_faces_idx: np.ndarray
    lmk_bary_coords: np.ndarray
    posedirs: np.ndarray | None = None
    dyn_lmk_faces_idx: np.ndarray | None = None
    dyn_lmk_bary_coords: np.ndarray | None = None
    mp_lmk_faces_idx: np.ndarray | None = None
    mp_lmk_bary_coords: np.ndarray | None = None
    mp_lmk_indices: np.ndarray | None = None
    vt: np.ndarray | None = None
    ft: np.ndarray | None = None
    masks: dict[str, np.ndarray] = field(default_factory=dict)
    meta: dict = field(default_factory=dict)
    embeddings: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)

    # ------------------------------------------------------------------ sizes
    @property
    def num_vertices(self) -> int:
        return int(self.v_template.shape[0])

    @property
    def num_faces(self) -> int:
        return int(self.faces.shape[0])

    @property
    def num_shape(self) -> int:
        return int(self.shapedirs.shape[2])

    @property
    def num_expression(self) -> int:
        return int(self.exprdirs.shape[2])

    @property
    def num_joints(self) -> int:
        return int(self.parents.shape[0])

    @property
    def name(self) -> str:
        return str(self.meta.get("name", "unnamed"))

    # ------------------------------------------------------------- validation
    def validate(self, source: str = "head model") -> "HeadModelData":
        """Check shapes, dtypes and ranges; raise one readable HeadModelError."""
        problems = self._mesh_problems() + self._skeleton_problems() + self._embedding_problems()
        for key in ("v_template", "shapedirs", "exprdirs", "weights", "J_regressor"):
            a = getattr(self, key)
            if a.size and not np.isfinite(a).all():
                problems.append(f"{key} contains NaN or inf")
        if problems:
            raise HeadModelError(f"{source}: invalid head model:\n  - " + "\n  - ".join(problems))
        return self

    @property
    def _num_vertices(self) -> int:
        return self.v_template.shape[0] if self.v_template.ndim == 2 else -1

    def _mesh_problems(self) -> list[str]:
        """What is wrong with the template, the faces, the blendshapes, the UVs and the masks."""
        V, out = self._num_vertices, []
        need = _collector(out)
        need(self.v_template.ndim == 2 and self.v_template.shape[1] == 3,
             f"v_template must be (V, 3), got {self.v_template.shape}")
        need(self.faces.ndim == 2 and self.faces.shape[1] == 3,
             f"faces must be (F, 3) triangles, got {self.faces.shape}")
        if self.faces.size and V > 0:
            need(int(self.faces.min()) >= 0 and int(self.faces.max()) < V,
                 f"faces index vertices outside [0, {V})")
        for key in ("shapedirs", "exprdirs"):
            a = getattr(self, key)
            need(a.ndim == 3 and a.shape[:2] == (V, 3),
                 f"{key} must be (V={V}, 3, K), got {a.shape}")
        if self.vt is not None or self.ft is not None:
            need(self.vt is not None and self.ft is not None, "UVs need both vt and ft")
            if self.vt is not None and self.ft is not None:
                need(self.vt.ndim == 2 and self.vt.shape[1] == 2, f"vt must be (T, 2), got {self.vt.shape}")
                need(self.ft.shape == self.faces.shape, f"ft must match faces {self.faces.shape}, got {self.ft.shape}")
                if self.ft.size:
                    need(int(self.ft.max()) < self.vt.shape[0], "ft indexes vt out of range")
        for name, idx in self.masks.items():
            need(idx.ndim == 1 and (idx.size == 0 or (int(idx.min()) >= 0 and int(idx.max()) < V)),
                 f"mask '{name}' must be vertex indices in [0, {V})")
        return out

    def _skeleton_problems(self) -> list[str]:
        """What is wrong with the kinematic tree, the joint regressor, the skinning weights and posedirs."""
        V, J, out = self._num_vertices, self.parents.shape[0], []
        need = _collector(out)
        need(self.parents.ndim == 1 and J >= 1 and int(self.parents[0]) == -1,
             "parents must be a 1-D kinematic tree with parents[0] == -1")
        if J >= 1:
            need(all(0 <= int(self.parents[j]) < j for j in range(1, J)),
                 "parents must list each joint after its parent")
        need(self.J_regressor.shape == (J, V),
             f"J_regressor must be (J={J}, V={V}), got {self.J_regressor.shape}")
        need(self.weights.shape == (V, J),
             f"weights must be (V={V}, J={J}), got {self.weights.shape}")
        if self.weights.shape == (V, J) and V > 0:
            err = float(np.abs(self.weights.sum(1) - 1).max())
            need(err < 1e-3, f"skinning weights rows must sum to 1 (max error {err:.3g})")
        if self.posedirs is not None:
            need(self.posedirs.shape == (9 * (J - 1), 3 * V),
                 f"posedirs must be ({9 * (J - 1)}, {3 * V}), got {self.posedirs.shape}")
        return out

    def _embedding_problems(self) -> list[str]:
        """What is wrong with the landmark embeddings (static, dynamic, MediaPipe's, the named ones)."""
        F, out = self.faces.shape[0], []
        need = _collector(out)
        need(self.lmk_faces_idx.ndim == 1 and self.lmk_bary_coords.shape == (self.lmk_faces_idx.shape[0], 3),
             f"landmark embedding must be (L,) faces + (L, 3) barycentrics, got "
             f"{self.lmk_faces_idx.shape} and {self.lmk_bary_coords.shape}")
        if self.lmk_faces_idx.size:
            need(int(self.lmk_faces_idx.min()) >= 0 and int(self.lmk_faces_idx.max()) < F,
                 "lmk_faces_idx indexes faces outside the mesh")
        if self.dyn_lmk_faces_idx is not None:
            need(self.dyn_lmk_bary_coords is not None
                 and self.dyn_lmk_bary_coords.shape == self.dyn_lmk_faces_idx.shape + (3,),
                 "dynamic landmark embedding needs matching faces (R, K) and barycentrics (R, K, 3)")
        if self.mp_lmk_faces_idx is not None:
            M = self.mp_lmk_faces_idx.shape[0]
            need(self.mp_lmk_bary_coords is not None and self.mp_lmk_bary_coords.shape == (M, 3)
                 and self.mp_lmk_indices is not None and self.mp_lmk_indices.shape == (M,),
                 "MediaPipe embedding needs mp_lmk_faces_idx (M,), mp_lmk_bary_coords (M, 3), mp_lmk_indices (M,)")
        for name, (ef, eb) in self.embeddings.items():
            need(ef.ndim == 1 and eb.shape == (ef.shape[0], 3) and (ef.size == 0 or int(ef.max()) < F),
                 f"embedding '{name}' must be (L,) face indices < {F} and (L, 3) barycentrics")
        return out

    # ----------------------------------------------------------------- saving
    def to_arrays(self) -> dict[str, np.ndarray]:
        arrays: dict[str, np.ndarray] = {
            "v_template": self.v_template.astype(np.float32),
            "faces": self.faces.astype(np.int64),
            "shapedirs": self.shapedirs.astype(np.float32),
            "exprdirs": self.exprdirs.astype(np.float32),
            "J_regressor": self.J_regressor.astype(np.float32),
            "weights": self.weights.astype(np.float32),
            "parents": self.parents.astype(np.int64),
            "lmk_faces_idx": self.lmk_faces_idx.astype(np.int64),
            "lmk_bary_coords": self.lmk_bary_coords.astype(np.float32),
        }
        optional = {
            "posedirs": np.float32, "dyn_lmk_faces_idx": np.int64, "dyn_lmk_bary_coords": np.float32,
            "mp_lmk_faces_idx": np.int64, "mp_lmk_bary_coords": np.float32, "mp_lmk_indices": np.int64,
            "vt": np.float32, "ft": np.int64,
        }
        for key, dtype in optional.items():
            value = getattr(self, key)
            if value is not None:
                arrays[key] = np.asarray(value).astype(dtype)
        for name, idx in self.masks.items():
            arrays[f"mask__{name}"] = np.asarray(idx, dtype=np.int64)
        for name, (ef, eb) in self.embeddings.items():
            arrays[f"emb__{name}__faces"] = np.asarray(ef, dtype=np.int64)
            arrays[f"emb__{name}__bary"] = np.asarray(eb, dtype=np.float32)
        meta = dict(self.meta)
        meta.setdefault("format_version", FORMAT_VERSION)
        meta.update(num_vertices=self.num_vertices, num_faces=self.num_faces, num_shape=self.num_shape,
                    num_expression=self.num_expression, has_uvs=self.vt is not None,
                    has_dynamic_contour=self.dyn_lmk_faces_idx is not None, masks=sorted(self.masks),
                    embeddings=sorted(self.embeddings))
        arrays["meta"] = np.array(json.dumps(meta))
        return arrays

    def save(self, path: str | os.PathLike) -> Path:
        """Validate, then write atomically (temp file + rename)."""
        self.validate(str(path))
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:  # the file gets the umask's mode, like any file the user writes
            with open(tmp, "wb") as fh:
                np.savez_compressed(fh, **self.to_arrays())
        return path

    @staticmethod
    def read_meta(path: str | os.PathLike) -> dict:
        """Only the metadata (names, counts), without decompressing the arrays."""
        try:
            with np.load(path, allow_pickle=False) as z:
                return json.loads(str(z["meta"])) if "meta" in z.files else {}
        except Exception:
            raise HeadModelError(f"{path}: not a readable mfnet head-model .npz: {npz_problem(path)}") from None

    @classmethod
    def load(cls, path: str | os.PathLike) -> "HeadModelData":
        path = Path(path)
        if not path.exists():
            raise HeadModelError(f"{path}: no such head-model file")
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except Exception:  # zipfile/npz errors vary by cause
            raise HeadModelError(f"{path}: not a readable mfnet head-model .npz: {npz_problem(path)}; pass an "
                                 "installed model name or an .npz written by `mfnet models add`") from None
        required = ("v_template", "faces", "shapedirs", "exprdirs", "J_regressor", "weights",
                    "parents", "lmk_faces_idx", "lmk_bary_coords")
        missing = [k for k in required if k not in arrays]
        if missing:
            raise HeadModelError(f"{path}: not an mfnet head model, missing arrays: {', '.join(missing)}")
        meta = json.loads(str(arrays.pop("meta"))) if "meta" in arrays else {}
        masks = {k[len("mask__"):]: arrays.pop(k) for k in list(arrays) if k.startswith("mask__")}
        emb_names = {k.split("__")[1] for k in arrays if k.startswith("emb__")}
        embeddings = {n: (arrays.pop(f"emb__{n}__faces"), arrays.pop(f"emb__{n}__bary")) for n in emb_names
                      if f"emb__{n}__faces" in arrays and f"emb__{n}__bary" in arrays}
        known = set(cls.__dataclass_fields__) - {"masks", "meta", "embeddings"}
        data = cls(**{k: v for k, v in arrays.items() if k in known}, masks=masks, meta=meta, embeddings=embeddings)
        return data.validate(str(path))


def _collector(problems: list[str]):
    """``need(cond, msg)``: append ``msg`` to ``problems`` when ``cond`` is false."""
    def need(cond: bool, msg: str) -> None:
        if not cond:
            problems.append(msg)
    return need
