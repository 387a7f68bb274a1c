"""The seed spread (genlab.evaluation.spread, studies/spread.py, the report's ± and the CI comment's
noise verdicts): known answers of the statistics and the rule, the report with a matching and a
non-matching spread, and the study end to end at smoke size: a queued `dvc exp run` per seed on real
data, collected into studies/spread/results.json, shown by `dvc repro report`, and applied by
`python -m studies.spread diff` to a change."""

import json
import math
import subprocess
import sys

import pytest
import yaml

from conftest import ROOT, copy_tree, dvc, own_lines, published
from genlab.errors import GenlabError
from genlab.evaluation.spread import NOISE_FACTOR, diff_rows, params_differences, summarize, verdict
from genlab.outputs.report import build

PARAMS = yaml.safe_load(published("params.yaml"))


def test_summarize_gives_mean_sample_sd_and_range_over_seeds():
    runs = {0: {"gan": {"fd": 8.0, "classes_covered": 10}, "cas_n": 100},
            1: {"gan": {"fd": 9.0, "classes_covered": 10}, "cas_n": 100},
            2: {"gan": {"fd": 10.0, "classes_covered": 9}, "cas_n": 100, "extra": 1.0}}
    s = summarize(runs)
    assert s["gan.fd"] == {"mean": 9.0, "std": 1.0, "min": 8.0, "max": 10.0, "n": 3}
    assert math.isclose(s["gan.classes_covered"]["std"], math.sqrt(1 / 3))
    assert s["cas_n"]["std"] == 0.0 and "extra" not in s          # only keys every run has
    with pytest.raises(ValueError):
        summarize({0: runs[0]})


def test_the_noise_rule_is_two_root_two_sd():
    assert math.isclose(NOISE_FACTOR, 2 * math.sqrt(2))
    assert verdict(0.29, 0.1) == "beyond noise" and verdict(-0.29, 0.1) == "beyond noise"
    assert verdict(0.28, 0.1) == "within noise" and verdict(0.0, 0.0) == "within noise"
    assert verdict(0.1, 0.0) == "beyond noise" and verdict(0.1, None) == ""
    stats = {"gan.fd": {"std": 0.5}, "gan.recall": {"std": 0.01}}
    changes = {"metrics/evaluate.json": {"gan.fd": {"old": 9.0, "new": 8.0, "diff": -1.0},
                                         "gan.recall": {"old": 0.55, "new": 0.56, "diff": 0.01},
                                         "vae.fd": {"old": 50.0, "new": 40.0, "diff": -10.0},
                                         "gan.note": {"old": "a", "new": "b"}},
               "metrics/evaluator.json": {"test_accuracy": {"old": 0.9, "new": 0.8, "diff": -0.1}}}
    rows = {r[0]: r for r in diff_rows(changes, stats)}
    assert set(rows) == {"gan.fd", "gan.recall", "vae.fd"}
    assert rows["gan.fd"][3:] == (-1.0, 0.5, "within noise")        # 1.0 < 2.83 * 0.5
    assert rows["gan.recall"][5] == "within noise" and rows["vae.fd"][4:] == (None, "")


def test_params_differences_ignore_the_seed_key():
    other = yaml.safe_load(yaml.safe_dump(PARAMS))
    other["train"]["seed"] = 7
    assert params_differences(PARAMS, other, ignore={"train.seed"}) == []
    other["gan"]["lr"] = 0.001
    del other["cas"]["n"]
    assert params_differences(PARAMS, other, ignore={"train.seed"}) == ["cas.n", "gan.lr"]


def report(tmp_path, params, spread):
    meta = {"dataset": "fashion_mnist", "n_classes": 10, "counts": {"train": 54000}, "shape": [28, 28, 1],
            "class_names": [f"c{i}" for i in range(10)]}
    evaluation = {"n": 1000, "gan": {"fd": 8.84, "recall": 0.566}, "vae": {"fd": 55.8}, "floor": {"fd": 1.0}}
    return build(out_md=tmp_path / "report.md", meta=meta, params=params, evaluation=evaluation,
                 evaluator={"test_accuracy": 0.91}, figures={}, curves={}, validation={"evaluated": 9, "failed": 0},
                 spread=spread)


def spread_of(params):
    runs = {s: {"gan": {"fd": 8.0 + s, "recall": 0.55 + 0.01 * s}, "vae": {"fd": 55.0 + 2 * s}} for s in (0, 1, 2)}
    return {"date": "2026-12-02", "command": "python -m studies.spread", "key": "train.seed", "seeds": [0, 1, 2],
            "rule": "RULE.", "stats": summarize(runs), "params": params, "runs": {}}


def test_report_shows_sd_beside_each_metric_when_the_spread_matches(tmp_path):
    other_seed = yaml.safe_load(yaml.safe_dump(PARAMS))
    other_seed["train"]["seed"] = 5                      # the seed key itself may differ
    md = report(tmp_path, PARAMS, spread_of(other_seed))
    assert "| Fréchet distance | 8.840 ± 1 | 55.800 ± 2 |" in md
    assert "| recall (k=3) | 0.566 ± 0.01 | – |" in md
    assert "## Seed spread" in md
    assert "| Fréchet distance | 9 ± 1 (8 – 10) | 57 ± 2 (55 – 59) |" in md
    assert "| recall (k=3) | 0.56 ± 0.01 (0.55 – 0.57) | – |" in md


def test_report_says_why_a_spread_of_other_params_is_not_shown(tmp_path):
    other = yaml.safe_load(yaml.safe_dump(PARAMS))
    other["train"]["epochs"] = 60
    md = report(tmp_path, PARAMS, spread_of(other))
    assert "±" not in md and "## Seed spread" not in md
    assert "measured at params that differ from these in `train.epochs`" in md
    assert "No seed spread measured yet" in report(tmp_path, PARAMS, None)


@pytest.mark.parametrize("study, message", [
    ({"key": "train.seed", "seeds": [0, 1]}, "error: spread.seeds must be at least three different integers >= 0, "
                                             "got [0, 1]"),
    ({"key": "train.sead", "seeds": [0, 1, 2]}, "error: spread.key 'train.sead' is not a key of params.yaml: "
                                                "did you mean train.seed?"),
    ({"key": "train.seed", "sedes": [0, 1, 2]}, "error: spread.sedes is not a key of {study}: did you mean "
                                                "spread.seeds? (the study's keys: docs/experiments.md, Seed noise)"),
    ({"kye": "train.seed", "seeds": [0, 1, 2], "seed": 4},
     "error: spread.kye is not a key of {study}: did you mean spread.key?; spread.seed is not a key of {study}: "
     "did you mean spread.seeds? (the study's keys: docs/experiments.md, Seed noise)"),
    ({"key": "gan.arch", "seeds": [0, 1, 2]}, "error: spread.key 'gan.arch' holds 'dcgan' in params.yaml, not an "
                                              "integer seed"),
])
def test_bad_study_settings_are_refused_with_one_line(tmp_path, study, message):
    (tmp_path / "spread.yaml").write_text(yaml.safe_dump({"spread": study}, sort_keys=False))
    r = subprocess.run([sys.executable, "-m", "studies.spread", "--study", str(tmp_path / "spread.yaml")],
                       cwd=ROOT, capture_output=True, text=True)
    assert r.returncode != 0 and own_lines(r.stderr) == [message.format(study=tmp_path / "spread.yaml")]


def test_a_misspelled_section_of_the_study_file_is_named(tmp_path):
    """Issue 26 item 9: the section itself misspelled names the study file and its doc, not params.yaml."""
    (tmp_path / "spread.yaml").write_text("sprad:\n  key: train.seed\n  seeds: [0, 1, 2]\n")
    r = subprocess.run([sys.executable, "-m", "studies.spread", "--study", str(tmp_path / "spread.yaml")],
                       cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 1 and own_lines(r.stderr) == [
        f"error: sprad is not a section of {tmp_path / 'spread.yaml'}: did you mean spread? (the study's keys: "
        "docs/experiments.md, Seed noise)"]


def _queue_status(*rows, active, idle=0):
    """`dvc queue status` as DVC 3.67 prints it."""
    lines = ["Task     Name        Created    Status"]
    lines += [f"{i:07x}  exp-{i}  07:54 AM   {st}" for i, st in enumerate(rows)]
    return "\n".join(lines) + f"\n\nWorker status: {active} active, {idle} idle\n"


def test_a_queue_worker_that_stops_with_experiments_queued_is_started_again(monkeypatch, capsys):
    """Seen on 2026-12-05: DVC's worker stopped after the first of two experiments, the second stayed
    "Queued" with no worker, and the study would have waited for ever; it now starts the worker again
    (a bounded number of times, then one line says what to run)."""
    from studies import spread
    statuses = iter([_queue_status("Running", "Queued", active=1), _queue_status("Success", "Queued", active=0),
                     _queue_status("Success", "Running", active=1), _queue_status("Success", "Success", active=0)])
    calls = []

    def fake_run(cmd, check=True):
        calls.append(cmd[1:3])
        return subprocess.CompletedProcess(cmd, 0, next(statuses) if cmd[1:3] == ["queue", "status"] else "", "")
    monkeypatch.setattr(spread, "run", fake_run)
    spread.wait_for_queue(poll=0)
    assert calls == [["queue", "status"]] * 2 + [["queue", "start"]] + [["queue", "status"]] * 2
    assert "starting it again" in capsys.readouterr().err
    # a worker that keeps stopping: a clear error after the restarts, not an endless wait
    monkeypatch.setattr(spread, "run", lambda cmd, check=True: subprocess.CompletedProcess(
        cmd, 0, _queue_status("Success", "Queued", active=0), ""))
    with pytest.raises(GenlabError, match="keeps stopping with experiments queued: run `dvc queue start`"):
        spread.wait_for_queue(poll=0, restarts=2)
    # a worker between two tasks (idle) or busy is left alone
    assert not spread.no_worker(_queue_status("Queued", active=0, idle=1))
    assert not spread.no_worker(_queue_status("Running", active=1))


# --- end to end at smoke size ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def spread_run(smoke_pipeline, tmp_path_factory):
    """A copy of the smoke pipeline (committed), then `python -m studies.spread`: two queued experiments."""
    proj, env, _ = smoke_pipeline
    proj = copy_tree(proj, tmp_path_factory.mktemp("spread") / "proj")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    subprocess.run(git + ["add", "-A"], cwd=proj, check=True)
    subprocess.run(git + ["commit", "-qm", "smoke run"], cwd=proj, check=True)
    r = subprocess.run([sys.executable, "-m", "studies.spread"], cwd=proj, capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return proj, env, git


def results(proj):
    return json.loads((proj / "studies/spread/results.json").read_text())


@pytest.mark.slow   # the smoke pipeline, then two queued experiments
def test_spread_runs_each_seed_as_a_queued_experiment_and_summarizes(spread_run):
    proj, env, _ = spread_run
    res = results(proj)
    assert res["key"] == "train.seed" and res["seeds"] == [0, 1, 2]
    runs = res["runs"]
    assert runs["0"]["rev"].startswith("workspace ")
    assert runs["0"]["metrics"] == json.loads((proj / "metrics/evaluate.json").read_text())
    for seed in ("1", "2"):                        # real experiments (git refs of DVC), with their own metrics
        assert runs[seed]["metrics"]["gan"]["fd"] != runs["0"]["metrics"]["gan"]["fd"]
        shown = subprocess.run(["git", "show", f"{runs[seed]['rev']}:params.yaml"], cwd=proj, check=True,
                               capture_output=True, text=True).stdout
        assert yaml.safe_load(shown)["train"]["seed"] == int(seed)
        assert json.loads(subprocess.run(["git", "show", f"{runs[seed]['rev']}:metrics/evaluate.json"], cwd=proj,
                                         check=True, capture_output=True, text=True).stdout) == runs[seed]["metrics"]
    fds = [runs[s]["metrics"]["gan"]["fd"] for s in ("0", "1", "2")]
    st = res["stats"]["gan.fd"]
    assert math.isclose(st["mean"], sum(fds) / 3) and st["std"] > 0 and st["min"] == min(fds)
    assert res["stats"]["floor.fd"]["std"] == 0.0   # the floor does not depend on the training seed
    assert "| Fréchet distance |" in (proj / "studies/spread/table.md").read_text()


@pytest.mark.slow
def test_spread_collect_is_deterministic_and_the_report_shows_it(spread_run):
    proj, env, _ = spread_run
    before = results(proj)
    r = subprocess.run([sys.executable, "-m", "studies.spread", "collect"], cwd=proj, capture_output=True,
                       text=True, env=env)
    assert r.returncode == 0, r.stderr
    after = results(proj)
    assert {k: v for k, v in after.items() if k not in ("seconds", "date")} == \
        {k: v for k, v in before.items() if k not in ("seconds", "date")}
    r = dvc(proj, "repro", "report", env=env)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    md = (proj / "reports/report.md").read_text()
    sd = after["stats"]["gan.fd"]["std"]
    assert "## Seed spread" in md and " ± " in md and "over 3 training seeds" in md
    fd_row = next(line for line in md.splitlines() if line.startswith("| Fréchet distance |"))
    assert "±" in fd_row.split("|")[2] and fd_row.split("|")[2].strip().endswith(f"{sd:.2g}")


@pytest.mark.slow
def test_spread_diff_puts_a_change_beside_the_noise(spread_run):
    proj, env, git = spread_run
    work = copy_tree(proj, proj.parent / "diff")
    subprocess.run(git + ["add", "-A"], cwd=work, check=True)
    subprocess.run(git + ["commit", "-qm", "spread"], cwd=work, check=True)
    seed1 = results(work)["runs"]["1"]["rev"]
    refs = subprocess.run(["git", "for-each-ref", "refs/exps", "--format=%(objectname) %(refname)"], cwd=work,
                          check=True, capture_output=True, text=True).stdout.splitlines()
    name = next(ref.rsplit("/", 1)[1] for ref in refs if ref.startswith(seed1))
    dvc(work, "exp", "apply", name, env=env, check=True)   # the workspace is now the seed-1 run
    # (the experiment was queued before the spread existed: keep the spread this test committed)
    subprocess.run(["git", "checkout", "HEAD", "--", "studies/spread/results.json"], cwd=work, check=True)
    r = subprocess.run([sys.executable, "-m", "studies.spread", "diff", "HEAD", "--md"], cwd=work,
                       capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    rows = [line.split("|")[1:-1] for line in r.stdout.splitlines() if line.startswith("| gan.")]
    assert rows and {c.strip() for c in [row[5] for row in rows]} <= {"within noise", "beyond noise"}
    fd = next(row for row in rows if row[0].strip() == "gan.fd")
    assert fd[4].strip() == f"{results(work)['stats']['gan.fd']['std']:.3g}"
    # against a revision whose params differ (here: a smaller train.epochs), no verdict is offered
    (work / "params.yaml").write_text((work / "params.yaml").read_text().replace("epochs: 60", "epochs: 40"))
    subprocess.run(git + ["commit", "-qam", "other params"], cwd=work, check=True)
    r = subprocess.run([sys.executable, "-m", "studies.spread", "diff", "HEAD", "--md"], cwd=work,
                       capture_output=True, text=True, env=env)
    assert r.returncode == 0 and "not available" in r.stdout and "train.epochs" in r.stdout, r.stdout + r.stderr


@pytest.mark.slow
def test_spread_refuses_a_workspace_whose_metrics_are_stale(spread_run, tmp_path):
    proj, env, _ = spread_run
    work = copy_tree(proj, tmp_path / "stale")
    (work / "params.yaml").write_text((work / "params.yaml").read_text().replace("epochs: 60", "epochs: 40"))
    r = subprocess.run([sys.executable, "-m", "studies.spread", "collect"], cwd=work, capture_output=True,
                       text=True, env=env)
    assert r.returncode != 0 and own_lines(r.stderr) == [
        "error: the workspace's pipeline is not up to date (`dvc status` lists changes): run `dvc repro` first, "
        "so that its metrics are the run of its own seed"]
    assert not (work / "studies/spread/results.json").exists() or \
        (work / "studies/spread/results.json").read_bytes() == (proj / "studies/spread/results.json").read_bytes()
