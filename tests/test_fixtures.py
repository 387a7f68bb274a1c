"""The suite's project fixtures take the published run from git's HEAD and the code from the working tree:
after a user's own experiments (params.yaml, dvc.lock, metrics, curves and studies rewritten in the
workspace) the temporary clones the tests build are those of a clean clone, except for uncommitted code."""

import json
import subprocess

import yaml

from conftest import copy_project, project_files, published, published_paths


def _experiment_in(ws):
    """What `dvc exp run -S train.epochs=5000` and `python -m studies.spread` leave in a workspace."""
    params = yaml.safe_load((ws / "params.yaml").read_text())
    params["train"]["epochs"] = 5000
    (ws / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (ws / "dvc.lock").write_text((ws / "dvc.lock").read_text().replace("epochs: 9000", "epochs: 5000"))
    evaluation = json.loads((ws / "metrics" / "evaluate.json").read_text())
    evaluation["gan"]["fd"] = 99.0
    (ws / "metrics" / "evaluate.json").write_text(json.dumps(evaluation))
    (ws / "studies" / "spread" / "results.json").write_text("{}")
    (ws / "dvclive" / "train_gan" / "metrics.json").unlink()           # an output DVC removed before a run
    (ws / "metrics" / "curves" / "extra.tsv").write_text("step\tfd\n")  # an output the experiment added


def test_a_workspace_after_experiments_gives_the_clean_clones_fixtures(tmp_path):
    clean = copy_project(tmp_path / "clean")             # the project as committed (one commit)
    ws = tmp_path / "ws"
    subprocess.run(["git", "clone", "-q", str(clean), str(ws)], check=True)
    _experiment_in(ws)
    (ws / "genlab" / "__init__.py").write_text((ws / "genlab" / "__init__.py").read_text() + "# uncommitted\n")
    (ws / "genlab" / "new_module.py").write_text("X = 1\n")  # untracked code is tested too

    before, after = project_files(clean), project_files(ws)
    changed = {f for f in before.keys() | after.keys() if before.get(f) != after.get(f)}
    assert changed == {"genlab/__init__.py", "genlab/new_module.py"}, changed
    assert after["genlab/__init__.py"][0].endswith(b"# uncommitted\n")
    assert yaml.safe_load(published("params.yaml", root=ws))["train"]["epochs"] == \
        yaml.safe_load((clean / "params.yaml").read_text())["train"]["epochs"] != 5000
    assert json.loads(published("metrics/evaluate.json", root=ws))["gan"]["fd"] != 99.0
    # and a temporary clone built from the workspace holds the published run
    proj = copy_project(tmp_path / "proj", root=ws)
    for f in ("params.yaml", "dvc.lock", "metrics/evaluate.json", "studies/spread/results.json",
              "dvclive/train_gan/metrics.json"):
        assert (proj / f).read_bytes() == (clean / f).read_bytes(), f
    assert not (proj / "metrics" / "curves" / "extra.tsv").exists()


def test_what_counts_as_published():
    """params, the lock, every git-kept (cache: false) output of dvc.yaml, and the studies' results."""
    paths = published_paths()
    for p in ("params.yaml", "dvc.lock", "metrics/evaluate.json", "metrics/evaluator.json", "metrics/floor.json",
              "metrics/curves", "dvclive/train_gan/metrics.json", "dvclive/train_vae/plots/metrics",
              "reports/validation.json", "studies/spread/"):
        assert p in paths, (p, paths)
    assert not any(p.startswith(("genlab", "stages", "tests", "docs")) for p in paths), paths
