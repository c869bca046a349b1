"""Fetch the raw ICT-FaceKit for :func:`mfnet.headmodel.ict.convert_ict` (``mfnet models fetch ict-facekit``):
a local folder is used in place; a local zip or the repository archive's URL is extracted (with progress)."""
from __future__ import annotations

import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from tqdm import tqdm

from .data import HeadModelError
from .ict import ICT_URL, MESH_NAME, locate_ict


def fetch_ict(src: str | Path, dest_dir: Path) -> Path:
    """Make a raw ICT-FaceKit available and return the folder :func:`convert_ict` should read.

    A local folder (either layout) is validated and used in place (nothing copied); a local
    ``.zip`` or an http(s) URL of the repository archive (default :data:`ICT_URL`, downloaded
    with a progress bar) has its ``FaceXModel/`` extracted to ``dest_dir/FaceXModel``.
    """
    s, dest_dir = str(src), Path(dest_dir)
    if s.startswith(("http://", "https://")):
        dest_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(suffix=".zip", prefix=".ict-download-", dir=dest_dir)
        try:
            with open(fd, "wb") as out:
                _download(s, out)
            return _extract_kit(Path(tmp), dest_dir)
        finally:
            Path(tmp).unlink(missing_ok=True)
    p = Path(s).expanduser()
    if p.is_dir():
        return locate_ict(p)[1]
    if p.is_file():
        return _extract_kit(p, dest_dir)
    raise HeadModelError(f"{s}: no such folder or file (give an ICT-FaceKit folder, its .zip or an http(s) URL)")


def _download(url: str, out) -> None:
    try:
        with urllib.request.urlopen(url, timeout=60) as resp:
            total = int(resp.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc="ICT-FaceKit", disable=None) as bar:
                while chunk := resp.read(1 << 20):
                    bar.update(out.write(chunk))
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise HeadModelError(
            f"could not download ICT-FaceKit from {url} ({getattr(exc, 'reason', exc)}). Download it "
            f"yourself (git clone https://github.com/ICT-VGL/ICT-FaceKit, or the zip {ICT_URL}) and run "
            f"`mfnet models fetch ict-facekit --from PATH`.") from None


def _extract_kit(archive: Path, dest_dir: Path) -> Path:
    """Extract the archive's folder holding generic_neutral_mesh.obj to ``dest_dir/FaceXModel``."""
    expected = f"expected the ICT-FaceKit repository zip ({ICT_URL})"
    try:
        zf = zipfile.ZipFile(archive)
    except zipfile.BadZipFile:
        raise HeadModelError(f"{archive}: not a zip archive; {expected}") from None
    with zf:
        hits = sorted((n for n in zf.namelist() if n.rsplit("/", 1)[-1] == MESH_NAME),
                      key=lambda n: ("FaceXModel/" not in n, len(n)))
        if not hits:
            raise HeadModelError(f"{archive}: no FaceXModel/{MESH_NAME} inside; {expected}")
        prefix = hits[0][: -len(MESH_NAME)]
        members = {n[len(prefix):]: n for n in zf.namelist() if n.startswith(prefix)}
        dest_dir.mkdir(parents=True, exist_ok=True)
        tmp, target = Path(tempfile.mkdtemp(prefix=".FaceXModel-", dir=dest_dir)), dest_dir / "FaceXModel"
        try:
            for rel, n in tqdm(members.items(), desc="extracting", unit="file", disable=None):
                if rel and "/" not in rel and rel not in (".", ".."):
                    with zf.open(n) as fin, open(tmp / rel, "wb") as fout:
                        shutil.copyfileobj(fin, fout)
            shutil.rmtree(target, ignore_errors=True)
            tmp.rename(target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return locate_ict(target)[1]
