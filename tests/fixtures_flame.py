"""Writers of faithful stand-ins for the (licensed, unavailable) FLAME files.

The layouts follow docs in /work/shared/reference/flame-format.md:

* :class:`Py2Pickler` writes pickles the way Python 2 did: ``str``/``bytes`` as
  ``STRING``/``BINSTRING`` opcodes, Python 2 module names (``__builtin__``,
  ``copy_reg``, ``numpy.core.multiarray``, ``scipy.sparse.csc``);
* :func:`fake_chumpy` temporarily installs throw-away modules ``chumpy``,
  ``chumpy.ch`` (class ``Ch``) and ``chumpy.reordering`` (class ``Select``) so the
  pickles reference the real chumpy global names;
* DECA's ``landmark_embedding.npy`` is written with ``numpy.save`` of a 0-d object
  array whose dict holds real torch tensors (torch's legacy in-pickle format).
"""
from __future__ import annotations

import contextlib
import pickle
import sys
import types
from pathlib import Path

import numpy as np
import scipy.sparse as sp

PY2_MODULES = {
    "builtins": "__builtin__", "copyreg": "copy_reg",
    "numpy._core.multiarray": "numpy.core.multiarray", "numpy._core.numeric": "numpy.core.numeric",
    "scipy.sparse._csc": "scipy.sparse.csc", "scipy.sparse._csr": "scipy.sparse.csr",
}


class Py2Pickler(pickle._Pickler):
    """Pure-Python pickler emitting Python-2-style opcodes and module names (protocols 0-2)."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_py2_str(self, obj):
        data = obj.encode("latin1") if isinstance(obj, str) else bytes(obj)
        if self.proto == 0:
            self.write(pickle.STRING + repr(data)[1:].encode("ascii") + b"\n")
        elif len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + len(data).to_bytes(4, "little") + data)
        self.memoize(obj)

    dispatch[str] = save_py2_str
    dispatch[bytes] = save_py2_str

    def save_global(self, obj, name=None):
        name = name or obj.__qualname__
        module = pickle.whichmodule(obj, name)
        module = PY2_MODULES.get(module, module)
        self.write(pickle.GLOBAL + f"{module}\n{name}\n".encode("ascii"))
        self.memoize(obj)

    dispatch[type] = save_global
    dispatch[types.FunctionType] = save_global


def py2_dumps(obj, protocol: int = 2) -> bytes:
    import io

    buf = io.BytesIO()
    Py2Pickler(buf, protocol).dump(obj)
    return buf.getvalue()


@contextlib.contextmanager
def fake_chumpy():
    """Install throw-away ``chumpy`` modules (classes Ch, Select) while writing fixtures."""
    names = ("chumpy", "chumpy.ch", "chumpy.reordering")
    saved = {n: sys.modules.get(n) for n in names}
    pkg, ch, reo = (types.ModuleType(n) for n in names)
    Ch = type("Ch", (object,), {"__module__": "chumpy.ch"})
    Select = type("Select", (object,), {"__module__": "chumpy.reordering"})
    ch.Ch, reo.Select, pkg.ch, pkg.reordering = Ch, Select, ch, reo
    sys.modules.update({"chumpy": pkg, "chumpy.ch": ch, "chumpy.reordering": reo})
    try:
        yield Ch, Select
    finally:
        for n, m in saved.items():
            if m is None:
                sys.modules.pop(n, None)
            else:
                sys.modules[n] = m


def make_ch(Ch, x: np.ndarray):
    """A chumpy-like object with the state dict of a pickled ``chumpy.Ch``."""
    obj = Ch()
    obj.__dict__.update({"x": x, "_dirty_vars": {"x"}, "_itr": None, "_depends_on_deps": {}})
    return obj


def random_faces(rng, V: int, F: int) -> np.ndarray:
    return np.stack([rng.choice(V, 3, replace=False) for _ in range(F)]).astype(np.uint32)


def make_flame_arrays(V: int = 40, F: int = 60, n_comp: int = 400, seed: int = 0) -> dict:
    """Random arrays with FLAME's keys, dtypes and layouts (5 joints, 36 pose correctives)."""
    rng = np.random.default_rng(seed)
    J = 5
    weights = rng.random((V, J)) + 0.01
    weights /= weights.sum(1, keepdims=True)
    jreg = np.zeros((J, V))
    for j in range(J):
        idx = rng.choice(V, 6, replace=False)
        jreg[j, idx] = rng.random(6) + 0.1
    jreg /= jreg.sum(1, keepdims=True)
    v_template = rng.normal(0, 0.06, (V, 3))
    return {
        "v_template": v_template,
        "f": random_faces(rng, V, F) if F <= 1000 else rng.integers(0, V, (F, 3)).astype(np.uint32),
        "shapedirs": rng.normal(0, 1e-3, (V, 3, n_comp)),
        "posedirs": rng.normal(0, 1e-3, (V, 3, 36)),
        "J_regressor": sp.csc_matrix(jreg),
        "weights": weights,
        "kintree_table": np.array([[4294967295, 0, 1, 1, 1], [0, 1, 2, 3, 4]], dtype=np.int64),
        "J": jreg @ v_template,
        "bs_style": "lbs",
        "bs_type": "lrotmin",
    }


def write_flame_pickle(path, arrays: dict, *, protocol: int = 2, variant: str = "2020",
                       drop: tuple = (), override: dict | None = None) -> Path:
    """Write a FLAME model pickle.

    variant '2020'/'2023': Python 2 pickle, shapedirs as chumpy ``Ch`` (protocol 0, 1 or 2);
    variant 'open': FLAME 2023 Open, plain numpy/scipy Python 3 pickle with
    ``supr_expression_metadata``.
    """
    d = {k: v for k, v in arrays.items() if k not in drop}
    d.update(override or {})
    path = Path(path)
    if variant == "open":
        d["supr_expression_metadata"] = {"expr_source": "SUPR", "supr_gender": "neutral",
                                         "expr_components": "last_100", "n_expr": 100}
        path.write_bytes(pickle.dumps(d, protocol=protocol if protocol > 2 else 4))
        return path
    with fake_chumpy() as (Ch, _Select):
        if "shapedirs" in d and isinstance(d["shapedirs"], np.ndarray):
            d["shapedirs"] = make_ch(Ch, d["shapedirs"])
        path.write_bytes(py2_dumps(d, protocol))
    return path


def bary(rng, n) -> np.ndarray:
    b = rng.random((n, 3)) + 0.05
    return b / b.sum(-1, keepdims=True)


def make_embedding(F: int, seed: int = 1) -> dict:
    """Ground-truth embedding: 17 contour (dynamic rows) + 51 static points."""
    rng = np.random.default_rng(seed)
    return {
        "static_faces": rng.integers(0, F, 51).astype(np.int64),
        "static_bary": bary(rng, 51),
        "dyn_faces": rng.integers(0, F, (79, 17)).astype(np.int64),
        "dyn_bary": bary(rng, 79 * 17).reshape(79, 17, 3),
    }


def write_deca_landmark_embedding(path, emb: dict) -> Path:
    """DECA ``landmark_embedding.npy``: numpy.save of a 0-d object array; dynamic parts are torch tensors."""
    import torch

    full_faces = np.concatenate([emb["dyn_faces"][0], emb["static_faces"]])[None]
    full_bary = np.concatenate([emb["dyn_bary"][0], emb["static_bary"]])[None]
    # a non-contiguous tensor and one with a storage offset exercise strides/offsets
    dyn_bary = torch.from_numpy(np.ascontiguousarray(emb["dyn_bary"].astype(np.float32).transpose(1, 0, 2)))
    big = torch.from_numpy(np.concatenate([np.full((1, 17), -7, np.int64), emb["dyn_faces"]]))
    d = {
        "static_lmk_faces_idx": emb["static_faces"],
        "static_lmk_bary_coords": emb["static_bary"],
        "dynamic_lmk_faces_idx": big[1:],
        "dynamic_lmk_bary_coords": dyn_bary.permute(1, 0, 2),
        "full_lmk_faces_idx": full_faces,
        "full_lmk_bary_coords": full_bary,
    }
    arr = np.empty((), dtype=object)
    arr[()] = d
    np.save(path, arr, allow_pickle=True)
    return Path(path)


def write_ringnet_static(path, faces: np.ndarray, bary_: np.ndarray, protocol: int = 0) -> Path:
    """RingNet/TF_FLAME ``flame_static_embedding*.pkl``: Python 2 pickle {lmk_face_idx, lmk_b_coords}."""
    d = {"lmk_face_idx": faces.astype(np.uint32), "lmk_b_coords": bary_.astype(np.float64)}
    Path(path).write_bytes(py2_dumps(d, protocol))
    return Path(path)


def write_py2_npy_object(path, obj, protocol: int = 2) -> Path:
    """A ``.npy`` holding a 0-d object array pickled by Python 2 (as RingNet's files)."""
    arr = np.empty((), dtype=object)
    arr[()] = obj
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, np.lib.format.header_data_from_array_1_0(arr))
        f.write(py2_dumps(arr, protocol))
    return Path(path)


def write_ringnet_dynamic(path, emb: dict) -> Path:
    """RingNet ``flame_dynamic_embedding.npy``: lists of 79 arrays (17,) and (17, 3)."""
    d = {"lmk_face_idx": [r.astype(np.int64) for r in emb["dyn_faces"]],
         "lmk_b_coords": [r for r in emb["dyn_bary"]]}
    return write_py2_npy_object(path, d)


def write_mediapipe_embedding(path, F: int, seed: int = 2) -> dict:
    rng = np.random.default_rng(seed)
    d = {"lmk_face_idx": rng.integers(0, F, 105).astype(np.uint32), "lmk_b_coords": bary(rng, 105),
         "landmark_indices": rng.choice(468, 105, replace=False).astype(np.int64)}
    np.savez(path, **d)
    return d


MASK_NAMES = ("face", "forehead", "nose", "lips", "eye_region", "left_eye_region", "right_eye_region",
              "left_eyeball", "right_eyeball", "left_ear", "right_ear", "scalp", "neck", "boundary")


def write_flame_masks(path, V: int, seed: int = 3) -> dict:
    rng = np.random.default_rng(seed)
    masks = {n: np.sort(rng.choice(V, rng.integers(1, V // 2), replace=False)).astype(np.int64)
             for n in MASK_NAMES}
    Path(path).write_bytes(py2_dumps(masks, 2))
    return masks


def make_uvs(faces: np.ndarray, seed: int = 4):
    """vt (T, 2) in [0, 1] with T > V (seams) and 0-based ft (F, 3)."""
    rng = np.random.default_rng(seed)
    T = int(faces.max()) + 1 + 7
    vt = rng.random((T, 2))
    ft = rng.integers(0, T, faces.shape).astype(np.int64)
    ft[0] = [T - 1, T - 2, T - 3]
    return vt, ft


def write_head_template_obj(path, v: np.ndarray, faces: np.ndarray, vt: np.ndarray, ft: np.ndarray) -> Path:
    """DECA ``head_template.obj``: v, vt, then 1-based ``f v/vt`` triangles."""
    lines = ["# FLAME head template (fixture)"]
    lines += [f"v {a:.6f} {b:.6f} {c:.6f}" for a, b, c in v]
    lines += [f"vt {a:.6f} {b:.6f}" for a, b in vt]
    lines += ["f " + " ".join(f"{fv + 1}/{tv + 1}" for fv, tv in zip(fr, tr)) for fr, tr in zip(faces, ft)]
    Path(path).write_text("\n".join(lines) + "\n")
    return Path(path)


def write_flame_texture_npz(path, vt: np.ndarray, ft: np.ndarray) -> Path:
    np.savez(path, mean=np.zeros((4, 4, 3)), tex_dir=np.zeros((4, 4, 3, 2)), vt=vt, ft=ft)
    return Path(path)


def evil_pickle(marker: Path, module: str = "os", name: str = "system") -> bytes:
    """GLOBAL ``os system`` + REDUCE: would create ``marker`` if the unpickler ran it."""
    cmd = f"touch {marker}".encode()
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n(S'" + cmd + b"'\ntR."


def legacy_torch_tensor_pickle(data: np.ndarray, storage_type: str, size, stride, offset: int = 0,
                               view=None, count: int | None = None) -> bytes:
    """A pickled tensor in torch's legacy in-pickle format, built by hand (as older torch wrote it).

    ``_rebuild_tensor_v2(_load_from_bytes(stream), offset, size, stride, False, OrderedDict())``
    where ``stream`` = magic, protocol 1001, sys_info, main pickle with persistent id
    ``('storage', torch.<storage_type>, key, 'cpu', numel, view)``, key list, raw data.
    ``view=(view_key, start, length)`` reproduces pre-1.0 storage views.
    """
    import collections
    import io
    import struct

    import torch

    buf = io.BytesIO()
    for obj in (0x1950A86A20F9469CFC6C, 1001,
                {"protocol_version": 1001, "little_endian": True, "type_sizes": {"short": 2, "int": 4, "long": 4}}):
        pickle.dump(obj, buf, protocol=2)
    token = object()

    class P(pickle.Pickler):
        def persistent_id(self, obj):
            if obj is token:
                return ("storage", getattr(torch, storage_type), "140230", "cpu", data.size, view)
            return None

    P(buf, protocol=2).dump(token)
    pickle.dump(["140230"], buf, protocol=2)
    buf.write(struct.pack("<q", data.size if count is None else count))
    buf.write(np.ascontiguousarray(data).astype(data.dtype.newbyteorder("<")).tobytes())

    class Storage:
        def __reduce__(self):
            return torch.storage._load_from_bytes, (buf.getvalue(),)

    class Tensor:
        def __reduce__(self):
            return torch._utils._rebuild_tensor_v2, (Storage(), offset, tuple(size), tuple(stride), False,
                                                     collections.OrderedDict())

    return pickle.dumps({"t": Tensor()}, protocol=2)
