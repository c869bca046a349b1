"""Restricted unpickling for model files: FLAME pickles and DECA/RingNet ``.npy`` embeddings.

FLAME model files are Python 2 pickles that reference ``chumpy`` classes; DECA's
``landmark_embedding.npy`` holds torch tensors pickled inside a numpy object array.
Plain ``pickle.load`` would import those packages and, for a hostile file, run
arbitrary code. :class:`RestrictedUnpickler` resolves only an explicit allow-list
of globals (:data:`ALLOWED_GLOBALS`); everything else raises
:class:`UnsafePickleError` before anything is called.

* numpy arrays, dtypes and scalars are rebuilt by numpy itself;
* scipy sparse matrices, chumpy ``Ch`` / ``Select`` and torch storages become small
  stand-in objects that only store their state; :func:`to_numpy` turns them into
  plain ndarrays (sparse matrices into validated ``scipy.sparse`` matrices);
* torch tensors (``_rebuild_tensor_v2`` + ``_load_from_bytes``) are decoded from
  torch's legacy serialization stream by a nested restricted unpickler and
  bounds-checked index arithmetic: torch is never imported.

Objects handed to the unpickler are immutable (C types, frozen classes,
slot-only callables), so a BUILD opcode cannot patch them between loads.
"""
from __future__ import annotations

import codecs
import collections
import io
import os
import pickle
import struct
from typing import Any, BinaryIO

import numpy as np

from .data import HeadModelError

try:  # numpy >= 2
    from numpy._core.multiarray import _reconstruct as _np_reconstruct, scalar as _np_scalar
    from numpy._core.numeric import _frombuffer as _np_frombuffer
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core.multiarray import _reconstruct as _np_reconstruct, scalar as _np_scalar
    from numpy.core.numeric import _frombuffer as _np_frombuffer

__all__ = ["UnsafePickleError", "RestrictedUnpickler", "ALLOWED_GLOBALS", "safe_load", "safe_loads",
           "safe_load_npy", "to_numpy"]

_TORCH_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_TORCH_LEGACY_PROTOCOL = 1001


class UnsafePickleError(HeadModelError, pickle.UnpicklingError):
    """The file references a global that is not on the allow-list (nothing was executed)."""


class _Frozen(type):
    """Metaclass: class attributes cannot be replaced (e.g. by a pickle BUILD opcode)."""

    def __setattr__(cls, name, value):
        raise AttributeError(f"{cls.__name__} is read-only")

    def __delattr__(cls, name):
        raise AttributeError(f"{cls.__name__} is read-only")


class _SafeCallable(metaclass=_Frozen):
    """An immutable wrapper handed to the unpickler instead of a Python function."""

    __slots__ = ("_fn",)

    def __init__(self, fn):
        object.__setattr__(self, "_fn", fn)

    def __setattr__(self, name, value):
        raise AttributeError("read-only")

    def __call__(self, *args):
        return self._fn(*args)


class _StandIn(metaclass=_Frozen):
    """Base of the stand-ins: keeps the pickled state dict, nothing else."""

    def __setstate__(self, state):
        if not isinstance(self, _StandIn):
            raise pickle.UnpicklingError("bad BUILD target")
        if isinstance(state, tuple) and len(state) == 2:  # (dict state, slot state)
            merged = dict(state[0] or {})
            merged.update(state[1] or {})
            state = merged
        if not isinstance(state, dict):
            raise pickle.UnpicklingError(f"{type(self).__name__}: state must be a dict")
        self.__dict__["state"] = state

    @property
    def st(self) -> dict:
        return self.__dict__.get("state", {})


class ChStandIn(_StandIn):
    """``chumpy.ch.Ch``: the value is the ndarray in state key ``x``."""


class SelectStandIn(_StandIn):
    """``chumpy.reordering.Select``: value = a.ravel()[idxs].reshape(preferred_shape)."""


class SparseStandIn(_StandIn):
    """A scipy sparse matrix's pickled ``__dict__``; :func:`to_numpy` rebuilds and checks it."""

    fmt = "csc"


class CscStandIn(SparseStandIn):
    fmt = "csc"


class CsrStandIn(SparseStandIn):
    fmt = "csr"


class CooStandIn(SparseStandIn):
    fmt = "coo"


class _TorchStorage:
    """A decoded torch storage (a 1-D numpy array)."""

    __slots__ = ("array",)

    def __init__(self, array: np.ndarray):
        object.__setattr__(self, "array", array)

    def __setattr__(self, name, value):
        raise AttributeError("read-only")


# --------------------------------------------------------------- callables
def _reconstructor(cls, base, state):
    """``copy_reg._reconstructor`` restricted to ``object.__new__`` of a stand-in class."""
    if base is not object or state is not None or not (isinstance(cls, type) and issubclass(cls, _StandIn)):
        raise UnsafePickleError(f"copy_reg._reconstructor({cls!r}, {base!r}) is not allowed")
    return object.__new__(cls)


def _codecs_encode(text, encoding="utf-8"):
    """``_codecs.encode`` as written by Python 3 for bytes at protocol < 3 (latin1 only)."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise UnsafePickleError(f"_codecs.encode(..., {encoding!r}) is not allowed")
    return codecs.encode(text, "latin1")


def _rebuild_tensor(storage, offset, size, stride, *_ignored):
    """torch ``_rebuild_tensor``/``_rebuild_tensor_v2`` → ndarray, with checked strides."""
    if not isinstance(storage, _TorchStorage):
        raise pickle.UnpicklingError("tensor without a decoded storage")
    size, stride = tuple(size), tuple(stride)
    if (len(size) != len(stride) or not all(isinstance(v, int) and v >= 0 for v in size + stride + (offset,))):
        raise pickle.UnpicklingError(f"bad tensor geometry size={size} stride={stride} offset={offset}")
    flat = storage.array
    if 0 in size:
        return np.zeros(size, dtype=flat.dtype)
    last = offset + sum((n - 1) * s for n, s in zip(size, stride))
    if last >= flat.size:
        raise pickle.UnpicklingError("tensor reads past the end of its storage")
    index = np.full((1,) * len(size), offset, dtype=np.int64)
    for axis, (n, s) in enumerate(zip(size, stride)):
        shape = [1] * len(size)
        shape[axis] = n
        index = index + (np.arange(n, dtype=np.int64) * s).reshape(shape)
    return flat[index].copy()


_TORCH_STORAGE_DTYPES = {
    "DoubleStorage": np.float64, "FloatStorage": np.float32, "HalfStorage": np.float16,
    "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
    "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}


class _TorchStorageType(metaclass=_Frozen):
    """Token for ``torch.<X>Storage`` inside a legacy torch stream."""

    __slots__ = ("dtype",)

    def __init__(self, dtype):
        object.__setattr__(self, "dtype", np.dtype(dtype).newbyteorder("<"))

    def __setattr__(self, name, value):
        raise AttributeError("read-only")


_STORAGE_TOKENS = {name: _TorchStorageType(dt) for name, dt in _TORCH_STORAGE_DTYPES.items()}


def _load_torch_legacy_bytes(data) -> _TorchStorage:
    """Decode ``torch.storage._load_from_bytes``: a legacy ``torch.save`` stream of one storage.

    Layout: pickles of the magic number, the protocol version (1001) and a sys-info
    dict; the main pickle whose persistent ids are ``('storage', type, key, location,
    numel, view_metadata)``; a pickled list of storage keys; then for each key an
    int64 little-endian element count followed by the raw little-endian data.
    """
    if isinstance(data, str):
        data = data.encode("latin1")
    f = io.BytesIO(bytes(data))
    src = "torch tensor inside the file"

    def small():
        return RestrictedUnpickler(f, source=src).load()

    if small() != _TORCH_LEGACY_MAGIC or small() != _TORCH_LEGACY_PROTOCOL:
        raise pickle.UnpicklingError("not a legacy torch storage stream")
    small()  # sys_info (data is little-endian whatever it says)
    roots: dict[str, tuple[np.dtype, int]] = {}

    def persistent_load(pid):
        if not (isinstance(pid, tuple) and len(pid) == 6 and pid[0] == "storage"
                and isinstance(pid[1], _TorchStorageType)):
            raise UnsafePickleError(f"unsupported torch persistent id {pid!r:.80}")
        _, stype, key, _location, numel, view = pid
        if int(numel) < 0:
            raise pickle.UnpicklingError("negative torch storage size")
        roots[str(key)] = (stype.dtype, int(numel))
        if view is None:
            return (str(key), 0, int(numel))
        _view_key, view_offset, view_size = view
        return (str(key), int(view_offset), int(view_size))

    main = RestrictedUnpickler(f, source=src, persistent_load=persistent_load, torch_storage_types=True)
    ref = main.load()
    keys = small()
    arrays: dict[str, np.ndarray] = {}
    for key in keys:
        key = str(key)
        if key not in roots:
            raise pickle.UnpicklingError("torch stream lists an unknown storage")
        dtype, numel = roots[key]
        head = f.read(8)
        if len(head) != 8:
            raise pickle.UnpicklingError("torch storage data truncated")
        (count,) = struct.unpack("<q", head)
        if count != numel:
            raise pickle.UnpicklingError(f"torch storage holds {count} elements, expected {numel}")
        raw = f.read(count * dtype.itemsize)
        if len(raw) != count * dtype.itemsize:
            raise pickle.UnpicklingError("torch storage data truncated")
        arrays[key] = np.frombuffer(raw, dtype=dtype).astype(dtype.newbyteorder("="))
    if not (isinstance(ref, tuple) and len(ref) == 3 and ref[0] in arrays):
        raise pickle.UnpicklingError("torch stream does not hold a storage")
    key, start, n = ref
    if start < 0 or n < 0 or start + n > arrays[key].size:
        raise pickle.UnpicklingError("torch storage view out of range")
    return _TorchStorage(arrays[key][start:start + n])


def _build_allow_list() -> dict[tuple[str, str], Any]:
    table: dict[tuple[str, str], Any] = {}
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        table[(mod, "_reconstruct")] = _np_reconstruct
        table[(mod, "scalar")] = _np_scalar
    for mod in ("numpy.core.numeric", "numpy._core.numeric"):
        table[(mod, "_frombuffer")] = _SafeCallable(_np_frombuffer)
    table[("numpy", "ndarray")] = np.ndarray
    table[("numpy", "dtype")] = np.dtype
    for fmt, cls in (("csc", CscStandIn), ("csr", CsrStandIn), ("coo", CooStandIn)):
        for mod in (f"scipy.sparse.{fmt}", f"scipy.sparse._{fmt}", "scipy.sparse"):
            table[(mod, f"{fmt}_matrix")] = cls
    for mod in ("copy_reg", "copyreg"):
        table[(mod, "_reconstructor")] = _SafeCallable(_reconstructor)
    for mod in ("__builtin__", "builtins"):
        table[(mod, "set")] = set
        table[(mod, "frozenset")] = frozenset
        table[(mod, "object")] = object
    table[("_codecs", "encode")] = _SafeCallable(_codecs_encode)
    table[("collections", "OrderedDict")] = collections.OrderedDict
    table[("chumpy.ch", "Ch")] = ChStandIn
    table[("chumpy.reordering", "Select")] = SelectStandIn
    table[("torch._utils", "_rebuild_tensor")] = _SafeCallable(_rebuild_tensor)
    table[("torch._utils", "_rebuild_tensor_v2")] = _SafeCallable(_rebuild_tensor)
    table[("torch.storage", "_load_from_bytes")] = _SafeCallable(_load_torch_legacy_bytes)
    return table


#: (module, name) → the object the unpickler may use. Nothing else resolves.
ALLOWED_GLOBALS: dict[tuple[str, str], Any] = _build_allow_list()


class RestrictedUnpickler(pickle.Unpickler):
    """A ``pickle.Unpickler`` that resolves only :data:`ALLOWED_GLOBALS` (latin1 for Python 2)."""

    def __init__(self, file: BinaryIO, *, source: str = "<pickle>", encoding: str = "latin1",
                 persistent_load=None, torch_storage_types: bool = False):
        super().__init__(file, encoding=encoding, fix_imports=False)
        self.source = source
        self.globals_seen: set[str] = set()
        self._pload = persistent_load
        self._torch_types = torch_storage_types

    def find_class(self, module: str, name: str) -> Any:
        self.globals_seen.add(f"{module}.{name}")
        obj = ALLOWED_GLOBALS.get((module, name))
        if obj is None and self._torch_types and module in ("torch", "torch.cuda"):
            obj = _STORAGE_TOKENS.get(name)
        if obj is None:
            raise UnsafePickleError(
                f"refusing to load global {module}.{name} from {self.source}: a model file must not "
                f"execute code (allowed: numpy arrays, scipy sparse matrices, chumpy Ch/Select, "
                f"torch tensors)")
        return obj

    def persistent_load(self, pid: Any) -> Any:
        if self._pload is None:
            raise UnsafePickleError(f"{self.source}: unexpected persistent id in pickle (not a model file)")
        return self._pload(pid)


# ------------------------------------------------------------- conversion
def _sparse_to_scipy(s: SparseStandIn):
    import scipy.sparse as sp

    st = s.st
    shape = st.get("_shape", st.get("shape"))
    try:
        shape = tuple(int(v) for v in shape)
        if s.fmt == "coo":
            coords = st.get("coords") or (st["row"], st["col"])
            return sp.coo_matrix((np.asarray(st["data"]), tuple(np.asarray(c) for c in coords)), shape=shape)
        cls = sp.csc_matrix if s.fmt == "csc" else sp.csr_matrix
        m = cls((np.asarray(st["data"]), np.asarray(st["indices"]), np.asarray(st["indptr"])), shape=shape)
        m.check_format(full_check=True)
        return m
    except Exception as exc:
        raise pickle.UnpicklingError(f"malformed {s.fmt}_matrix state ({exc})") from None


def to_numpy(obj: Any, _memo: dict | None = None) -> Any:
    """Replace stand-ins recursively: chumpy → ndarray, sparse → scipy, 0-d object arrays → item."""
    memo = {} if _memo is None else _memo
    key = id(obj)
    if key in memo:
        return memo[key]
    if isinstance(obj, ChStandIn):
        if "x" not in obj.st:
            raise pickle.UnpicklingError("chumpy Ch object without its array 'x'")
        out = np.asarray(to_numpy(obj.st["x"], memo))
    elif isinstance(obj, SelectStandIn):
        st = obj.st
        try:
            a = np.asarray(to_numpy(st["a"], memo))
            out = a.ravel()[np.asarray(to_numpy(st["idxs"], memo), dtype=np.int64)]
            out = out.reshape(tuple(st["preferred_shape"]))
        except (KeyError, IndexError, ValueError, TypeError) as exc:
            raise pickle.UnpicklingError(f"malformed chumpy Select ({exc})") from None
    elif isinstance(obj, SparseStandIn):
        out = _sparse_to_scipy(obj)
    elif isinstance(obj, _TorchStorage):
        out = obj.array
    elif isinstance(obj, np.ndarray) and obj.dtype == object:
        if obj.ndim == 0:
            out = to_numpy(obj[()], memo)
        else:
            out = np.empty(obj.shape, dtype=object)
            for i, v in np.ndenumerate(obj):
                out[i] = to_numpy(v, memo)
    elif isinstance(obj, dict):
        out = type(obj)() if isinstance(obj, collections.OrderedDict) else {}
        for k, v in obj.items():
            out[to_numpy(k, memo)] = to_numpy(v, memo)
    elif isinstance(obj, (list, tuple, set, frozenset)):
        out = type(obj)(to_numpy(v, memo) for v in obj)
    else:
        out = obj
    memo[key] = out
    return out


_READ_ERRORS = (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError,
                KeyError, struct.error, UnicodeDecodeError, OverflowError, ImportError)


def _load_stream(f: BinaryIO, source: str, hint: str, globals_seen: set | None) -> Any:
    u = RestrictedUnpickler(f, source=source)
    try:
        obj = to_numpy(u.load())
    except UnsafePickleError:
        raise
    except HeadModelError:
        raise
    except _READ_ERRORS as exc:
        truncated = isinstance(exc, EOFError) or "truncated" in str(exc)
        what = "truncated (incomplete download? fetch it again)" if truncated else "not a readable pickle"
        raise HeadModelError(f"{source}: {what} ({type(exc).__name__}: {exc}).{' ' + hint if hint else ''}") from None
    finally:
        if globals_seen is not None:
            globals_seen |= u.globals_seen
    return obj


def _open(path: str | os.PathLike, hint: str) -> BinaryIO:
    try:
        return open(path, "rb")
    except FileNotFoundError:
        raise HeadModelError(f"{path}: no such file.{' ' + hint if hint else ''}") from None
    except IsADirectoryError:
        raise HeadModelError(f"{path}: is a directory, expected a file.{' ' + hint if hint else ''}") from None


def safe_load(path: str | os.PathLike, *, hint: str = "", globals_seen: set | None = None) -> Any:
    """Unpickle ``path`` with :class:`RestrictedUnpickler` and :func:`to_numpy` the result.

    Unreadable/truncated files raise :class:`HeadModelError` (``hint`` is appended);
    forbidden globals raise :class:`UnsafePickleError`. ``globals_seen`` (a set) collects
    the ``module.name`` globals the file referenced.
    """
    with _open(path, hint) as f:
        return _load_stream(f, str(path), hint, globals_seen)


def safe_loads(data: bytes, *, source: str = "<bytes>", hint: str = "") -> Any:
    """Like :func:`safe_load` for an in-memory pickle."""
    return _load_stream(io.BytesIO(data), source, hint, None)


def safe_load_npy(path: str | os.PathLike, *, hint: str = "") -> Any:
    """Load a ``.npy``; object arrays are unpickled restrictedly (a 0-d one yields its item)."""
    fmt = np.lib.format
    with _open(path, hint) as f:
        try:
            version = fmt.read_magic(f)
            if version == (1, 0):
                _shape, _fortran, dtype = fmt.read_array_header_1_0(f)
            elif version == (2, 0):
                _shape, _fortran, dtype = fmt.read_array_header_2_0(f)
            else:
                _shape, _fortran, dtype = fmt._read_array_header(f, version)
        except (ValueError, OSError, SyntaxError) as exc:
            raise HeadModelError(f"{path}: not a .npy file ({exc}).{' ' + hint if hint else ''}") from None
        if dtype.hasobject:
            return _load_stream(f, str(path), hint, None)
        f.seek(0)
        try:
            return np.load(f, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise HeadModelError(f"{path}: truncated or corrupt .npy ({exc}).{' ' + hint if hint else ''}") from None
