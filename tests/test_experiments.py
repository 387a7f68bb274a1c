"""Experiments: change one param and `dvc repro` re-runs exactly the stages that depend on it.

On the smoke-size pipeline (conftest.smoke_pipeline, real Fashion-MNIST):
- each stage reads exactly the param keys dvc.yaml lists for it (GENLAB_PARAMS_AUDIT);
- for EVERY key in params.yaml, `dvc status` names exactly the stages that list it;
- for a representative key of each section (and a code change), a real `dvc repro` (for evaluate: a queued
  sweep) re-runs exactly the stages of the table "Which change re-runs what" in docs/experiments.md, and the other
  stages' outputs keep their bytes;
- invalid values are refused by check_params with one clear line before any stage runs;
- a queued sweep (`dvc exp run --queue -S`, `dvc queue start -j 2`), `dvc exp show`, `dvc metrics diff`,
  `dvc params diff` and `dvc exp apply` work.
"""

import ast
import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import ROOT, copy_tree, dvc, flat_keys, own_lines, shared_once, tool_env

DVC = yaml.safe_load((ROOT / "dvc.yaml").read_text())

# The table "Which change re-runs what" in docs/experiments.md (check_params, ~1 s, runs on every params
# change; check_data, ~1 s, whenever the data or a param it lists changes: see reruns).
AFTER_NORMALIZE = ["normalize", "check_data", "train_gan", "train_vae", "train_evaluator", "floor", "sample@gan",
                   "sample@vae", "evaluate", "report"]
RERUNS = {
    "data": ["fetch", "validate", *AFTER_NORMALIZE],
    "validate": ["validate", "report"],
    "normalize": AFTER_NORMALIZE,
    "train": ["train_gan", "train_vae", "sample@gan", "sample@vae", "evaluate", "report"],
    "gan": ["train_gan", "sample@gan", "evaluate", "report"],
    "vae": ["train_vae", "sample@vae", "evaluate", "report"],
    "evaluator": ["train_evaluator", "floor", "sample@gan", "sample@vae", "evaluate", "report"],
    "sample.n": ["sample@gan", "sample@vae", "evaluate", "report"],
    "sample.seed": ["sample@gan", "sample@vae", "evaluate", "report"],
    "sample.grid": ["sample@gan", "sample@vae", "report"],       # the samples keep their bytes:
    "sample.steps": ["sample@gan", "sample@vae", "report"],      # evaluate is skipped
    "sample.rows": ["sample@gan", "sample@vae", "report"],
    "sample.attribute": ["sample@gan", "sample@vae", "report"],
    "evaluate": ["evaluate", "report"],     # + floor for the keys it lists (see reruns)
    "cas": ["floor", "evaluate", "report"],
}


def reruns(key):
    data_limit = {"check_data"} if key in declared("check_data") else set()
    floor = {"floor"} if key in declared("floor") else set()
    return set(RERUNS.get(key) or RERUNS[key.split(".")[0]]) | {"check_params"} | data_limit | floor


def stages_run(stdout):
    return {line.split("'")[1] for line in stdout.splitlines() if line.startswith("Running stage")}


def changed(value):
    """A different value of the same kind (dvc status compares values, it does not validate them)."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + 1
    if isinstance(value, str):
        return value + "x"
    if isinstance(value, list):
        return value + value[-1:]
    return {**value, "extra": 0.5}


def set_param(proj, key, value):
    params = yaml.safe_load((proj / "params.yaml").read_text())
    node = params
    *path, last = key.split(".")
    for part in path:
        node = node[part]
    old, node[last] = node[last], value
    (proj / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return old


def commit_all(proj):
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    subprocess.run(git + ["add", "-A"], cwd=proj, check=True)
    subprocess.run(git + ["commit", "-qm", "smoke baseline"], cwd=proj, check=True)


def declared(stage_name):
    name = stage_name.split("@")[0]
    return {p for p in DVC["stages"][name].get("params", []) if isinstance(p, str)}


def output_digests(proj, stages):
    """sha256 of every file of the outputs (and metrics) of these stages, from dvc.lock."""
    lock = yaml.safe_load((proj / "dvc.lock").read_text())["stages"]
    digests = {}
    for stage in stages:
        for out in lock[stage].get("outs", []):
            path = proj / out["path"]
            files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
            for f in files:
                digests[str(f.relative_to(proj))] = hashlib.sha256(f.read_bytes()).hexdigest()
    return digests


ALL_STAGES = ["check_params", "fetch", "validate", *AFTER_NORMALIZE]


@pytest.fixture(scope="session")
def baseline(smoke_pipeline, tmp_path_factory):
    """The smoke pipeline copied and committed (dvc.lock, metrics, smoke params) as a user's repo is. Built
    once per test run (shared_once) and read-only: a test that changes anything works on a copy (project)."""
    proj, env, audit = smoke_pipeline

    def build(root):
        commit_all(copy_tree(proj, root / "base"))
        return str(root / "base")
    return Path(shared_once(tmp_path_factory, "experiments-base", build)), env, audit


@pytest.fixture
def project(baseline, tmp_path):
    base, env, _ = baseline
    return copy_tree(base, tmp_path / "proj"), env


# --- which keys each stage reads ------------------------------------------------------------------

@pytest.mark.slow   # the smoke pipeline, then dvc
def test_each_stage_reads_exactly_the_params_dvc_yaml_lists(baseline):
    _, _, audit = baseline
    read = {}
    for line in audit.read_text().splitlines():
        stage, key = line.split()
        read.setdefault(stage, set()).add(key)
    everything = set()
    for name, stage in DVC["stages"].items():
        if name in ("check_params", "report"):      # they read the whole params.yaml
            continue
        keys = declared(name)
        assert read.get(name) == keys, f"{name} reads {sorted(read.get(name, []))}, dvc.yaml lists {sorted(keys)}"
        everything |= keys
    assert read["check_params"] == everything      # check_params runs every stage's checks


# --- every key: dvc status names exactly the stages that list it ---------------------------------

# One process for every key's `dvc status` (DVC's Repo.status: what the command prints with --json): a command
# per key would spend most of its time starting DVC, and DVC used inside the test process would leave its
# logging bound to pytest's closed capture streams.
STATUS_PER_KEY = """
import json, sys
from pathlib import Path
from dvc.repo import Repo
variants = json.loads(Path(sys.argv[1]).read_text())
original = Path("params.yaml").read_text()
seen = {}
try:
    for key, text in variants.items():
        Path("params.yaml").write_text(text)
        with Repo(".") as repo:
            seen[key] = sorted(repo.status())
finally:
    Path("params.yaml").write_text(original)
print(json.dumps(seen))
"""


@pytest.mark.slow   # the smoke pipeline, then dvc
def test_dvc_status_names_exactly_the_stages_of_each_key(project, tmp_path):
    base, env = project
    params_text = (base / "params.yaml").read_text()
    keys = list(flat_keys(yaml.safe_load(params_text), leaves=True))
    assert len(keys) >= 40
    (tmp_path / "other-images").mkdir()                      # data.path must name a folder that exists
    (tmp_path / "other-images" / "a.txt").write_text("a")
    variants = {}
    for key in keys:
        old = set_param(base, key, None)
        set_param(base, key, str(tmp_path / "other-images") if key == "data.path" else changed(old))
        variants[key] = (base / "params.yaml").read_text()
        (base / "params.yaml").write_text(params_text)
    (tmp_path / "variants.json").write_text(json.dumps(variants))
    r = subprocess.run([sys.executable, "-c", STATUS_PER_KEY, str(tmp_path / "variants.json")], cwd=base, env=env,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    seen = json.loads(r.stdout.strip().splitlines()[-1])
    for key in keys:
        expected = {s for s in ALL_STAGES if key in declared(s)} | {"check_params", "report"}
        assert set(seen[key]) == expected, f"{key}: dvc status names {seen[key]}, expected {sorted(expected)}"
        first = min(reruns(key) - {"check_params"}, key=ALL_STAGES.index)
        assert first in expected, f"{key}: the docs/experiments.md table starts at {first}, dvc.yaml disagrees"
    assert (base / "params.yaml").read_text() == params_text
    assert json.loads(dvc(base, "status", "--json", env=env).stdout) == {}      # the command: nothing changed


# --- representative keys: a real repro re-runs exactly the table's stages --------------------------

# (No normalize key: it re-runs the whole pipeline after fetch and validate, which the data key below and
# the status test above already pin down; a real run of it would be the smoke pipeline once more.)
# The evaluate row runs as a queued sweep (test_queued_sweep_reruns_its_stages_and_shows_and_diffs_against_...).
REAL = [("validate.max_blank_fraction", 0.002), ("gan.lr", 0.0003), ("vae.beta", 0.5), ("evaluator.dropout", 0.2),
        ("sample.grid", 4)]


@pytest.mark.slow   # the smoke pipeline, then dvc
@pytest.mark.parametrize("key,value", REAL, ids=[k for k, _ in REAL])
def test_changing_a_param_reruns_exactly_its_stages(project, key, value):
    proj, env = project
    expected = reruns(key)
    untouched = [s for s in ALL_STAGES if s not in expected]
    before = output_digests(proj, untouched)
    lock_before = yaml.safe_load((proj / "dvc.lock").read_text())["stages"]
    set_param(proj, key, value)
    r = dvc(proj, "repro", env=env)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert stages_run(r.stdout) == expected
    lock_after = yaml.safe_load((proj / "dvc.lock").read_text())["stages"]
    assert {s: lock_after[s] for s in untouched} == {s: lock_before[s] for s in untouched}
    assert output_digests(proj, untouched) == before
    assert "Running stage" not in dvc(proj, "repro", env=env).stdout      # and then it is up to date


@pytest.mark.slow   # the smoke pipeline
def test_evaluate_refuses_a_floor_of_other_inputs(project):
    """evaluate run by hand after a change the floor depends on stops in one line instead of reporting a
    stale floor beside the models' scores, and writes nothing."""
    proj, env = project
    before = (proj / "metrics" / "evaluate.json").read_bytes()
    set_param(proj, "cas.seed", 1)
    r = subprocess.run(DVC["stages"]["evaluate"]["cmd"].split(), cwd=proj, env=env, capture_output=True, text=True)
    assert r.returncode != 0
    assert [ln for ln in own_lines(r.stderr) if ln.startswith("error:")] == [
        "error: metrics/floor.json was computed from other data, another evaluator or other evaluate/cas settings: "
        "run `dvc repro floor`"], r.stderr[-1500:]
    assert (proj / "metrics" / "evaluate.json").read_bytes() == before


@pytest.mark.slow   # the smoke pipeline, then dvc
def test_changing_code_reruns_that_stage_and_its_downstream_only(project):
    proj, env = project
    src = proj / "genlab" / "training" / "vae.py"
    code = src.read_text()
    # a comment: train_vae re-runs, its outputs come out byte-identical, so DVC stops there
    src.write_text(code + "\n# an edit\n")
    r = dvc(proj, "repro", env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    assert stages_run(r.stdout) == {"check_params", "train_vae"}
    # a change of behaviour (batches drawn with the other RNG stream): different weights, downstream re-runs
    batch_rng = "stateless_uniform([batch_size], seeds[0]"
    assert code.count(batch_rng) == 1
    src.write_text(code.replace(batch_rng, batch_rng.replace("seeds[0]", "seeds[1]")))
    r = dvc(proj, "repro", env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    # check_params lists the code folders whole: it re-runs, its output is unchanged, nothing follows from it
    assert stages_run(r.stdout) == {"check_params", "train_vae", "sample@vae", "evaluate", "report"}


@pytest.mark.slow   # the smoke pipeline, then dvc
def test_noop_repro_runs_nothing(project):
    proj, env = project
    r = dvc(proj, "repro", env=env)
    assert r.returncode == 0 and stages_run(r.stdout) == set()


# --- invalid values: refused at once, nothing touched -----------------------------------------------

INVALID = [
    ("data.name", "cifar", "data.name must be one of 'fashion_mnist', 'mnist', 'url'"),
    ("normalize.range", [1, -1], "normalize.range must be [low, high] with low < high"),
    ("normalize.val_fraction", 0.9, "normalize.val_fraction must be a number in [0.0, 0.5], got 0.9"),
    ("train.epochs", -5, "train.epochs must be a positive integer, got -5"),
    ("train.batch_size", "big", "train.batch_size must be a positive integer, got 'big'"),
    ("gan.arch", "stylegan", "gan.arch must be one of 'mlp', 'dcgan', got 'stylegan'"),
    ("gan.lr", 0, "gan.lr must be a number > 0, got 0.0"),
    ("gan.conditional", "yes", "gan.conditional must be true or false, got 'yes'"),
    ("vae.variant", "vq", "vae.variant must be one of 'vae', 'ae', got 'vq'"),
    ("vae.beta", -1, "vae.beta must be a number >= 0.0, got -1.0"),
    ("evaluator.filters", [16, 0], "evaluator.filters must be a non-empty list of positive integers"),
    ("evaluator.warmup_epochs", 2, "evaluator.warmup_epochs (2) must be less than evaluator.epochs (2): "
     "lower evaluator.warmup_epochs or raise evaluator.epochs"),
    ("sample.attribute", [3, 3], "sample.attribute must be [from_class, to_class], two different class ids"),
    ("sample.grid", 0, "sample.grid must be an integer in [1, 32], got 0"),
    ("evaluate.n_samples", 1, "evaluate.n_samples must be an integer >= 2, got 1"),
    ("evaluate.min_evaluator_accuracy", {"fashion_mnist": 1.5},
     "evaluate.min_evaluator_accuracy.fashion_mnist must be a number in [0, 1], got 1.5"),
    ("evaluate.coverage_min_share", 2, "evaluate.coverage_min_share must be a number in [0.0, 1.0], got 2.0"),
]


@pytest.mark.slow   # the smoke pipeline, then dvc
def test_invalid_values_are_refused_before_any_stage_runs(baseline, tmp_path):
    base, env, _ = baseline
    proj = copy_tree(base, tmp_path / "proj")
    outputs = output_digests(proj, [s for s in ALL_STAGES if s != "check_params"])
    params_text = (proj / "params.yaml").read_text()
    # each value through check_params' command as dvc.yaml runs it (a `dvc repro` each would spend most of its
    # time starting DVC; the repro below shows that DVC stops at this stage)
    for key, value, message in INVALID:
        set_param(proj, key, value)
        r = subprocess.run(DVC["stages"]["check_params"]["cmd"].split(), cwd=proj, env=env, capture_output=True,
                           text=True)
        assert r.returncode != 0, key
        assert f"error: {message}" in r.stderr, f"{key}: {r.stderr[-800:]}"
        (proj / "params.yaml").write_text(params_text)
    # several bad values through `dvc repro`: all named in the one line, no other stage runs, nothing touched
    set_param(proj, "train.epochs", 0)
    set_param(proj, "evaluate.pr_k", 0)
    r = dvc(proj, "repro", env=env)
    line = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert r.returncode != 0 and len(line) == 1 and "train.epochs" in line[0] and "evaluate.pr_k" in line[0]
    assert stages_run(r.stdout) == {"check_params"}
    assert output_digests(proj, [s for s in ALL_STAGES if s != "check_params"]) == outputs
    # a key that does not exist: DVC refuses `-S`
    x = dvc(proj, "exp", "run", "-S", "gan.learning_rate=0.1", env=env)
    assert x.returncode != 0 and "gan.learning_rate" in x.stderr


@pytest.mark.slow   # the smoke pipeline, then dvc
def test_unknown_key_is_refused_naming_the_closest_known_key(baseline, tmp_path):
    base, env, _ = baseline
    proj = copy_tree(base, tmp_path / "proj")
    outputs = output_digests(proj, ALL_STAGES[1:])
    params = yaml.safe_load((proj / "params.yaml").read_text())
    params["train"]["epoch"] = 500
    (proj / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    r = dvc(proj, "repro", env=env)
    assert r.returncode != 0 and "params.yaml is valid" not in r.stdout
    assert [ln for ln in own_lines(r.stderr) if ln.startswith("error:")] == [
        "error: train.epoch is not a known param: did you mean train.epochs?"], r.stderr[-800:]
    assert stages_run(r.stdout) == {"check_params"}
    assert output_digests(proj, ALL_STAGES[1:]) == outputs


# The data-dependent limits: refused by check_data, after normalize and before any long stage
# (the smoke data: 54,000 training, 10,000 test images, 10 classes).
DATA_LIMITS = [
    ({"train.batch_size": 100000},
     ["train.batch_size (100000) is larger than the training split (54000 images): lower train.batch_size"]),
    ({"sample.attribute": [0, 42]},
     ["sample.attribute [0, 42] names class 42 but the data have 10 classes (0..9)"]),
    ({"evaluate.n_samples": 20000, "sample.n": 20000, "evaluate.kid_subset_size": 15000,
      "evaluator.batch_size": 60000},
     ["evaluator.batch_size (60000) is larger than the training split (54000 images)",
      "evaluate.n_samples (20000) is larger than the test split (10000 images)",
      "evaluate.kid_subset_size (15000) is larger than the 10000 images scored"]),
]


@pytest.mark.slow   # the smoke pipeline, then dvc
@pytest.mark.parametrize("changes, fragments", DATA_LIMITS, ids=["batch", "attribute", "sizes"])
def test_data_dependent_limits_are_refused_before_any_long_stage_runs(baseline, tmp_path, changes, fragments):
    base, env, _ = baseline
    proj = copy_tree(base, tmp_path / "proj")
    long_stages = ALL_STAGES[ALL_STAGES.index("check_data") + 1:]
    outputs = output_digests(proj, long_stages)
    for key, value in changes.items():
        set_param(proj, key, value)
    r = dvc(proj, "repro", env=env)
    assert r.returncode != 0
    errors = [ln for ln in own_lines(r.stderr) if ln.startswith("error:")]
    assert len(errors) == 1, r.stderr[-1500:]
    for fragment in fragments:                       # every problem in the one line
        assert fragment in errors[0], errors[0]
    assert stages_run(r.stdout) == {"check_params", "check_data"}
    assert output_digests(proj, long_stages) == outputs          # nothing deleted, nothing trained
    for stage in long_stages:
        for out in yaml.safe_load((proj / "dvc.lock").read_text())["stages"][stage].get("outs", []):
            assert (proj / out["path"]).exists(), out["path"]


# --- experiments: exp run -S, exp show, metrics/params diff, a queued sweep -----------------------

@pytest.mark.slow   # the smoke pipeline, then two queued experiments
def test_queued_sweep_reruns_its_stages_and_shows_and_diffs_against_the_baseline(project):
    """`dvc exp run --queue -S evaluate.pr_k=2,4`, then `dvc queue start -j 2` with one thread per job (two jobs on
    two cores, as docs/experiments.md says): each job runs exactly the stages of the table's evaluate row;
    `exp show`, `metrics diff` and `params diff` against the baseline show each value and what it changed; an
    experiment applied to the workspace leaves every other stage's outputs and dvc.lock entries as they were, and
    `dvc repro` then runs nothing. (One sweep for the evaluate row and the commands: `dvc exp run -S` in the
    workspace runs in test_train_extend, train.epochs, and a queue of training seeds in test_spread.)"""
    proj, env = project
    env = {**env, "GENLAB_THREADS": "1"}
    expected = reruns("evaluate.pr_k")
    untouched = [s for s in ALL_STAGES if s not in expected]
    before = output_digests(proj, untouched)
    lock_before = yaml.safe_load((proj / "dvc.lock").read_text())["stages"]
    q = dvc(proj, "exp", "run", "--queue", "-S", "evaluate.pr_k=2,4", env=env)
    assert q.returncode == 0 and q.stdout.count("Queued experiment") == 2, q.stdout + q.stderr
    s = dvc(proj, "queue", "start", "-j", "2", env=env)
    assert s.returncode == 0, s.stderr
    deadline = time.time() + 900
    while time.time() < deadline:
        status = dvc(proj, "queue", "status", env=env).stdout
        if "Queued" not in status and "Running" not in status:
            break
        time.sleep(3)
    assert status.count("Success") == 2, status
    show = dvc(proj, "exp", "show", "--csv", "--drop", ".*", "--keep", "Experiment|evaluate.pr_k|gan.precision",
               env=env).stdout.splitlines()
    assert show[0] == "Experiment,gan.precision,evaluate.pr_k"
    rows = {r.split(",")[2]: r.split(",") for r in show[1:] if r.split(",")[0]}   # named experiments
    assert set(rows) == {"2", "4"}
    assert rows["2"][1] != rows["4"][1]                 # k changes precision
    for value, (name, _, _) in rows.items():
        logs = dvc(proj, "queue", "logs", name, env=env).stdout
        assert stages_run(logs) == expected, logs
        m = json.loads(dvc(proj, "metrics", "diff", "HEAD", name, "--json", env=env).stdout)
        moved = {key for key, v in m["metrics/evaluate.json"].items() if v.get("diff")}
        assert moved and {key.split(".")[1] for key in moved} <= {"precision", "recall"}, m   # k's metrics only
        p = json.loads(dvc(proj, "params", "diff", "HEAD", name, "--json", env=env).stdout)
        assert p == {"params.yaml": {"evaluate.pr_k": {"old": 3, "new": int(value), "diff": int(value) - 3}}}, p
    dvc(proj, "exp", "apply", rows["2"][0], env=env, check=True)
    assert yaml.safe_load((proj / "params.yaml").read_text())["evaluate"]["pr_k"] == 2
    lock_after = yaml.safe_load((proj / "dvc.lock").read_text())["stages"]
    assert {s: lock_after[s] for s in untouched} == {s: lock_before[s] for s in untouched}
    assert output_digests(proj, untouched) == before
    assert "Running stage" not in dvc(proj, "repro", env=env).stdout


@pytest.mark.slow   # TensorFlow in several subprocesses
def test_thread_limit_is_applied_and_checked():
    code = ("import os; from genlab import stage\n"
            "def main():\n"
            "    import tensorflow as tf\n"
            "    x = tf.random.normal([256, 256])\n"
            "    for _ in range(5): x = tf.matmul(x, x) / 256.0\n"
            "    print(len(os.listdir('/proc/self/task')))\n"
            "stage.run(main)\n")
    counts = {}
    for n in ("1", "8"):
        r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                           env=tool_env(GENLAB_THREADS=n, PYTHONPATH=str(ROOT)))
        assert r.returncode == 0, r.stderr[-1000:]
        counts[n] = int(r.stdout.split()[-1])
    assert counts["1"] < counts["8"]
    bad = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         env=tool_env(GENLAB_THREADS="two", PYTHONPATH=str(ROOT)))
    assert bad.returncode == 1 and own_lines(bad.stderr) == [
        "error: GENLAB_THREADS must be a positive integer, got 'two': unset it or fix it"]


def test_thread_limit_reaches_the_blas_numpy_loaded_before_it():
    # A stage imports numpy (and its OpenBLAS, a pool of a thread per core) before stage.run applies
    # GENLAB_THREADS: the cap must still reach that pool, and the BLAS and OpenMP libraries loaded after it.
    code = ("import numpy\nfrom threadpoolctl import threadpool_info\nfrom genlab import stage\n"
            "def pools():\n    return sorted({i['num_threads'] for i in threadpool_info()})\n"
            "def main():\n"
            "    import scipy.linalg, sklearn.mixture  # noqa: F401  (their own BLAS and OpenMP)\n"
            "    print(pools())\n"
            "print(pools())\n"
            "stage.run(main)\n")
    env = {k: v for k, v in tool_env(GENLAB_THREADS="1", PYTHONPATH=str(ROOT)).items()
           if k not in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")}      # the suite's own cap off: a user's shell
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr[-1000:]
    before, after = (ast.literal_eval(line) for line in r.stdout.split("\n")[:2])
    assert max(before) > 1, f"this check needs 2 or more cores: numpy's BLAS started with {before} threads"
    assert after == [1], f"GENLAB_THREADS=1 left BLAS/OpenMP pools of {after} threads"


def test_samples_are_written_with_stable_bytes(tmp_path):
    from genlab.io import write_npz
    x = np.random.default_rng(0).random((4, 28, 28, 1), dtype=np.float32)
    write_npz(tmp_path / "a.npz", x=x, labels=np.arange(4))
    (tmp_path / "a.npz").rename(tmp_path / "b.npz")
    write_npz(tmp_path / "a.npz", x=x, labels=np.arange(4))
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    with np.load(tmp_path / "a.npz") as z:
        assert np.array_equal(z["x"], x) and np.array_equal(z["labels"], np.arange(4))
