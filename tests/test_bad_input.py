"""Issue 18, part 2: bad input that used to get through is refused early, in one line, losing nothing.

  - check_params: unknown keys and sections (closest known key named), each message once, no
    TensorFlow/Keras import, `gan.lr` says "> 0", the evaluator warm-up says what to change
  - check_data: every data-dependent limit (batch vs split and vs memory, evaluate.n_samples, KID subset,
    pr_k, sample.attribute) in one line, before any long stage (the dvc-level runs: test_experiments)
  - training stages: a read-only or full output folder refused before training, checkpoints intact
  - image folders: a 16-bit grey PNG scaled to 8 bits; validate names a blank image's file, a stray
    label's index and the param that decides
  - a stage run by a python without the project's packages; bootstrap.sh with a PYTHON that does not
    exist; fetch from a server that accepts connections and never answers (GENLAB_FETCH_TIMEOUT)
"""

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import ROOT, copy_project, own_lines, published, tool_env
from genlab.errors import GenlabError

PARAMS = yaml.safe_load(published("params.yaml"))


def params(**changes):
    """A copy of the project's params.yaml with changes {"train.epochs": 5, ...} (None deletes)."""
    p = json.loads(json.dumps(PARAMS))
    for key, value in changes.items():
        node = p
        *path, last = key.split(".")
        for part in path:
            node = node.setdefault(part, {})
        if value is None:
            del node[last]
        else:
            node[last] = value
    return p


def stage_env(**extra):
    """The worktree's stages and genlab first (not an installed copy of another checkout)."""
    return tool_env(PYTHONPATH=str(ROOT), **extra)


def run_stage(cwd, stage, *args, preexec_fn=None, timeout=300):
    return subprocess.run([sys.executable, "-m", f"stages.{stage}", *args], cwd=cwd, env=stage_env(),
                          capture_output=True, text=True, preexec_fn=preexec_fn, timeout=timeout)


def error_line(r):
    lines = own_lines(r.stderr)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "Traceback" not in r.stderr, r.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    return lines[0]


# ---- check_params ------------------------------------------------------------------------------

def check_params_error(p):
    from stages import check_params
    with pytest.raises(GenlabError) as e:
        check_params.check(p, dvc_yaml=ROOT / "dvc.yaml")
    return str(e.value)


def test_project_params_pass():
    from stages import check_params
    check_params.check(PARAMS, dvc_yaml=ROOT / "dvc.yaml")


@pytest.mark.parametrize("changes, message", [
    ({"train.epoch": 500}, "train.epoch is not a known param: did you mean train.epochs?"),
    ({"gan.laten_dim": 8}, "gan.laten_dim is not a known param: did you mean gan.latent_dim?"),
    ({"trian": {"epochs": 5}}, "trian is not a known params section: did you mean train?"),
    ({"gan.zzzz": 1}, "gan.zzzz is not a known param: remove it (the known keys are in docs/experiments.md, Params)"),
    ({"evaluate.min_evaluator_accuracy.cifar": 0.5}, None),   # a gate per dataset: a mapping read whole
])
def test_unknown_keys_are_refused_naming_the_closest_known_key(changes, message):
    from stages import check_params
    if message is None:
        check_params.check(params(**changes), dvc_yaml=ROOT / "dvc.yaml")
        return
    assert check_params_error(params(**changes)) == message


def test_unknown_key_is_found_even_when_a_stage_stops_at_a_bad_value():
    # train_gan stops at train.epochs before reading the other train.* keys: they are still known
    line = check_params_error(params(**{"train.epochs": 0, "train.epoch": 5, "gan.lr": -1}))
    assert line == ("train.epochs must be a positive integer, got 0; gan.lr must be a number > 0, got -1.0; "
                    "train.epoch is not a known param: did you mean train.epochs?")


@pytest.mark.parametrize("changes, message", [
    ({"train.epochs": -5}, "train.epochs must be a positive integer, got -5"),     # read by 2 stages, said once
    ({"gan.lr": 0}, "gan.lr must be a number > 0, got 0.0"),
    ({"vae.lr": -0.1}, "vae.lr must be a number > 0, got -0.1"),
    ({"evaluator.warmup_epochs": 2, "evaluator.epochs": 2},
     "evaluator.warmup_epochs (2) must be less than evaluator.epochs (2): lower evaluator.warmup_epochs "
     "or raise evaluator.epochs"),
    ({"sample.n": 500, "evaluate.n_samples": 1000, "cas.n": 500},
     "sample.n (500) is smaller than evaluate.n_samples (1000): set sample.n >= evaluate.n_samples"),
    ({"sample.n": 5000, "evaluate.n_samples": 5000},
     "cas.n (10000) is larger than sample.n (5000), the generated images the classification accuracy score "
     "trains on: set sample.n >= cas.n or lower cas.n"),
])
def test_each_bad_value_is_said_once_with_what_to_do(changes, message):
    assert check_params_error(params(**changes)) == message


def test_check_params_imports_neither_tensorflow_nor_keras():
    code = ("import sys, yaml\nfrom stages import check_params\n"
            "check_params.check(yaml.safe_load(open('params.yaml')))\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')))")
    t = time.monotonic()
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=stage_env(), capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"
    assert time.monotonic() - t < 5          # it was ~8 s with TensorFlow


def test_check_params_stage_refuses_an_unknown_key_and_writes_nothing(tmp_path):
    shutil.copy(ROOT / "dvc.yaml", tmp_path / "dvc.yaml")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params(**{"train.epoch": 500})))
    r = run_stage(tmp_path, "check_params", "--out", "data/params-checked.txt")
    assert error_line(r) == "error: train.epoch is not a known param: did you mean train.epochs?"
    assert "params.yaml is valid" not in r.stdout
    assert not (tmp_path / "data").exists()


# ---- check_data ---------------------------------------------------------------------------------

FMNIST = {"counts": {"train": 54000, "val": 6000, "test": 10000}, "n_classes": 10, "shape": [28, 28, 1]}
SMALL_FOLDER = {"counts": {"train": 40, "val": 4, "test": 12}, "n_classes": 3, "shape": [32, 32, 3]}


def check_data_error(p, meta, available=None):
    from stages import check_data
    with pytest.raises(GenlabError) as e:
        check_data.check(check_data.read_settings(p), meta, available=available)
    return str(e.value)


def test_params_fit_the_full_data():
    from stages import check_data
    check_data.check(check_data.read_settings(PARAMS), FMNIST, available=8 << 30)


def test_batch_larger_than_the_split_or_the_memory_is_refused():
    line = check_data_error(params(**{"train.batch_size": 100000}), FMNIST, available=16 << 30)
    assert line.startswith("train.batch_size (100000) is larger than the training split (54000 images): "
                           "lower train.batch_size to at most 54000; ")
    assert "train_gan needs about 90.6 GB of memory with train.batch_size 100000 but 17.2 GB is available: " \
           "lower train.batch_size" in line
    # within the split, beyond the memory: refused by the memory estimate alone
    line = check_data_error(params(**{"train.batch_size": 50000}), FMNIST, available=16 << 30)
    assert line.startswith("train_gan needs about 45.4 GB of memory with train.batch_size 50000 but 17.2 GB")
    assert "train_vae needs about" in line and "split" not in line


def test_cas_beyond_the_samples_is_refused_only_for_a_conditional_gan():
    from stages import check_data
    line = check_data_error(params(**{"cas.n": 20000}), FMNIST, available=8 << 30)
    assert line == ("cas.n (20000) is larger than sample.n (10000), the generated images the classification "
                    "accuracy score trains on: set sample.n >= cas.n or lower cas.n")
    # an unconditional GAN's samples carry no labels: no CAS, so no limit (up to the training split)
    check_data.check(check_data.read_settings(params(**{"cas.n": 20000, "gan.conditional": False})), FMNIST,
                     available=8 << 30)
    # without snapshots there are no quality curves to score
    small_val = {**FMNIST, "counts": {**FMNIST["counts"], "val": 500}}
    assert check_data_error(PARAMS, small_val, available=8 << 30).startswith("evaluate.curve_n (1000) is larger")
    check_data.check(check_data.read_settings(params(**{"train.snapshot_every": 0})), small_val, available=8 << 30)


def test_every_limit_of_a_small_image_folder_is_named_in_one_line():
    line = check_data_error(params(**{"sample.attribute": [0, 42]}), SMALL_FOLDER, available=8 << 30)
    assert line.split("; ") == [
        "train.batch_size (128) is larger than the training split (40 images): lower train.batch_size to at most 40",
        "evaluator.batch_size (128) is larger than the training split (40 images): lower evaluator.batch_size "
        "to at most 40",
        "evaluate.n_samples (10000) is larger than the test split (12 images): lower evaluate.n_samples to at most 12",
        "evaluate.n_samples (10000) is larger than the training split (40 images), which the real-vs-real floor "
        "draws from: lower evaluate.n_samples to at most 40",
        "evaluate.kid_subset_size (1000) is larger than the 12 images scored: lower evaluate.kid_subset_size to "
        "at most 12",
        "evaluate.curve_n (1000) is larger than the validation split (4 images) the quality curves are scored "
        "against: lower evaluate.curve_n to at most 4 (or set train.snapshot_every: 0)",
        "cas.n (10000) is larger than the training split (40 images), which the classification accuracy score's "
        "floor draws from: lower cas.n to at most 40",
        "sample.attribute [0, 42] names class 42 but the data have 3 classes (0..2): set sample.attribute to two "
        "class ids in 0..2",
    ]


def test_check_data_stage_refuses_before_writing(tmp_path):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params(**{"sample.attribute": [0, 42]})))
    (tmp_path / "data" / "processed").mkdir(parents=True)
    (tmp_path / "data" / "processed" / "meta.json").write_text(json.dumps(FMNIST))
    r = run_stage(tmp_path, "check_data", "--data", "data/processed", "--out", "data/data-checked.txt")
    assert error_line(r) == ("error: sample.attribute [0, 42] names class 42 but the data have 10 classes (0..9): "
                             "set sample.attribute to two class ids in 0..9")
    assert not (tmp_path / "data" / "data-checked.txt").exists()
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(PARAMS))
    r = run_stage(tmp_path, "check_data", "--data", "data/processed", "--out", "data/data-checked.txt")
    assert r.returncode == 0 and (tmp_path / "data" / "data-checked.txt").exists(), r.stderr


# ---- training stages: output folders checked before training ------------------------------------

TRAIN_ARGS = {
    "train_gan": ["--model", "models/gan", "--checkpoints", "checkpoints/train_gan", "--live", "dvclive/train_gan"],
    "train_vae": ["--model", "models/vae", "--checkpoints", "checkpoints/train_vae", "--live", "dvclive/train_vae"],
    "train_evaluator": ["--model", "models/evaluator", "--checkpoints", "checkpoints/train_evaluator",
                        "--metrics", "metrics/evaluator.json"],
}


@pytest.fixture
def train_project(tmp_path):
    """A folder with params.yaml, a tiny data/processed and an earlier checkpoint of each training stage."""
    from genlab.data.normalize import normalize
    rng = np.random.default_rng(0)
    arrays = {"x_train": rng.integers(0, 256, (60, 28, 28), np.uint8), "y_train": np.arange(60) % 3,
              "x_test": rng.integers(0, 256, (12, 28, 28), np.uint8), "y_test": np.arange(12) % 3}
    normalize(arrays, tmp_path / "data" / "processed", value_range=[-1.0, 1.0], val_fraction=0.1, seed=0,
              dataset="url")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params(**{"train.epochs": 4, "train.batch_size": 8})))
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "evaluator.json").write_text("{}")          # an earlier run's output file
    for stage in TRAIN_ARGS:
        (tmp_path / "checkpoints" / stage).mkdir(parents=True)
        (tmp_path / "checkpoints" / stage / "ckpt-000000002").write_bytes(b"an earlier run's checkpoint")
    return tmp_path


def drop_dac_override():
    """preexec_fn (as in test_faults): as root, give up CAP_DAC_OVERRIDE/CAP_DAC_READ_SEARCH so file
    modes apply to the stage."""
    if os.geteuid() == 0:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        for cap in (1, 2):
            if libc.prctl(24, cap, 0, 0, 0) != 0:
                raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


@pytest.mark.parametrize("stage", list(TRAIN_ARGS))
def test_read_only_checkpoint_folder_is_refused_before_training(train_project, stage):
    ckpt = train_project / "checkpoints" / stage
    os.chmod(ckpt, 0o555)
    try:
        r = run_stage(train_project, stage, "--data", "data/processed", *TRAIN_ARGS[stage],
                      preexec_fn=drop_dac_override)
    finally:
        os.chmod(ckpt, 0o755)
    if r.returncode == 0:
        pytest.skip("this user can write into read-only folders")
    assert error_line(r) == (f"error: {stage} cannot write its outputs: checkpoints/{stage} cannot be written "
                             f"(Permission denied in checkpoints/{stage}): make the output folder writable; "
                             "then run the stage again (nothing was written or deleted)")
    assert r.stdout == ""                                                  # no training started
    assert [p.name for p in ckpt.iterdir()] == ["ckpt-000000002"]         # nothing lost
    assert (ckpt / "ckpt-000000002").read_bytes() == b"an earlier run's checkpoint"
    assert not (train_project / "models").exists()


@pytest.mark.parametrize("stage, folder, output, args", [
    ("sample", "samples", "samples/gan.npz",
     ["--model", "models/gan", "--evaluator", "models/evaluator", "--samples", "samples/gan.npz",
      "--figures", "reports/figures/gan"]),
    ("evaluate", "metrics", "metrics/evaluate.json",
     ["--evaluator", "models/evaluator", "--samples", "gan=samples/gan.npz", "--vae", "models/vae",
      "--floor", "metrics/floor.json", "--metrics", "metrics/evaluate.json"]),
    ("floor", "metrics", "metrics/floor.json", ["--evaluator", "models/evaluator", "--out", "metrics/floor.json"]),
])
@pytest.mark.slow   # stages in subprocesses
def test_read_only_sample_and_metrics_folders_are_refused_before_any_work(train_project, stage, folder, output,
                                                                         args):
    (train_project / "params.yaml").write_text(yaml.safe_dump(params(**{"sample.n": 20, "evaluate.n_samples": 10,
                                                                        "sample.attribute": [0, 1]})))
    (train_project / folder).mkdir(exist_ok=True)
    (train_project / folder / "other.txt").write_text("another stage's output")
    os.chmod(train_project / folder, 0o555)
    try:
        r = run_stage(train_project, stage, "--data", "data/processed", *args, preexec_fn=drop_dac_override)
    finally:
        os.chmod(train_project / folder, 0o755)
    if r.returncode == 0:
        pytest.skip("this user can write into read-only folders")
    assert error_line(r) == (f"error: {stage} cannot write its outputs: {output} cannot be written (Permission "
                             f"denied in {folder}): make the output folder writable; then run the stage again "
                             "(nothing was written or deleted)")
    assert sorted(p.name for p in (train_project / folder).iterdir()) == (
        ["evaluator.json", "other.txt"] if folder == "metrics" else ["other.txt"])


@pytest.mark.parametrize("stage", list(TRAIN_ARGS))
def test_full_disk_is_refused_before_training(train_project, stage, monkeypatch):
    import importlib
    free = 200_000

    def usage(path):
        return shutil._ntuple_diskusage(1 << 30, (1 << 30) - free, free)

    monkeypatch.setattr(shutil, "disk_usage", usage)
    monkeypatch.chdir(train_project)
    monkeypatch.setattr(sys, "argv", [stage, "--data", "data/processed", *TRAIN_ARGS[stage]])
    module = importlib.import_module(f"stages.{stage}")
    with pytest.raises(GenlabError) as e:
        module.main()
    line = str(e.value)
    assert line.startswith(f"{stage} cannot write its outputs: models/")
    assert "MB but 0.2 MB are free on the disk of" in line and "free some disk space" in line
    assert line.endswith("then run the stage again (nothing was written or deleted)")
    assert [p.name for p in (train_project / "checkpoints" / stage).iterdir()] == ["ckpt-000000002"]
    assert not (train_project / "models").exists()


# ---- image folders, validation -------------------------------------------------------------------

def write_folder(root, n=4, size=16):
    from PIL import Image
    rng = np.random.default_rng(1)
    for cls in ("a", "b"):
        (root / cls).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 256, (size, size), np.uint8)).save(root / cls / f"{i}.png")


def test_16_bit_grey_png_is_scaled_to_8_bits(tmp_path):
    from PIL import Image

    from genlab.data.image_folder import decode, import_folder
    ramp = np.tile(np.linspace(0, 65535, 32).round().astype(np.uint16), (32, 1))   # 32 grey levels
    Image.fromarray(ramp).save(tmp_path / "ramp16.png")
    with Image.open(tmp_path / "ramp16.png") as img:
        assert img.mode.startswith("I") and np.asarray(img).max() == 65535      # really 16-bit
    x = decode(tmp_path / "ramp16.png", 32, 1)[..., 0]
    assert np.array_equal(x[0], (ramp[0].astype(np.int64) * 255 + 32767) // 65535)
    assert len(np.unique(x)) == 32                                             # not 2 grey levels
    write_folder(tmp_path / "imgs")
    Image.fromarray(ramp).save(tmp_path / "imgs" / "a" / "ramp16.png")
    info = import_folder(tmp_path / "imgs", tmp_path / "raw", image_size=32, channels=3, test_fraction=0.25,
                         seed=0, log=lambda m: None)
    split = "train" if "a/ramp16.png" in info["source"]["files"]["train"] else "test"
    i = info["source"]["files"][split].index("a/ramp16.png")
    img = np.load(tmp_path / "raw" / f"x_{split}.npy")[i]
    assert np.array_equal(img[..., 0], x) and np.array_equal(img[..., 2], x)


@pytest.mark.slow   # validates a whole split
def test_validate_names_the_blank_image_file_and_its_param(tmp_path):
    from PIL import Image

    from genlab.data.image_folder import import_folder
    write_folder(tmp_path / "imgs", n=10)
    Image.fromarray(np.full((16, 16), 128, np.uint8)).save(tmp_path / "imgs" / "b" / "3.png")   # one blank image
    import_folder(tmp_path / "imgs", tmp_path / "data" / "raw", image_size=16, channels=1, test_fraction=0.2,
                  seed=0, log=lambda m: None)
    info = json.loads((tmp_path / "data" / "raw" / "dataset.json").read_text())
    split = "train" if "b/3.png" in info["source"]["files"]["train"] else "test"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(PARAMS))
    r = run_stage(tmp_path, "validate", "--raw", "data/raw", "--report", "reports/validation.json",
                  "--docs", "reports/data_docs", "--stamp", "data/validated.json")
    line = error_line(r)
    assert line.startswith("error: data validation failed, 1 of ")
    n = len(info["source"]["files"][split])
    assert (f": {split} split: 1 blank (single-valued) image(s) of {n} at file b/3.png, "
            "more than validate.max_blank_fraction (0.001) allows: delete or replace them, or raise "
            "validate.max_blank_fraction | ") in line
    assert not (tmp_path / "data" / "validated.json").exists()            # normalize will not run
    pages = [p.read_text() for p in (tmp_path / "reports" / "data_docs" / "validations").rglob("*.html")]
    assert any("Status: Failed" in " ".join(re.sub(r"<[^>]+>", " ", h).split()) for h in pages)   # Data Docs too


def test_validate_names_a_stray_label_by_index(fmnist_raw):
    from genlab.data.validate import raise_if_failed, validate_arrays
    a = {k: v[:2000].copy() for k, v in fmnist_raw.items()}
    a["y_train"][17] = 42
    report = validate_arrays(a, balance_tol=0.5, max_blank=0.01)
    with pytest.raises(GenlabError) as e:
        raise_if_failed(report, "reports/validation.json")
    assert str(e.value).startswith(
        f"data validation failed, {report['failed']} of {report['evaluated']} expectations: train split: label 42 "
        "at index 17 is outside 0..9, the 10 classes of the training labels: fix or drop those labels "
        "(or re-fetch the data) | ")


# ---- environment: interpreter, bootstrap.sh, fetch deadline --------------------------------------

def test_stage_run_by_a_python_without_the_packages_says_how_to_run_it(tmp_path):
    venv = tmp_path / "bare"
    subprocess.run([sys.base_prefix + "/bin/python3", "-m", "venv", "--without-pip", str(venv)], check=True,
                   timeout=120)
    proj = copy_project(tmp_path / "proj")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    r = subprocess.run([str(venv / "bin" / "python"), "-m", "stages.check_params", "--out", "data/params-checked.txt"],
                       cwd=proj, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == [
        f"error: this python ({venv / 'bin' / 'python'}) lacks the project's packages (yaml, numpy, keras, "
        "tensorflow, dvclive): activate the environment first (source .venv/bin/activate) or run "
        "bash bootstrap.sh repro"]
    assert not (proj / "data" / "params-checked.txt").exists()


def test_bootstrap_refuses_a_python_that_does_not_exist(tmp_path):
    proj = copy_project(tmp_path / "proj")
    before = sorted(p.name for p in proj.iterdir())
    r = subprocess.run(["bash", "bootstrap.sh", "repro"], cwd=proj, capture_output=True, text=True, timeout=60,
                       env={**os.environ, "PYTHON": "/nonexistent/python3.11"})
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == [
        "error: PYTHON=/nonexistent/python3.11 is not an executable Python: set PYTHON=/path/to/python3.11, "
        "or unset it to use python3.11 from PATH"]
    assert sorted(p.name for p in proj.iterdir()) == before and not (proj / ".venv").exists()


@pytest.fixture
def silent_server():
    """A TCP server on 127.0.0.1 that accepts connections and never answers; stops by itself after 60 s."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    srv.settimeout(0.2)
    stop, held = threading.Event(), []

    def serve():
        end = time.monotonic() + 60
        while not stop.is_set() and time.monotonic() < end:
            try:
                held.append(srv.accept()[0])
            except OSError:
                pass
    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.getsockname()[1]}"
    stop.set()
    t.join(5)
    for conn in held:
        conn.close()
    srv.close()


def test_fetch_from_a_server_that_never_answers_stops_at_the_deadline(silent_server, tmp_path, monkeypatch):
    from genlab.data.fetch import fetch
    monkeypatch.setenv("GENLAB_FETCH_TIMEOUT", "2")
    t = time.monotonic()
    with pytest.raises(GenlabError) as e:
        fetch("url", tmp_path / "raw", url=f"{silent_server}/d.npz", sha256="0" * 64, mirror="", log=lambda m: None)
    took = time.monotonic() - t
    assert 1.5 < took < 8, took
    assert str(e.value).startswith(f"could not get {silent_server}/d.npz within GENLAB_FETCH_TIMEOUT=2 s (last: ")
    assert str(e.value).endswith("check that the server answers, or raise GENLAB_FETCH_TIMEOUT for a slow link")
    assert not (tmp_path / "raw").exists() and not list(tmp_path.glob(".raw.tmp-*"))


def test_fetch_deadline_must_be_a_positive_number(monkeypatch, tmp_path):
    from genlab.data.fetch import fetch
    monkeypatch.setenv("GENLAB_FETCH_TIMEOUT", "soon")
    with pytest.raises(GenlabError, match=r"^GENLAB_FETCH_TIMEOUT must be a number of seconds > 0, got 'soon'"):
        fetch("url", tmp_path / "raw", url="http://127.0.0.1:9/d.npz", sha256="0" * 64, mirror="")
    assert not Path(tmp_path / "raw").exists()
