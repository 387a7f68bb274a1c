"""The tree stays ruff-clean (rules and line length in pyproject.toml [tool.ruff]), checked with the
venv's pinned ruff (requirements.txt), so CI fails on a lint error like on a failing test."""

import subprocess
import sys
from pathlib import Path

from conftest import ROOT


def test_ruff_finds_nothing():
    ruff = Path(sys.executable).parent / "ruff"
    assert ruff.exists(), f"{ruff} not found: run `bash bootstrap.sh install` (ruff is in requirements.txt)"
    r = subprocess.run([str(ruff), "check", "--no-cache", "."], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
