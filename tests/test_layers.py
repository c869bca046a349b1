"""The package's layer order and the absence of import cycles inside every package (pyproject
[tool.importlinter], docs/architecture.md) hold: lint-imports."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_layer_contract_is_kept():
    exe = Path(sys.executable).parent / "lint-imports"
    assert exe.exists(), "import-linter is a dev dependency: pip install -e '.[dev]'"
    res = subprocess.run([str(exe), "--no-cache"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    assert "2 kept, 0 broken" in res.stdout
