"""The fault matrix of issue 7: every fault is injected into the real stages (mostly `dvc repro` in a
temporary clone) and the outcome asserted.

Most tests share one clone whose data stages were reproduced on a small real slice (3,000 training
+ 1,000 test Fashion-MNIST images, served as a user .npz from a file:// URL) with tiny networks and
a checkpoint every few iterations; each test copies that clone, so the tests are independent.
"""

import errno
import hashlib
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import copy_project, tool_env

ITERATIONS, EVAL_EPOCHS = 400, 8
FAULT_PARAMS = {
    "train": {"epochs": ITERATIONS, "batch_size": 32, "log_every": 20, "ckpt_every": 20},
    # convolutional nets: no XLA compilation on a CPU, so every run starts fast
    "gan": {"arch": "dcgan", "filters": 4, "latent_dim": 16},
    "vae": {"arch": "conv", "filters": 4, "latent_dim": 4},
    "evaluator": {"epochs": EVAL_EPOCHS, "warmup_epochs": 1, "filters": [4, 8], "feature_dim": 16,
                  "batch_size": 64},
}
STAGES = ("train_gan", "train_vae", "train_evaluator")
MODEL = {"train_gan": "models/gan", "train_vae": "models/vae", "train_evaluator": "models/evaluator"}


def set_params(proj, changes):
    params = yaml.safe_load((proj / "params.yaml").read_text())
    for section, values in changes.items():
        params[section].update(values)
    (proj / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def dvc(proj, *args, check=True):
    r = subprocess.run(["dvc", *args], cwd=proj, capture_output=True, text=True, env=tool_env())
    if check:
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, fmnist_raw):
    """A clone with fetch, validate and normalize reproduced on the small slice and FAULT_PARAMS set."""
    root = tmp_path_factory.mktemp("faults")
    npz = root / "small.npz"
    np.savez(npz, x_train=fmnist_raw["x_train"][:3000], y_train=fmnist_raw["y_train"][:3000],
             x_test=fmnist_raw["x_test"][:1000], y_test=fmnist_raw["y_test"][:1000])
    digest = hashlib.sha256(npz.read_bytes()).hexdigest()
    proj = copy_project(root / "proj")
    set_params(proj, {"data": {"name": "url", "url": npz.as_uri(), "sha256": digest}, **FAULT_PARAMS})
    dvc(proj, "repro", "normalize")
    return proj


@pytest.fixture
def clone(prepared, tmp_path):
    """A private copy of the prepared clone (its DVC cache and git history included)."""
    dest = tmp_path / "proj"
    shutil.copytree(prepared, dest, symlinks=True)
    return dest


def tmp_leftovers(proj, outside=()):
    """Temporary siblings of atomic writes (`.<name>.tmp-*`) anywhere but .dvc/, .git/ and `outside`."""
    skip = (".dvc", ".git") + tuple(outside)
    return [p for p in proj.rglob("*.tmp-*") if p.relative_to(proj).parts[0] not in skip
            and not str(p.relative_to(proj)).startswith(tuple(outside))]


def group_alive(pgid):
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


def progress(proj, stage):
    """The newest resume point on disk: checkpoint iteration, or the evaluator's backed-up epoch."""
    d = proj / "checkpoints" / stage
    if stage == "train_evaluator":
        try:
            return json.loads((d / "training_metadata.json").read_text())["epoch"]
        except (OSError, ValueError, KeyError):
            return 0
    steps = [int(p.name[5:]) for p in d.glob("ckpt-*") if p.name[5:].isdigit()] if d.is_dir() else []
    return max(steps, default=0)


def interrupt(proj, stage, sig, after):
    """`dvc repro stage` in its own process group; once a resume point newer than `after` is on disk,
    send `sig` to the whole group (dvc and the stage), wait until every process of it has exited."""
    proc = subprocess.Popen(["dvc", "repro", stage], cwd=proj, env=tool_env(), start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 240
    while progress(proj, stage) <= after and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, "the stage finished (or failed) before it could be interrupted:\n" + proc.stdout.read()
    os.killpg(proc.pid, sig)
    out, _ = proc.communicate(timeout=120)
    deadline = time.time() + 60
    while group_alive(proc.pid) and time.time() < deadline:   # the stage may outlive a killed dvc
        time.sleep(0.05)
    assert not group_alive(proc.pid)
    assert proc.returncode != 0, out
    return out


def resumed_from(stage, out):
    what = "epoch" if stage == "train_evaluator" else "iteration"
    total = EVAL_EPOCHS if stage == "train_evaluator" else ITERATIONS
    found = re.findall(rf"{stage}: resuming from {what} (\d+) of {total}", out)
    assert len(found) == 1, out
    return int(found[0])


def corrupt_newest(proj, stage):
    """Truncate the newest resume point; return the point training must fall back to."""
    d = proj / "checkpoints" / stage
    if stage == "train_evaluator":
        weights = d / "latest.weights.h5"
        weights.write_bytes(weights.read_bytes()[:1000])
        return json.loads((d / "training_metadata.json.bkp").read_text())["epoch"]
    ckpts = sorted(d.glob("ckpt-*"))
    state = ckpts[-1] / "state.npz"
    state.write_bytes(state.read_bytes()[: state.stat().st_size // 2])
    return int(ckpts[-2].name[5:])


@pytest.mark.parametrize("stage", STAGES)
def test_interrupted_training_resumes_and_finishes(clone, stage):
    """SIGINT, then SIGTERM, then SIGKILL to `dvc repro <stage>`: each next run resumes from the last
    resume point (> 0), an interrupted run leaves no output DVC could cache, a truncated newest
    checkpoint is reported and the previous one used, and the last run reaches the full step count."""
    proj = clone
    lock = (proj / "dvc.lock").read_text()
    model = proj / MODEL[stage]
    point, outputs = 0, []
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
        out = interrupt(proj, stage, sig, after=point)
        outputs.append(out)
        if point:
            assert resumed_from(stage, out) == point
        if sig != signal.SIGKILL and stage != "train_evaluator":
            assert "checkpoint saved, run the stage again to resume" in out, out
        saved = progress(proj, stage)
        assert saved > point
        point = saved
        assert not model.exists()                       # DVC removed it; nothing half-written
        assert not tmp_leftovers(proj, outside=["checkpoints"])
        assert (proj / "dvc.lock").read_text() == lock  # DVC recorded (and cached) nothing
    fallback = corrupt_newest(proj, stage)
    r = dvc(proj, "repro", stage)
    out = r.stdout + r.stderr
    outputs.append(out)
    assert re.search(r"warning: (checkpoint \S+ is corrupt|the last evaluator checkpoint in \S+ is unusable)", out), out
    assert resumed_from(stage, out) == fallback > 0
    assert not any("Traceback" in o for o in outputs), outputs
    assert not tmp_leftovers(proj)
    assert "up to date" in dvc(proj, "status", stage).stdout
    if stage == "train_evaluator":
        info = json.loads((model / "evaluator.json").read_text())
        assert [h["epoch"] for h in info["history"]] == list(range(1, EVAL_EPOCHS + 1))
        assert info["train"]["resumed_from_epoch"] == fallback
        assert json.loads((proj / "metrics" / "evaluator.json").read_text())["test_accuracy"] > 0.5
    else:
        live = proj / "dvclive" / stage
        assert json.loads((live / "metrics.json").read_text())["step"] == ITERATIONS
        first = "d_loss" if stage == "train_gan" else "loss"
        tsv = (live / "plots" / "metrics" / f"{first}.tsv").read_text().splitlines()
        assert [int(line.split("\t")[0]) for line in tsv[1:]] == list(range(20, ITERATIONS + 1, 20))
        assert (model / "config.json").exists()
