"""Safe file and folder writes: outputs are complete or absent, and nothing mfnet did not write is lost.

* :func:`atomic_path` writes one file through a temporary sibling renamed onto it.
* :func:`output_dir` writes a whole output folder. A new folder is staged beside its final place and
  renamed into place in one step. Into an existing folder only mfnet's own files are written, each
  replaced atomically; the folder's manifest (``.mfnet-files.json``) records which files mfnet wrote, so
  a later run may replace or remove exactly those and nothing else. A folder holding other files is
  refused before any work (:func:`check_output_dir`) unless ``overwrite`` is given, and even then only
  the files mfnet writes are touched, never a protected path (the input photos).

Temporary files and folders are removed on errors, on Ctrl-C and, once :func:`cleanup_on_signals` is
installed (the command line does it), on SIGTERM. Outputs get the modes the user's umask gives.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import tempfile
from pathlib import Path
from typing import Iterable, Iterator

from ..errors import MfnetError

MANIFEST = ".mfnet-files.json"
_STAGING = ".mfnet-tmp-"


def umask() -> int:
    """The process umask (read without changing it where /proc allows)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    old = os.umask(0o022)  # not thread-safe, hence the /proc route first
    os.umask(old)
    return old


def _file_mode() -> int:
    return 0o666 & ~umask()


def _dir_mode() -> int:
    return 0o777 & ~umask()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` if the block succeeds.

    The file gets the mode the umask gives a new file (``mkstemp`` alone would leave it 0600).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix or ".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.exists():
            os.chmod(tmp_path, _file_mode())
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


def read_manifest(folder: Path) -> set[str]:
    """Relative paths (POSIX) of the files mfnet wrote into ``folder`` (empty if it has no manifest)."""
    try:
        doc = json.loads((Path(folder) / MANIFEST).read_text())
        return {str(p) for p in doc.get("files", []) if isinstance(p, str)}
    except (OSError, ValueError, AttributeError):
        return set()


def _iter_entries(folder: Path) -> Iterator[str]:
    """Relative POSIX paths of the files (and empty folders) under ``folder``, lazily (a big folder
    given as ``--out`` is not walked further than needed), skipping mfnet's staging folders."""
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith(_STAGING))
        rel = Path(root).relative_to(folder)
        yield from ((rel / f).as_posix() for f in sorted(files))
        yield from ((rel / d).as_posix() + "/" for d in dirs if not any(Path(root, d).iterdir()))


def _entries(folder: Path) -> list[str]:
    """All of :func:`_iter_entries`, sorted."""
    return sorted(_iter_entries(folder))


def foreign_entries(folder: str | os.PathLike, limit: int | None = None) -> list[str]:
    """What ``folder`` holds that mfnet did not write (relative paths; ``[]`` if it does not exist);
    at most ``limit`` of them (the walk stops there)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    mine = read_manifest(folder) | {MANIFEST}
    foreign = []
    for e in _iter_entries(folder):
        if e in mine or Path(e).name.startswith(_STAGING):
            continue
        if e.endswith("/") and any(m.startswith(e) for m in mine):
            continue
        foreign.append(e)
        if limit is not None and len(foreign) >= limit:
            break
    return foreign


def _writable_parent(path: Path) -> Path:
    """The nearest existing ancestor of ``path`` (where a new folder would be created)."""
    p = path.absolute().parent
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def check_output_dir(path: str | os.PathLike, *, overwrite: bool = False, protect: Iterable = (),
                     what: str = "--out") -> Path:
    """Refuse, before any work, an output folder whose use would lose or hide a user's file.

    Raises :class:`~mfnet.errors.MfnetError` (one line naming the path and the fix) when ``path`` is an
    existing file, cannot be written, or holds files mfnet did not write and ``overwrite`` is false.
    ``protect`` (e.g. the input photos) are never replaced, even with ``overwrite``: a protected file
    inside ``path`` whose name mfnet might write is refused. Returns the folder as a :class:`Path`.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise MfnetError(f"{what} {path}: this is an existing file, not a folder; give a new folder name")
    if path.is_dir():
        if not os.access(path, os.W_OK | os.X_OK):
            raise MfnetError(f"{what} {path}: this folder is not writable; choose a folder you can write to")
        foreign = foreign_entries(path, limit=5)
        if foreign and not overwrite:
            shown = ", ".join(foreign[:4]) + (" and more" if len(foreign) > 4 else "")
            raise MfnetError(f"{what} {path}: this folder holds files mfnet did not write ({shown}); choose a new "
                             "folder, or pass --overwrite to write mfnet's files beside them (nothing else is touched; "
                             "outputs of mfnet versions without the .mfnet-files.json manifest count as foreign too)")
    else:
        parent = _writable_parent(path)
        if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
            raise MfnetError(f"{what} {path}: cannot create it ({parent} is not a writable folder); "
                             "choose a folder you can write to")
    _check_protected(path, protect)
    return path


def _check_protected(path: Path, protect: Iterable) -> None:
    root = path.resolve() if path.exists() else None
    for p in protect:
        p = Path(p)
        if root is not None and p.exists() and p.resolve().parent == root and _may_write(p.name):
            raise MfnetError(f"--out {path}: the input photo {p.name} has the name of a file mfnet writes there; "
                             "move the photo or choose another output folder")


def _may_write(name: str) -> bool:
    """Names mfnet may write into a reconstruction folder."""
    stem = name.lower()
    return (stem.startswith(("mesh.", "neutral.", "params.", "overlay_", "texture.")) or
            stem in {"landmarks.json", "report.html", "summary.csv", "summary.json", "summary.txt", MANIFEST})


@contextlib.contextmanager
def output_dir(path: str | os.PathLike, *, overwrite: bool = False, protect: Iterable = ()) -> Iterator[Path]:
    """Yield a staging folder; when the block succeeds its files become ``path``'s (see the module doc).

    On any error (or Ctrl-C / SIGTERM with :func:`cleanup_on_signals`) the staging folder is removed and
    ``path`` is as it was. Files that an earlier mfnet run wrote into ``path`` and this one does not are
    removed; files mfnet did not write are never touched.
    """
    path = Path(path)
    protect = [Path(p).resolve() for p in protect if Path(p).exists()]
    check_output_dir(path, overwrite=overwrite, protect=protect)
    new = not path.exists()
    base = path.parent if new else path
    base.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"{_STAGING}{path.name}-" if new else _STAGING, dir=base))
    _track(tmp)
    try:
        yield tmp
        written = _entries(tmp)
        _write_manifest(tmp, written)
        _set_modes(tmp)
        if new and not path.exists():
            os.replace(tmp, path)
        else:
            _merge(tmp, path, written, protect)
    finally:
        _untrack(tmp)
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _manifest_text(files) -> str:
    from .._version import __version__

    doc = {"written_by": f"mfnet {__version__}", "files": sorted(f for f in files if not f.endswith("/")),
           "note": "files mfnet wrote into this folder; a later run replaces or removes only these"}
    return json.dumps(doc, indent=1)


def _write_manifest(folder: Path, files: list[str]) -> None:
    (folder / MANIFEST).write_text(_manifest_text(files))


def record_written(folder: str | os.PathLike, names) -> None:
    """Add ``names`` (relative paths mfnet has just written into ``folder`` itself, e.g. a batch's
    ``summary.csv``) to the folder's manifest, atomically."""
    folder = Path(folder)
    with atomic_path(folder / MANIFEST) as tmp:
        tmp.write_text(_manifest_text(read_manifest(folder) | set(names)))


def read_identity(path: str | os.PathLike) -> "np.ndarray":
    """The ``shape`` array of an earlier reconstruction's params.npz (float32, flat), with one-line
    errors for a missing file, a file that is not an .npz, or one without ``shape``."""
    import numpy as np

    path = Path(path)
    if not path.is_file():
        raise MfnetError(f"{path}: no such identity file (pass the params.npz of an earlier reconstruction)")
    try:
        with np.load(path, allow_pickle=False) as z:
            return np.asarray(z["shape"], dtype=np.float32).reshape(-1)
    except KeyError:
        raise MfnetError(f"{path}: has no 'shape' array; pass the params.npz of an earlier mfnet reconstruction") from None
    except Exception:
        raise MfnetError(f"{path}: not a readable params.npz: {npz_problem(path)}; pass the params.npz of an "
                         "earlier mfnet reconstruction") from None


def _set_modes(folder: Path) -> None:
    fmode, dmode = _file_mode(), _dir_mode()
    for root, dirs, files in os.walk(folder):
        for d in dirs:
            os.chmod(Path(root, d), dmode)
        for f in files:
            os.chmod(Path(root, f), fmode)
    os.chmod(folder, dmode)


def _merge(tmp: Path, path: Path, written: list[str], protect: list[Path]) -> None:
    """Move the staged files into the existing ``path`` one by one (each replace is atomic)."""
    old = read_manifest(path)
    files = [f for f in written if not f.endswith("/")]
    for rel in files:
        dst = path / rel
        if dst.exists() and dst.resolve() in protect:
            raise MfnetError(f"{dst}: is an input photo; mfnet will not replace it")
    for rel in files:
        dst = path / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        if dst.is_dir() and not dst.is_symlink():
            raise MfnetError(f"{dst}: a folder is in the way of an output file; remove or rename it")
        os.replace(tmp / rel, dst)
    for rel in sorted(old - set(files)):  # what an earlier run wrote and this one did not
        stale = path / rel
        if stale.is_file() and stale.resolve() not in protect:
            stale.unlink()
            with contextlib.suppress(OSError):  # its folder, if mfnet's files were all it held
                if stale.parent != path:
                    stale.parent.rmdir()
    os.replace(tmp / MANIFEST, path / MANIFEST)


# -- cleanup on signals ----------------------------------------------------------------------------------

_LIVE: set[Path] = set()


def _track(p: Path) -> None:
    _LIVE.add(p)


def _untrack(p: Path) -> None:
    _LIVE.discard(p)


def remove_temporaries() -> None:
    """Remove every staging folder still open (used by the signal handler)."""
    for p in list(_LIVE):
        shutil.rmtree(p, ignore_errors=True)
        _LIVE.discard(p)


def cleanup_on_signals() -> None:
    """Make SIGTERM (and SIGHUP) end the process like Ctrl-C does: ``finally`` blocks run, so staging
    folders and temporary files are removed, and the exit status is 128 + the signal number."""

    def handler(signum, frame):
        signal.signal(signum, signal.SIG_DFL)  # a second signal ends the process at once
        raise _Terminated(signum)

    for sig in (signal.SIGTERM, getattr(signal, "SIGHUP", None)):
        if sig is not None:
            signal.signal(sig, handler)


class _Terminated(KeyboardInterrupt):
    """Raised by the SIGTERM handler (a KeyboardInterrupt, so that it unwinds the same way)."""

    def __init__(self, signum: int):
        super().__init__(f"terminated by signal {signum}")
        self.signum = signum


def npz_problem(path: str | os.PathLike) -> str:
    """A short phrase saying why ``path`` is not a readable ``.npz`` (from its first bytes), e.g.
    ``"it is a text file"`` -- in place of NumPy's messages, which suggest unsafe pickle loading."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(512)
    except OSError as exc:
        return f"it cannot be read ({exc.strerror or exc})"
    if not head:
        return "it is empty"
    if head.startswith(b"PK"):
        return "it is a zip archive but not a complete NumPy .npz (truncated or corrupt?)"
    if head.startswith(b"\x93NUMPY"):
        return "it is a single-array .npy file, not an .npz archive"
    if head[:1] == b"\x80" or head.startswith((b"(dp", b"(lp", b"ccopy_reg")):
        return "it is a Python pickle, which mfnet does not load from here"
    try:
        head.decode("utf-8")
        return "it is a text file"
    except UnicodeDecodeError:
        return "it is not a NumPy .npz archive"
