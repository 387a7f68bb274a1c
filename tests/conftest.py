"""Shared fixtures: real Fashion-MNIST from ../shared/data (the mirror) or Debian's package."""

import io
import os
import re
from pathlib import Path


def _cap_threads():
    """One share of the cores per pytest-xdist worker (GENLAB_THREADS, unless set): the suite's workers and the
    stages they start run side by side, and on 2 cores three processes with TensorFlow's and OpenBLAS's default
    pools (a thread per core each, spinning while they wait) spent a third of the CPU on each other
    (docs/testing.md, "What it costs"). Set before numpy and TensorFlow load, here and in every subprocess.
    xdist's workers inherit the controlling process's environment, so a cap that process set is set anew."""
    mark = "GENLAB_TESTS_SET_THREADS"
    for var in os.environ.pop(mark, "").split():
        os.environ.pop(var, None)
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT") or 1)
    threads = os.environ.get("GENLAB_THREADS") or str(max(1, (os.cpu_count() or 1) // workers))
    names = ("GENLAB_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS",
             "OPENBLAS_NUM_THREADS")
    set_here = [var for var in names if var not in os.environ]
    for var in set_here:
        os.environ[var] = threads
    os.environ[mark] = " ".join(set_here)


_cap_threads()

# gto (which DVC imports to check artifact names) calls logging.config.dictConfig when first imported, and that
# closes every logging handler alive. Once TensorFlow is loaded, one of them is absl's, writing to the sys.stderr
# of its day: pytest's capture file, whose closing broke every later test in that worker (CI, 2026-12-04).
# Imported here, before any test loads TensorFlow, it has nothing of ours to close.
import gto.log  # noqa: E402,F401
import numpy as np  # noqa: E402  (after the thread cap)
import pytest  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
# No run store (genlab.training.checkpoint.run_store) unless a test sets one: runs in a test start
# from what the test put in their folders, never from a finished run of another test or session.
os.environ["GENLAB_RUN_STORE"] = "off"
_CANDIDATES = [
    Path(os.environ.get("GENLAB_TEST_DATA", ROOT.parent / "shared" / "data")),
]


def shared_data_dir():
    """The folder holding fashion-mnist/ (and mnist-test/) with the real .gz files."""
    for d in _CANDIDATES:
        if (d / "fashion-mnist" / "train-labels-idx1-ubyte.gz").exists():
            return d
    pytest.fail("real Fashion-MNIST not found: put ../shared/data beside the project "
                "or set GENLAB_TEST_DATA to a folder holding fashion-mnist/*.gz")



# How `bash bootstrap.sh test` shares the suite between its workers (pytest-xdist, --dist loadscope
# --no-loadscope-reorder). A module's tests go to one worker together, so its module fixtures are built once,
# except in the modules of SPREAD (the longest), whose tests go to the workers one by one: their fixtures are
# session-scoped or shared_once, so they are not rebuilt when a worker runs another module's test in between.
# Workers take the queue from its head, in the order of FIRST: the builds the others wait for first (the smoke
# pipeline, under the spread study), then long work that needs no shared build (the CML workflow's own pipeline,
# the in-process extension tests, the image-folder pipeline, the fault clone) while they run, and the tests that
# use a shared build later (AFTER: the extension tests through DVC other than the first, which builds their
# base, wait behind test_faults, so that no worker sits on the build's lock); then the modules with slow tests,
# so that the quick ones fill the gaps at the end.
SPREAD = {"test_experiments.py", "test_faults.py", "test_train_extend.py"}
FIRST = ["test_spread.py", "test_cml_workflow.py", "test_train_extend.py", "test_pipeline_image_folder.py",
         "test_faults.py", "test_experiments.py"]
AFTER = {"extension_base": "test_faults.py"}     # fixture -> the module its tests wait behind (all but the first)


def pytest_xdist_make_scheduler(config, log):
    """pytest-xdist's loadscope scheduling with the scopes above (xdist's own loadgroup marks do not reach
    its scheduler under pytest 9, which no longer lets a plugin rename a test)."""
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class Scheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid):
            module = nodeid.split("::", 1)[0]
            return nodeid if Path(module).name in SPREAD else module
    return Scheduling(config, log)


def pytest_collection_modifyitems(config, items):
    """The queue's order (FIRST, then the modules with slow tests, then the rest)."""
    slow = {item.path.name for item in items if item.get_closest_marker("slow")}
    first_user = {}
    for item in items:
        for fixture in AFTER:
            if fixture in getattr(item, "fixturenames", ()):
                first_user.setdefault(fixture, item)

    def place(item):
        name = item.path.name
        for fixture, behind in AFTER.items():
            if fixture in getattr(item, "fixturenames", ()) and item is not first_user[fixture]:
                return FIRST.index(behind) + 0.5, False
        return (FIRST.index(name) if name in FIRST else len(FIRST)), name not in slow
    items.sort(key=place)          # stable: a module's tests stay together and in their order


@pytest.fixture(scope="session")
def shared_data():
    return shared_data_dir()


@pytest.fixture(scope="session")
def fmnist_raw(shared_data):
    """Full raw Fashion-MNIST as uint8 arrays: dict x_train, y_train, x_test, y_test."""
    from genlab.data.readers import read_idx
    d = shared_data / "fashion-mnist"
    return {
        "x_train": read_idx(d / "train-images-idx3-ubyte.gz"),
        "y_train": read_idx(d / "train-labels-idx1-ubyte.gz"),
        "x_test": read_idx(d / "t10k-images-idx3-ubyte.gz"),
        "y_test": read_idx(d / "t10k-labels-idx1-ubyte.gz"),
    }


@pytest.fixture(scope="session")
def fmnist_small(fmnist_raw):
    """A small real slice in the processed layout: float32 (N, 28, 28, 1) in [-1, 1], int32 labels.

    Returns dict train=(x, y) with 4,000 images, test=(x, y) with 1,000 images.
    """
    def prep(x, y, n):
        x = x[:n].astype(np.float32)[..., None] / 127.5 - 1.0
        return x, y[:n].astype(np.int32)
    return {"train": prep(fmnist_raw["x_train"], fmnist_raw["y_train"], 4000),
            "test": prep(fmnist_raw["x_test"], fmnist_raw["y_test"], 1000)}


@pytest.fixture(scope="session")
def small_evaluator(fmnist_small):
    """An evaluator trained briefly (2 epochs on the 4,000-image slice): weak as a classifier, but its
    features separate clean from degraded images, which is all the metric and curve tests need."""
    from genlab.evaluation.evaluator import train_evaluator
    x, y = fmnist_small["train"]
    xt, yt = fmnist_small["test"]
    from genlab.params import Evaluator
    model, _ = train_evaluator(x, y, xt[:200], yt[:200], Evaluator.of(
        filters=[16, 32], feature_dim=64, dropout=0.3, epochs=2, warmup_epochs=1, batch_size=128, lr=0.003, seed=0),
        n_classes=10, out=io.StringIO())
    return model


@pytest.fixture(scope="session")
def processed_slice(fmnist_small, tmp_path_factory):
    """A data/processed folder (normalize's layout) holding the real 4,000 + 1,000 image slice
    (the 1,000 test images double as the validation split)."""
    import json
    d = tmp_path_factory.mktemp("processed")
    (x, y), (xv, yv) = fmnist_small["train"], fmnist_small["test"]
    for split, (a, b) in {"train": (x, y), "val": (xv, yv), "test": (xv, yv)}.items():
        np.save(d / f"{split}_x.npy", a)
        np.save(d / f"{split}_y.npy", b)
    meta = {"dataset": "fashion_mnist", "shape": [28, 28, 1], "range": [-1.0, 1.0], "n_classes": 10,
            "class_names": [str(k) for k in range(10)], "counts": {"train": len(x), "val": len(xv), "test": len(xv)}}
    (d / "meta.json").write_text(json.dumps(meta))
    return d


class Lines:
    """A file-like `out=` for the training functions that keeps what they print: str(lines) is the text."""

    def __init__(self):
        self.parts = []

    def write(self, s):
        self.parts.append(s)

    def flush(self):
        pass

    def __str__(self):
        return "".join(self.parts)


def _cache_false_paths(tree):
    """The paths dvc.yaml declares with `cache: false` (git keeps them), anywhere in its tree."""
    if isinstance(tree, dict):
        for key, value in tree.items():
            if isinstance(value, dict) and value.get("cache") is False:
                yield key
            yield from _cache_false_paths(value)
    elif isinstance(tree, list):
        for item in tree:
            yield from _cache_false_paths(item)


def published_paths(root=ROOT):
    """What the project publishes through git rather than writes as code: params.yaml, dvc.lock, every
    `cache: false` output of dvc.yaml (metrics, curves, dvclive) and the studies' result folders.
    `dvc exp run` and the studies rewrite these in a user's workspace; the tests compare against the
    published run, so they take them from git's HEAD (published(), copy_project)."""
    import yaml
    tree = yaml.safe_load((root / "dvc.yaml").read_text())
    return ["params.yaml", "dvc.lock", *sorted(set(_cache_false_paths(tree))), "studies/spread/",
            "studies/augmentation/"]


def _is_published(f, paths):
    return any(f == p.rstrip("/") or f.startswith(p.rstrip("/") + "/") for p in paths)


def _git(root, *args):
    import subprocess
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True).stdout


def published(path, root=ROOT):
    """A published file's text as committed (git's HEAD), whatever an experiment wrote in the workspace."""
    return _git(root, "show", f"HEAD:{path}").decode()


def project_files(root=ROOT):
    """{relative path: (bytes, mode)} of the project as a clean clone would have it: code (tracked and
    untracked, not ignored) from the working tree, so uncommitted code is what gets tested, and the
    published files (published_paths) from HEAD, so a user's experiments never become "the published run"."""
    paths = published_paths(root)
    files = {}
    listed = _git(root, "ls-files", "-z", "--cached", "--others", "--exclude-standard").decode()
    for f in filter(None, listed.split("\0")):
        if not _is_published(f, paths) and (root / f).is_file():
            files[f] = ((root / f).read_bytes(), (root / f).stat().st_mode & 0o777)
    for f in filter(None, _git(root, "ls-tree", "-r", "-z", "--name-only", "HEAD").decode().split("\0")):
        if _is_published(f, paths):
            files[f] = (_git(root, "show", f"HEAD:{f}"), 0o644)
    return files


def write_files(files, dest):
    """Write project_files()' {path: (bytes, mode)} under dest (folders made); returns the paths, sorted."""
    for f, (data, mode) in files.items():
        (dest / f).parent.mkdir(parents=True, exist_ok=True)
        (dest / f).write_bytes(data)
        (dest / f).chmod(mode)
    return sorted(files)


def copy_project(dest, root=ROOT):
    """The project as a clean clone would have it (project_files) in dest, made a git repo with one
    commit. Returns dest."""
    import subprocess
    write_files(project_files(root), dest)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    subprocess.run(["git", "init", "-q"], cwd=dest, check=True)
    subprocess.run(git + ["add", "-A"], cwd=dest, check=True)
    subprocess.run(git + ["commit", "-qm", "clone"], cwd=dest, check=True)
    return dest


def tool_env(**extra):
    """Environment for subprocesses: the venv's bin first on PATH (dvc, python)."""
    import sys
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env.update(extra)
    return env


def dvc(proj, *args, env=None, check=False):
    """`dvc <args>` in proj (env: tool_env() unless given); with check, assert it succeeded.
    Returns the CompletedProcess (text stdout/stderr)."""
    import subprocess
    r = subprocess.run(["dvc", *args], cwd=proj, capture_output=True, text=True, env=env or tool_env())
    if check:
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r


def flat_keys(tree, prefix="", leaves=False):
    """The dotted keys of a params tree: every key (sections too), or with leaves=True only the values.
    The mapping under evaluate.min_evaluator_accuracy (dataset -> gate) counts as one value."""
    for k, v in tree.items():
        inner = isinstance(v, dict) and k != "min_evaluator_accuracy"
        if not (leaves and inner):
            yield prefix + k
        if inner:
            yield from flat_keys(v, prefix + k + ".", leaves)


# A native library's log line: TensorFlow/absl ("I0000 00:00:17.. 123 port.cc:153] ...",
# "2026-01-01 10:00:00.123456: W tensorflow/...", "WARNING: All log messages before absl::...") and the
# continuation line of cpu_feature_guard's notice. Stages keep these off stderr (genlab.stage), but a
# library run in-process or a GENLAB_TF_LOG=1 run may print them; they are never the project's words.
_NATIVE = re.compile(r"^([IWEF]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ \S+:\d+\]"
                     r"|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWEF] "
                     r"|WARNING: All log messages before absl::InitializeLog\(\)"
                     r"|To enable the following instructions: .* rebuild TensorFlow)")


def own_lines(stderr):
    """stderr's lines without native libraries' log lines (see _NATIVE): what the project printed."""
    return [ln for ln in stderr.strip().splitlines() if not _NATIVE.match(ln)]


# The whole pipeline at smoke size: tiny trainings, small samples; real data, every stage
# (test_pipeline_report checks its report, test_experiments its stages and params, test_faults runs it
# a second time in another clone and compares the metrics files byte for byte).
SMOKE = {
    "train": {"epochs": 60, "log_every": 20, "ckpt_every": 30, "batch_size": 64, "snapshot_every": 20},
    # (the code mixture's fit on a 60-iteration VAE's codes takes ~100 EM rounds: 14 s with 20 components, 4 s
    # with 3; the default `vae.prior: gmm` path is the same)
    "vae": {"prior_components": 3},
    "evaluator": {"epochs": 2, "warmup_epochs": 1, "filters": [8, 16], "feature_dim": 32},
    "sample": {"n": 1000},
    "evaluate": {"n_samples": 1000, "iw_k": 4, "kid_subset_size": 200, "kid_subsets": 10,
                 "two_sample_max_iter": 50, "pixel_detector_epochs": 1, "curve_n": 500,
                 "min_evaluator_accuracy": {"fashion_mnist": 0.5, "mnist": 0.5, "url": 0.0}},
    "cas": {"n": 1000, "epochs": 2},
}


def smoke_params(proj):
    """Rewrite proj/params.yaml with the SMOKE values."""
    import yaml
    params = yaml.safe_load((proj / "params.yaml").read_text())
    for section, values in SMOKE.items():
        params[section].update(values)
    (proj / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def run_smoke_pipeline(dest, data_dir, **extra_env):
    """copy_project into dest, smoke params, `dvc repro` from the mirror; returns (project, env)."""
    import subprocess
    proj = copy_project(dest)
    smoke_params(proj)
    env = tool_env(GENLAB_MIRROR=str(data_dir))
    r = subprocess.run(["dvc", "repro"], cwd=proj, capture_output=True, text=True, env={**env, **extra_env})
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return proj, env


def shared_once(tmp_path_factory, name, build):
    """build(folder) once per test run, however many pytest-xdist workers ask: the first builds it into
    <the run's temporary root>/shared-<name> under a file lock, the others wait for it and reuse it.
    build returns a JSON-serialisable value (paths as strings); every caller gets that value back.
    Without xdist it is an ordinary session fixture's build. What it builds is shared: treat it as
    read-only (copy_tree first to change anything, or to run dvc in it)."""
    import json

    from filelock import FileLock
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent                     # the run's root, shared by the workers (basetemp/popen-gwN)
    done = base / f"shared-{name}.json"
    with FileLock(str(base / f"shared-{name}.lock")):
        if not done.exists():
            done.write_text(json.dumps(build(base / f"shared-{name}")))
        return json.loads(done.read_text())


def _smoke(tmp_path_factory, shared_data):
    """The smoke pipeline's build, once per run: its project, audit file and run store (as strings)."""
    def build(base):
        base.mkdir(parents=True)
        audit, store = base / "params-read.txt", base / "store"
        proj, _ = run_smoke_pipeline(base / "proj", shared_data, GENLAB_PARAMS_AUDIT=str(audit),
                                     GENLAB_RUN_STORE=str(store))
        return {"proj": str(proj), "audit": str(audit), "store": str(store)}
    return shared_once(tmp_path_factory, "smoke", build)


@pytest.fixture(scope="session")
def smoke_pipeline(tmp_path_factory, shared_data):
    """A clean clone with the whole pipeline reproduced at smoke size (params changed, not committed),
    built once per run (shared_once). Shared by several test modules and workers: treat it as read-only,
    and copy it with copy_tree before running dvc in it. Returns (project dir, env, audit file): the audit
    file lists "<stage> <key>" for every param key each stage read (GENLAB_PARAMS_AUDIT)."""
    built = _smoke(tmp_path_factory, shared_data)
    return Path(built["proj"]), tool_env(GENLAB_MIRROR=str(shared_data)), Path(built["audit"])


@pytest.fixture(scope="session")
def smoke_store(tmp_path_factory, shared_data):
    """The run store the smoke pipeline ran with (its own, empty at the start: a store changes nothing about
    a run, which test_faults checks): the finished trainings and the quality-curve rows it scored, which
    test_train_extend continues from. Read-only: copy it to use it."""
    return Path(_smoke(tmp_path_factory, shared_data)["store"])


@pytest.fixture(scope="session")
def cml_workflow(tmp_path_factory, shared_data):
    """.github/workflows/cml.yaml's run steps in a fresh clone of a pull-request branch with the smoke params
    (tests/workflow_runner.py): the whole pipeline from scratch a second time, in another clone. Built once
    per run; test_cml_workflow checks the comment, test_faults that its metrics equal smoke_pipeline's byte
    for byte. Returns (result of run_workflow, its record folder)."""
    from workflow_runner import run_workflow

    def build(work):
        flat = {f"{section}.{key}": v for section, values in SMOKE.items() for key, v in values.items()}
        return run_workflow(work, flat, project_files(), env=tool_env(GENLAB_MIRROR=str(shared_data)))
    result = shared_once(tmp_path_factory, "cml", build)
    return result, Path(result["record"])


def copy_tree(src, dest):
    """A copy of a project folder (workspace, git and DVC cache) to mutate without touching src.
    DVC's cache files are read-only and never changed in place, so they are hard-linked."""
    import shutil

    def copy(s, d):
        if "/.dvc/cache/" in s:
            os.link(s, d)
        else:
            shutil.copy2(s, d)
    shutil.copytree(src, dest, symlinks=True, copy_function=copy)
    return dest


FASHION_NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                 "Ankle boot"]


@pytest.fixture(scope="session")
def tiny_models(processed_slice, tmp_path_factory):
    """A conditional DCGAN and a conv VAE trained for a few dozen iterations on the real slice (seconds:
    what `genlab serve` and the export need, not good images), and a meta.json with Fashion-MNIST's class
    names. Returns {"gan", "vae", "meta", "data"} paths; treat them as read-only."""
    import json

    from genlab.params import Gan, Vae
    from genlab.training.gan import train_gan
    from genlab.training.loop import TrainSettings, load_training_data
    from genlab.training.vae import train_vae

    root = tmp_path_factory.mktemp("tiny_models")
    dataset = load_training_data(processed_slice, ["train", "val"], in_memory=True)
    settings = TrainSettings(iterations=40, batch_size=64, seed=0, log_every=20, ckpt_every=40)
    quiet = Lines()
    train_gan(dataset, root / "gan", root / "ck" / "gan", root / "live" / "gan", out=quiet, settings=settings,
              gan=Gan.of(arch="dcgan", conditional=True, latent_dim=32, hidden=64, filters=8, lr=1e-3, beta_1=0.5,
                         beta_2=0.999, d_lr=0.0, loss="hinge", ema=0.0))
    train_vae(dataset, root / "vae", root / "ck" / "vae", root / "live" / "vae", out=quiet, settings=settings,
              vae=Vae.of(arch="conv", variant="vae", latent_dim=8, beta=1.0, hidden=64, filters=8, lr=1e-3,
                         prior="normal", prior_components=10, temperature=1.0))
    meta = json.loads((processed_slice / "meta.json").read_text())
    (root / "meta.json").write_text(json.dumps({**meta, "class_names": FASHION_NAMES}))
    return {"gan": root / "gan", "vae": root / "vae", "meta": root / "meta.json", "data": processed_slice}
