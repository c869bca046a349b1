"""Open an mfnet report.html in headless Chromium with the network off; print what the 3D view drew
and save a screenshot.

    .venv/bin/python scripts/check_report.py OUT_DIR/report.html [--screenshot shot.png]

Needs Debian's chromium (`apt-get install chromium`). Exit 1 when the page's viewer did not draw every
face of the mesh (a JavaScript error, or a mesh cut down), 0 otherwise.
"""
from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>",  # no network: every request fails
         "--virtual-time-budget=5000"]


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def run(page: Path, *extra: str) -> subprocess.CompletedProcess:
    exe = chromium()
    if exe is None:
        raise SystemExit("chromium not found: apt-get install chromium")
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run([exe, *FLAGS, f"--user-data-dir={profile}", *extra, page.resolve().as_uri()],
                              capture_output=True, text=True, timeout=120)


def drawn_faces(page: Path) -> tuple[int | None, int]:
    """(faces the viewer drew, faces in the page's mesh data)."""
    dom = run(page, "--dump-dom").stdout
    m = re.search(r'data-drawn-faces="(\d+)"', dom)
    data = re.search(r'"f":\[([^\]]*)\]', dom)
    total = len(data.group(1).split(",")) // 3 if data and data.group(1) else 0
    return (int(m.group(1)) if m else None), total


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("page", type=Path)
    ap.add_argument("--screenshot", type=Path, default=None)
    args = ap.parse_args(argv)
    drawn, total = drawn_faces(args.page)
    print(f"{args.page}: viewer drew {drawn} of {total} faces")
    if args.screenshot:
        run(args.page, f"--screenshot={args.screenshot.resolve()}", "--window-size=1100,2400")
        print(f"screenshot: {args.screenshot}")
    return 0 if drawn == total and total > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
