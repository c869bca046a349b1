"""Output folders never lose a user's files; bad output locations fail before any work; temporary
files go on errors, Ctrl-C and SIGTERM; files and folders follow the umask."""
from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from PIL import Image

from mfnet.cli.main import main
from mfnet.errors import MfnetError
from mfnet.utils.io import MANIFEST, atomic_path, check_output_dir, foreign_entries, npz_problem, output_dir

REPO = Path(__file__).resolve().parents[1]


def _tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _write(tmp: Path, names=("mesh.obj", "params.json")) -> None:
    for n in names:
        (tmp / n).write_text(n)


def test_new_folder_appears_whole_with_a_manifest(tmp_path):
    out = tmp_path / "a" / "b"
    with output_dir(out) as tmp:
        _write(tmp)
        assert not out.exists()  # nothing visible before the block ends
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST, "mesh.obj", "params.json"]
    assert foreign_entries(out) == []
    assert [p.name for p in out.parent.iterdir()] == ["b"]


def test_foreign_files_refused_then_kept_with_overwrite(tmp_path):
    out = tmp_path / "out"
    (out / "sub").mkdir(parents=True)
    (out / "notes.txt").write_text("user")
    (out / "sub" / "data.bin").write_bytes(b"\0\1")
    (out / "mesh.obj").write_text("the user's own mesh")
    before = _tree(out)
    with pytest.raises(MfnetError, match=r"notes\.txt.*--overwrite"):
        with output_dir(out) as tmp:
            _write(tmp)
    assert _tree(out) == before
    with output_dir(out, overwrite=True) as tmp:
        _write(tmp)
    after = _tree(out)
    assert after["notes.txt"] == b"user" and after["sub/data.bin"] == b"\0\1"
    assert after["mesh.obj"] == b"mesh.obj"  # --overwrite: mfnet's own file names are written
    # a later run (no --overwrite needed for mfnet's files, but the user's files are still foreign)
    with pytest.raises(MfnetError):
        check_output_dir(out)
    with output_dir(out, overwrite=True) as tmp:
        _write(tmp, ("mesh.obj",))
    after = _tree(out)
    assert "params.json" not in after and after["notes.txt"] == b"user" and after["sub/data.bin"] == b"\0\1"


def test_rewrite_of_an_mfnet_folder_replaces_and_removes_only_mfnet_files(tmp_path):
    out = tmp_path / "out"
    with output_dir(out) as tmp:
        (tmp / "inputs").mkdir()
        _write(tmp, ("mesh.obj", "params.json", "inputs/v.png"))
    with output_dir(out) as tmp:  # no --overwrite: everything there is mfnet's
        _write(tmp, ("mesh.obj",))
    assert sorted(_tree(out)) == [MANIFEST, "mesh.obj"] and not (out / "inputs").exists()


def test_failure_leaves_the_folder_as_it_was(tmp_path):
    out = tmp_path / "out"
    with output_dir(out) as tmp:
        _write(tmp)
    before = _tree(out)
    with pytest.raises(ZeroDivisionError):
        with output_dir(out) as tmp:
            _write(tmp, ("mesh.obj", "other.txt"))
            1 / 0
    assert _tree(out) == before and not any(".mfnet-tmp" in p.name for p in tmp_path.rglob("*"))
    with pytest.raises(ZeroDivisionError):
        with output_dir(tmp_path / "new") as tmp:
            1 / 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_existing_file_unwritable_and_dot(tmp_path, monkeypatch):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(MfnetError, match="existing file"):
        check_output_dir(f)
    assert f.read_text() == "x" and sorted(p.name for p in tmp_path.iterdir()) == ["file"]
    monkeypatch.chdir(tmp_path)
    with pytest.raises(MfnetError, match="did not write"):  # `--out .` holding a user's file
        check_output_dir(Path("."))
    if os.geteuid() != 0:  # root writes anywhere
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        with pytest.raises(MfnetError, match="not writable"):
            check_output_dir(ro)
        with pytest.raises(MfnetError, match="cannot create"):
            check_output_dir(ro / "x")


def test_input_photos_are_protected(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    p = photos / "texture.png"
    p.write_bytes(b"a photo")
    with pytest.raises(MfnetError, match="input photo texture.png"):
        check_output_dir(photos, overwrite=True, protect=[p])
    q = photos / "front.jpg"
    q.write_bytes(b"front")
    p.rename(photos / "left.jpg")
    with output_dir(photos, overwrite=True, protect=[q, photos / "left.jpg"]) as tmp:
        _write(tmp)
    assert q.read_bytes() == b"front" and (photos / "left.jpg").read_bytes() == b"a photo"


@pytest.mark.parametrize("mask", [0o022, 0o027, 0o077])
def test_files_and_folders_follow_the_umask(tmp_path, mask):
    old = os.umask(mask)
    try:
        out = tmp_path / "out"
        with output_dir(out) as tmp:
            (tmp / "sub").mkdir()
            _write(tmp, ("mesh.obj", "sub/x.txt"))
        with atomic_path(tmp_path / "single.npz") as t:
            t.write_bytes(b"1")
    finally:
        os.umask(old)
    mode = lambda p: stat.S_IMODE(p.stat().st_mode)  # noqa: E731
    assert mode(out) == 0o777 & ~mask and mode(out / "sub") == 0o777 & ~mask
    assert mode(out / "mesh.obj") == 0o666 & ~mask and mode(out / "sub" / "x.txt") == 0o666 & ~mask
    assert mode(tmp_path / "single.npz") == 0o666 & ~mask


def _run_until_ready(code: str, cwd: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert proc.stdout.readline().strip() == "ready"
    return proc


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signals_remove_temporary_folders(tmp_path, sig, code):
    """A process killed by SIGTERM / Ctrl-C while writing leaves no hidden temporary folder."""
    # Ctrl-C as in a terminal: a test run started in the background inherits SIGINT ignored (the shell
    # does that to background jobs) and Python then installs no KeyboardInterrupt handler
    prog = """
        import signal, sys, time
        signal.signal(signal.SIGINT, signal.default_int_handler)
        from mfnet.cli.main import main
        import mfnet.cli.main as m
        from mfnet.utils.io import output_dir
        def slow(args):
            with output_dir("out/new") as tmp:
                (tmp / "mesh.obj").write_text("x")
                with output_dir("old") as tmp2:
                    (tmp2 / "mesh.obj").write_text("y")
                    print("ready", flush=True)
                    time.sleep(60)
            return 0
        m._optional_commands = lambda sub: sub.add_parser("slow").set_defaults(func=slow)
        sys.exit(main(["slow"]))
    """
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / MANIFEST).write_text('{"files": []}')
    proc = _run_until_ready(prog, tmp_path)
    proc.send_signal(sig)
    rc = proc.wait(timeout=30)
    err = proc.stderr.read()
    assert rc == code, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    left = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*"))
    assert left == ["old", f"old/{MANIFEST}", "out"], left


def test_npz_problems_are_named_without_pickle_hints(tmp_path, capsys):
    txt = tmp_path / "model.txt"
    txt.write_text("hello")
    assert npz_problem(txt) == "it is a text file"
    photo = tmp_path / "p.png"
    Image.new("RGB", (80, 80)).save(photo)
    for flag in ("--model", "--identity"):
        assert main(["reconstruct", str(photo), flag, str(txt), "--out", str(tmp_path / "o")]) == 2
        err = capsys.readouterr().err
        assert "text file" in err and "allow_pickle" not in err and "Traceback" not in err, err
        assert not (tmp_path / "o").exists()


def test_bad_output_locations_fail_before_any_work(tmp_path, capsys, monkeypatch):
    """Checked before the model loads (loading it here fails the test): one line, exit 2."""
    def no_work(*a, **k):
        raise AssertionError("the head model was loaded before the output folder was checked")

    monkeypatch.setattr("mfnet.calibrate.install.load_model", no_work)
    photos = tmp_path / "photos"
    photos.mkdir()
    for n in ("front.png", "left.png"):
        Image.new("RGB", (80, 80)).save(photos / n)
    before = _tree(photos)
    (tmp_path / "afile").write_text("x")
    cases = [
        (["--out", str(photos)], "did not write"),  # the photos' own folder
        (["--out", str(tmp_path / "afile")], "existing file"),
    ]
    for extra, needle in cases:
        assert main(["reconstruct", str(photos / "front.png"), str(photos / "left.png"), *extra]) == 2
        err = capsys.readouterr().err
        assert needle in err and err.count("\n") == 1, err
    assert _tree(photos) == before and (tmp_path / "afile").read_text() == "x"
    assert main(["reconstruct", *[str(photos / "front.png")] * 17]) == 2
    assert "1 to 16" in capsys.readouterr().err


def test_installed_models_and_pngs_follow_the_umask(tmp_path, monkeypatch, capsys):
    """A shared MFNET_HOME works: `models add` and `models show` write 0644 files under umask 022."""
    from synthetic_model import make_synthetic_model

    monkeypatch.setenv("MFNET_HOME", str(tmp_path / "home"))
    src = make_synthetic_model(n_verts=80).save(tmp_path / "m.npz")
    old = os.umask(0o022)
    try:
        assert main(["models", "add", "small", str(src)]) == 0
        assert main(["models", "show", "small", "--out", str(tmp_path / "t.png"), "--views", "2",
                     "--size", "32"]) == 0
    finally:
        os.umask(old)
    installed = tmp_path / "home" / "models" / "small.npz"
    assert stat.S_IMODE(installed.stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "t.png").stat().st_mode) == 0o644


def test_a_big_foreign_folder_is_not_walked_to_the_end(tmp_path):
    big = tmp_path / "home"
    for i in range(3):
        (big / f"d{i}").mkdir(parents=True)
        for j in range(40):
            (big / f"d{i}" / f"f{j}.txt").write_text("x")
    assert len(foreign_entries(big)) == 120
    assert foreign_entries(big, limit=5) == [f"d0/f{j}.txt" for j in sorted(range(40), key=str)][:5]
    with pytest.raises(MfnetError, match=r"\(d0/f0\.txt, .* and more\); choose a new folder"):
        check_output_dir(big)
