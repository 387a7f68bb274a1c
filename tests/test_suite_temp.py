"""The suite cleans up after itself (pyproject.toml: tmp_path_retention_policy = "failed"): a run of it makes
~15 GB of project copies, and pytest's default kept three runs of them, which filled CI's disk (2026-12-05).
Checked in a pytest of its own with the project's configuration, its temporary root inside tmp_path."""

import subprocess
import sys

from conftest import ROOT, tool_env

TESTS = ("def test_passes(tmp_path):\n    (tmp_path / 'big').write_bytes(bytes(1 << 20))\n"
         "def test_fails(tmp_path):\n    (tmp_path / 'big').write_bytes(bytes(1 << 20))\n    assert False\n")


def nested_pytest(tmp_path, source):
    """The project's pytest configuration on one test file; pytest's default temporary root moved into tmp_path
    (PYTEST_DEBUG_TEMPROOT), so the run decides itself what to keep. Returns that root."""
    (tmp_path / "test_keep.py").write_text(source)
    root = tmp_path / "temproot"
    root.mkdir()
    r = subprocess.run([sys.executable, "-m", "pytest", "-c", str(ROOT / "pyproject.toml"), "-p", "no:cacheprovider",
                        "-n0", "-q", f"--rootdir={tmp_path}", str(tmp_path / "test_keep.py")],
                       cwd=tmp_path, capture_output=True, text=True, env=tool_env(PYTEST_DEBUG_TEMPROOT=str(root)))
    return root, r


def test_a_passed_tests_folder_goes_and_a_failed_tests_folder_stays(tmp_path):
    root, r = nested_pytest(tmp_path, TESTS)
    assert r.returncode == 1 and "1 failed, 1 passed" in r.stdout, r.stdout[-3000:] + r.stderr[-2000:]
    left = sorted(p.parent.name for p in root.rglob("big"))
    assert left == ["test_fails0"], left       # the failure is kept to look into, the pass is gone


def test_a_run_that_passes_leaves_nothing(tmp_path):
    root, r = nested_pytest(tmp_path, TESTS.split("def test_fails")[0])
    assert r.returncode == 0 and "1 passed" in r.stdout, r.stdout[-3000:] + r.stderr[-2000:]
    assert not list(root.rglob("big")) and not list(root.rglob("pytest-[0-9]*")), list(root.rglob("*"))
