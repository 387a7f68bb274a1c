"""params.yaml changed while the pipeline runs (issue 26, item 1): a second `dvc exp run` in the same
workspace is refused by DVC's lock, but writes its values into params.yaml first. Every stage run by DVC
compares the params.yaml it reads (at its start and again at its end) with what check_params validated
at the start of the run, and stops with one line, so that DVC records nothing of it."""

import shutil
import subprocess
import sys

import pytest
import yaml

from conftest import ROOT, copy_project, dvc, own_lines, tool_env
from genlab import stage

LINE = "error: " + stage.PARAMS_CHANGED


def run_stage(cwd, name, *args, **env):
    return subprocess.run([sys.executable, "-m", f"stages.{name}", *args], cwd=cwd, capture_output=True, text=True,
                          env=tool_env(PYTHONPATH=str(ROOT), **env), timeout=300)


@pytest.fixture
def checked(tmp_path):
    """A folder with params.yaml and dvc.yaml in which check_params ran (its record written)."""
    for f in ("params.yaml", "dvc.yaml"):
        shutil.copy(ROOT / f, tmp_path / f)
    r = run_stage(tmp_path, "check_params", "--out", "data/params-checked.txt", "--record", stage.PARAMS_RECORD,
                  DVC_STAGE="check_params")
    assert r.returncode == 0, r.stderr
    return tmp_path


def edit(folder, key, value):
    params = yaml.safe_load((folder / "params.yaml").read_text())
    section, name = key.split(".")
    params[section][name] = value
    (folder / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def test_a_stage_stops_when_params_changed_after_check_params(checked, shared_data):
    edit(checked, "train.seed", 6)          # what a refused second `dvc exp run -S train.seed=6` leaves
    r = run_stage(checked, "fetch", "--out", "data/raw", DVC_STAGE="fetch", GENLAB_MIRROR=str(shared_data))
    assert r.returncode == 1 and own_lines(r.stderr) == [LINE], r.stderr
    assert not (checked / "data" / "raw").exists()
    # run by hand (not by DVC) a stage uses params.yaml as it is
    r = run_stage(checked, "fetch", "--out", "data/raw", GENLAB_MIRROR=str(shared_data))
    assert r.returncode == 0, r.stderr


def test_comments_and_layout_are_not_a_change(checked, shared_data):
    text = (checked / "params.yaml").read_text()
    (checked / "params.yaml").write_text("# a comment\n" + text.replace(": ", ":  "))
    r = run_stage(checked, "fetch", "--out", "data/raw", DVC_STAGE="fetch", GENLAB_MIRROR=str(shared_data))
    assert r.returncode == 0, r.stderr
    assert (checked / "data" / "raw").is_dir()


def test_a_change_while_the_stage_runs_fails_it(checked, monkeypatch, capsys):
    """params.yaml written while a stage runs (a long training): the stage fails at its end, so DVC
    records neither its outputs nor the new values in dvc.lock."""
    monkeypatch.chdir(checked)
    monkeypatch.setenv("DVC_STAGE", "train_gan")
    monkeypatch.setattr(stage, "_checked", [])
    monkeypatch.setattr(stage, "quiet_native_logs", lambda: None)

    def main():
        stage.read_params()
        edit(checked, "train.seed", 6)

    with pytest.raises(SystemExit) as e:
        stage.run(main)
    assert e.value.code == 1 and own_lines(capsys.readouterr().err) == [LINE]


def test_the_record_unreadable_is_one_line(checked, monkeypatch):
    monkeypatch.chdir(checked)
    monkeypatch.setenv("DVC_STAGE", "fetch")
    (checked / stage.PARAMS_RECORD).write_text("{")
    with pytest.raises(stage.GenlabError, match=r"data/params-validated.json is unreadable: run `dvc repro`"):
        stage.read_params()


@pytest.mark.slow   # dvc in subprocesses
def test_through_dvc_nothing_is_recorded(tmp_path, shared_data):
    """Real DVC: check_params ran, then params.yaml changed; `dvc repro -s fetch` (check_params not run
    again) stops at fetch, and dvc.lock records nothing for it."""
    proj = copy_project(tmp_path / "proj")
    env = tool_env(GENLAB_MIRROR=str(shared_data), PYTHONPATH=str(ROOT))
    dvc(proj, "repro", "-s", "check_params", env=env, check=True)
    lock = (proj / "dvc.lock").read_text()
    edit(proj, "data.seed", 7)
    r = dvc(proj, "repro", "-s", "fetch", env=env)
    assert r.returncode != 0 and LINE in own_lines(r.stderr), r.stdout + r.stderr
    assert (proj / "dvc.lock").read_text() == lock and not (proj / "data" / "raw").exists()
