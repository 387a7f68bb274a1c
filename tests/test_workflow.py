"""The CML workflow is valid GitHub Actions YAML and runs the README's commands."""

import re
import subprocess
import sys
from pathlib import Path

from conftest import ROOT

WORKFLOW = ROOT / ".github" / "workflows" / "cml.yaml"


def lint(path):
    exe = Path(sys.executable).parent / "check-jsonschema"
    return subprocess.run([str(exe), "--builtin-schema", "vendor.github-workflows", str(path)],
                          capture_output=True, text=True)


def test_workflow_passes_the_schema_lint():
    r = lint(WORKFLOW)
    assert r.returncode == 0, r.stdout + r.stderr


def test_lint_catches_a_broken_workflow(tmp_path):
    broken = tmp_path / "cml.yaml"
    broken.write_text(WORKFLOW.read_text().replace("runs-on:", "run-on:"))
    assert lint(broken).returncode != 0


def test_workflow_runs_the_readme_commands():
    readme, wf = (ROOT / "README.md").read_text(), WORKFLOW.read_text()
    assert "bash bootstrap.sh repro" in readme and "bash bootstrap.sh repro" in wf
    for cmd in ("dvc metrics diff main --md", "dvc params diff main --md", "cml comment update"):
        assert cmd in wf
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"bash bootstrap.sh test\b", ci) and "bash bootstrap.sh test" in readme
