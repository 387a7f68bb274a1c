"""`dvc repro` of the data stages in a temporary clone, on real data from the mirror."""

import json

import numpy as np
import pytest
import yaml

from conftest import copy_project, dvc, tool_env
from genlab.data.processed import load_meta, load_split
from genlab.identity import file_digest as sha256_file

pytestmark = pytest.mark.slow   # every test runs `dvc repro` in a clone


@pytest.fixture(scope="module")
def repro_data(tmp_path_factory, shared_data):
    proj = copy_project(tmp_path_factory.mktemp("clone"))
    env = tool_env(GENLAB_MIRROR=str(shared_data))
    r = dvc(proj, "repro", "normalize", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    return proj, env, r


def test_repro_normalize_from_clean_clone(repro_data):
    proj, env, first = repro_data
    # a clean clone has none of the cached outputs (check_params' and validate's stamps, raw and processed
    # data), so every stage up to normalize runs, whatever dvc.lock records
    ran = {line.split("'")[1] for line in first.stdout.splitlines() if line.startswith("Running stage")}
    assert ran == {"check_params", "fetch", "validate", "normalize"}, first.stdout
    assert json.loads((proj / "reports" / "validation.json").read_text())["success"]
    stamp = json.loads((proj / "data" / "validated.json").read_text())   # what normalize checks it read
    assert stamp["success"] and stamp["raw_manifest_sha256"] == sha256_file(proj / "data" / "raw" / "dataset.json")
    assert "from mirror" in first.stdout + first.stderr
    meta = load_meta(proj / "data" / "processed")
    assert meta["dataset"] == "fashion_mnist" and meta["counts"]["test"] == 10000
    x, _ = load_split(proj / "data" / "processed", "val")
    assert x.shape == (6000, 28, 28, 1) and np.isfinite(x).all()
    status = dvc(proj, "status", "normalize", env=env)
    assert status.returncode == 0 and "up to date" in status.stdout


def test_second_repro_runs_nothing(repro_data):
    proj, env, _ = repro_data
    r = dvc(proj, "repro", "normalize", env=env)
    assert r.returncode == 0 and "Running stage" not in r.stdout


def test_changed_param_reruns_only_its_stage(repro_data):
    proj, env, _ = repro_data
    report = (proj / "reports" / "validation.json").read_bytes()
    y_before = load_split(proj / "data" / "processed", "val")[1].copy()
    params = yaml.safe_load((proj / "params.yaml").read_text())
    params["normalize"]["seed"] = 5
    (proj / "params.yaml").write_text(yaml.safe_dump(params))
    r = dvc(proj, "repro", "normalize", env=env)
    assert r.returncode == 0, r.stderr
    ran = {line.split("'")[1] for line in r.stdout.splitlines() if line.startswith("Running stage")}
    assert ran == {"check_params", "normalize"}          # check_params runs on any params change
    assert (proj / "reports" / "validation.json").read_bytes() == report
    assert not np.array_equal(load_split(proj / "data" / "processed", "val")[1], y_before)


def test_bad_param_type_stops_with_one_line(repro_data):
    proj, env, _ = repro_data
    params = (proj / "params.yaml").read_text()
    out = proj / "data" / "processed"
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    try:
        (proj / "params.yaml").write_text(params.replace("val_fraction: 0.1", "val_fraction: lots"))
        r = dvc(proj, "repro", "normalize", env=env)
        assert r.returncode != 0
        assert "error: normalize.val_fraction must be a number in [0.0, 0.5], got 'lots'" in r.stderr
        assert "Traceback" not in r.stderr
        # check_params, the first stage, refused it: normalize never ran, so DVC did not delete its output
        ran = {line.split("'")[1] for line in r.stdout.splitlines() if line.startswith("Running stage")}
        assert ran == {"check_params"}
        assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    finally:
        (proj / "params.yaml").write_text(params)
