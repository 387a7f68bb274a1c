"""The CML workflow is valid GitHub Actions YAML, runs the README's bootstrap.sh commands in order (install,
pull, repro, post) with the Python bootstrap.sh requires, and posts what the pipeline writes."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from workflow_runner import prepare

from conftest import ROOT, project_files

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


def steps():
    jobs = yaml.safe_load(WORKFLOW.read_text())["jobs"]
    assert list(jobs) == ["report"]
    return jobs["report"]["steps"]


def step_index(pattern):
    """Index of the one step whose `run` script matches pattern."""
    found = [i for i, s in enumerate(steps()) if re.search(pattern, s.get("run", ""), re.M)]
    assert len(found) == 1, (pattern, found)
    return found[0]


def bootstrap_modes():
    """The modes bootstrap.sh accepts (its `case "$mode"` branches) -> the branch's command."""
    text = (ROOT / "bootstrap.sh").read_text()
    block = text[text.index('case "$mode" in'):text.index("esac")]
    return {m: cmd.strip() for m, cmd in re.findall(r"^\s*(\w+)\)(.*?);;", block, re.M)}


def test_workflow_commands_exist_and_run_in_order():
    modes = bootstrap_modes()
    assert "dvc repro" in modes["repro"] and "pytest" in modes["test"] and "install" in modes
    used = [m for s in steps() for m in re.findall(r"bash bootstrap\.sh (\w+)", s.get("run", ""))]
    assert used == ["install", "repro"] and set(used) <= set(modes)
    install, repro = step_index(r"^bash bootstrap\.sh install$"), step_index(r"^bash bootstrap\.sh repro$")
    post = step_index(r"cml comment update")
    pull = step_index(r"dvc pull")
    assert install < pull < repro < post
    # the python the workflow sets up is the one bootstrap.sh requires, and the venv is where it makes it
    version = re.search(r"sys\.version_info\[:2\] != \((\d+), (\d+)\)", (ROOT / "bootstrap.sh").read_text())
    setup = next(s for s in steps() if s.get("uses", "").startswith("actions/setup-python"))
    assert setup["with"]["python-version"] == ".".join(version.groups())
    assert "[ -x .venv/bin/python ] || \"$PY\" -m venv .venv" in (ROOT / "bootstrap.sh").read_text()
    assert "source .venv/bin/activate" in steps()[post]["run"] and ".venv/bin/dvc" in steps()[pull]["run"]


def test_posted_comment_is_made_of_pipeline_outputs():
    run = steps()[step_index(r"cml comment update")]["run"]
    assert "dvc metrics diff main --md" in run and "dvc params diff main --md" in run
    dvc_yaml = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    outs = {next(iter(o)) if isinstance(o, dict) else o
            for st in dvc_yaml["stages"].values() for o in st.get("outs", [])}
    made_here = {m.group(1): m.start() for m in re.finditer(r"^\s*genlab plots .* --md (\S+)$", run, re.M)}
    for m in re.finditer(r"^\s*cat (\S+)", run, re.M):
        path = m.group(1)
        if path in made_here:   # the curves against main, drawn by `genlab plots` earlier in the step
            assert made_here[path] < m.start(), f"{path} is shown before `genlab plots` writes it"
            continue
        assert path in outs, f"the comment shows {path}, which no stage writes"
    assert any(st.get("metrics") for st in dvc_yaml["stages"].values())    # something for metrics diff
    assert steps()[step_index(r"cml comment update")]["env"]["REPO_TOKEN"] == "${{ secrets.GITHUB_TOKEN }}"


def test_readme_and_ci_use_the_same_commands():
    readme = (ROOT / "README.md").read_text()
    assert "bash bootstrap.sh repro" in readme and "bash bootstrap.sh test" in readme
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^exec bash bootstrap\.sh test$", ci, re.M) and "test" in bootstrap_modes()


def test_stand_in_runner_refuses_a_venv_older_than_the_requirements(tmp_path):
    """tests/workflow_runner.py lends this venv to its clone; bootstrap.sh would re-install into it (and point its
    editable `genlab` at the temporary clone) if its stamp were stale, so a stale venv is refused before any step."""
    venv = Path(sys.executable).parents[1]
    before = sorted(p.name for p in venv.iterdir())
    files = project_files()
    data, mode = files["requirements.txt"]
    stale = dict(files, **{"requirements.txt": (data + b"# a pin the venv has not seen\n", mode)})
    with pytest.raises(RuntimeError, match=r"run `bash bootstrap\.sh install`"):
        prepare(tmp_path / "stale", {}, stale)
    assert sorted(p.name for p in venv.iterdir()) == before
    clone, _ = prepare(tmp_path / "current", {}, files)   # the venv as installed: lent as is
    assert (clone / ".venv").resolve() == venv.resolve()
