"""Thread settings: physical cores, minus the cores other processes keep busy; set for torch, OpenCV
and OpenMP together; --threads on the heavy commands."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mfnet.cli.main import main
from mfnet.utils.threads import default_threads, physical_cores

REPO = Path(__file__).resolve().parents[1]


def test_default_threads_leave_busy_cores_alone(monkeypatch):
    monkeypatch.setattr("mfnet.utils.threads.physical_cores", lambda: 8)
    assert default_threads(load=0.0) == 8
    assert default_threads(load=2.6) == 5  # about 3 cores busy
    assert default_threads(load=7.9) == 1 and default_threads(load=40.0) == 1  # never below one
    assert 1 <= physical_cores() <= (os.cpu_count() or 1)


def test_threads_option_sets_torch_and_opencv_in_a_fresh_process():
    code = ("import mfnet.cli.main as m; a = m.build_parser().parse_args(['reconstruct', 'x.jpg', '--threads', '1']);"
            "m._apply_threads(a);"
            "import torch, cv2; print(torch.get_num_threads(), cv2.getNumThreads(), a.threads_used)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=str(REPO)), timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["1", "1", "1"]


@pytest.mark.parametrize("command", [["reconstruct", "a.jpg"], ["demo"], ["synth", "--out", "x"],
                                     ["bench"], ["models", "calibrate"], ["evaluate", "now", "--pred", "p", "--gt", "g"]])
def test_heavy_commands_take_threads(command, capsys):
    assert main([*command, "--threads", "0"]) == 2
    assert "--threads 0" in capsys.readouterr().err
