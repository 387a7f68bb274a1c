"""The train_gan / train_vae stage scripts: params validated before any work, paths from the
command line, outputs where dvc.yaml expects them, SIGTERM -> checkpoint -> resume."""

import json
import signal
import subprocess
import sys
import time

import pytest
import yaml

from conftest import ROOT, tool_env
from genlab.errors import GenlabError

PARAMS = {
    "train": {"epochs": 20, "batch_size": 32, "seed": 0, "log_every": 10, "ckpt_every": 10, "snapshot_every": 10,
              "strategy": "default", "mixed_precision": "none", "xla": "auto", "data_in_memory": True},
    "gan": {"arch": "mlp", "conditional": True, "latent_dim": 16, "hidden": 32, "filters": 4,
            "lr": 0.0002, "beta_1": 0.5, "beta_2": 0.999, "d_lr": 0.0, "loss": "ns", "ema": 0.0},
    "vae": {"arch": "mlp", "variant": "vae", "latent_dim": 4, "beta": 1.0, "hidden": 32, "filters": 4,
            "lr": 0.001, "prior": "gmm", "prior_components": 3, "temperature": 1.0},
}


@pytest.fixture(scope="module")
def processed(processed_slice):
    return processed_slice


def project(tmp_path, **changes):
    params = json.loads(json.dumps(PARAMS))
    for key, value in changes.items():
        section, name = key.split("__")
        if value is None:
            del params[section][name]
        else:
            params[section][name] = value
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    return tmp_path


def call_stage(name, cwd, data, monkeypatch):
    import importlib
    stage = importlib.import_module(f"stages.{name}")
    monkeypatch.chdir(cwd)
    family = name.split("_")[1]
    monkeypatch.setattr(sys, "argv", [name, "--data", str(data), "--model", f"models/{family}",
                                      "--checkpoints", f"checkpoints/{name}", "--live", f"dvclive/{name}"])
    stage.main()


@pytest.mark.parametrize("stage, key, value, message", [
    ("train_gan", "train__epochs", -5, "train.epochs must be a positive integer, got -5"),
    ("train_gan", "gan__arch", "resnet", "gan.arch must be one of 'mlp', 'dcgan', got 'resnet'"),
    ("train_gan", "gan__lr", 0, "gan.lr must be a number > 0, got 0.0"),
    ("train_gan", "gan__conditional", "yes", "gan.conditional must be true or false, got 'yes'"),
    ("train_gan", "gan__loss", "wgan", "gan.loss must be one of 'ns', 'hinge', got 'wgan'"),
    ("train_gan", "gan__ema", 1.0, "gan.ema must be a number in [0.0, 0.9999], got 1.0"),
    ("train_gan", "gan__d_lr", -1e-4, "gan.d_lr must be a number >= 0.0, got -0.0001"),
    ("train_vae", "vae__variant", "vqvae", "vae.variant must be one of 'vae', 'ae', got 'vqvae'"),
    ("train_vae", "vae__beta", -1.0, "vae.beta must be a number >= 0.0, got -1.0"),
    ("train_vae", "train__ckpt_every", None, "train.ckpt_every is missing from params.yaml"),
])
def test_bad_params_stop_before_any_work(tmp_path, monkeypatch, stage, key, value, message):
    cwd = project(tmp_path, **{key: value})
    with pytest.raises(GenlabError) as e:
        call_stage(stage, cwd, tmp_path / "no-such-data", monkeypatch)   # the data is never looked at
    assert str(e.value).startswith(message)
    assert not (cwd / "dvclive").exists() and not (cwd / "checkpoints").exists()


def test_missing_data_is_one_clear_line(tmp_path, monkeypatch):
    with pytest.raises(GenlabError, match=r"meta.json not found: run `dvc repro normalize` first"):
        call_stage("train_vae", project(tmp_path), tmp_path / "nothing", monkeypatch)


@pytest.mark.slow   # the VAE stage in a subprocess
def test_vae_stage_writes_the_declared_outputs(tmp_path, monkeypatch, processed):
    cwd = project(tmp_path)
    call_stage("train_vae", cwd, processed, monkeypatch)
    assert sorted(p.name for p in (cwd / "models" / "vae").iterdir()) == \
        ["config.json", "decoder.weights.h5", "encoder.weights.h5"]
    assert json.loads((cwd / "dvclive" / "train_vae" / "metrics.json").read_text())["step"] == 20
    assert sorted(p.name for p in (cwd / "dvclive" / "train_vae" / "plots" / "metrics").iterdir()) == \
        sorted(f"{k}.tsv" for k in ("loss", "reconstruction", "kl", "val_loss", "val_reconstruction", "val_kl"))
    assert sorted(p.name for p in (cwd / "checkpoints" / "train_vae").iterdir()) == ["ckpt-000000020"]   # its end
    assert not (cwd / "dvc.yaml").exists() and not (cwd / "dvclive" / "train_vae" / "dvc.yaml").exists()


@pytest.mark.slow   # the stage in a subprocess, killed and run again
def test_sigterm_checkpoints_and_the_next_run_resumes(tmp_path, monkeypatch, capsys, processed):
    """The real stage in a subprocess, stopped by SIGTERM mid-run, then run again to the end."""
    # a small DCGAN: no XLA compilation on a CPU, so the two runs start fast
    cwd = project(tmp_path, train__epochs=200, train__ckpt_every=20, train__log_every=20, gan__arch="dcgan")
    cmd = [sys.executable, "-m", "stages.train_gan", "--data", str(processed), "--model", "models/gan",
           "--checkpoints", "checkpoints/train_gan", "--live", "dvclive/train_gan"]
    proc = subprocess.Popen(cmd, cwd=cwd, env=tool_env(PYTHONPATH=str(ROOT)), stderr=subprocess.PIPE, text=True)
    ckpts = cwd / "checkpoints" / "train_gan"
    deadline = time.time() + 60
    while time.time() < deadline and not (ckpts.is_dir() and any(ckpts.glob("ckpt-*"))):
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    saved = int(err.split("interrupted at iteration ")[1].split(";")[0])
    assert 20 <= saved < 200 and (ckpts / f"ckpt-{saved:09d}").is_dir()
    assert not (cwd / "models").exists()
    call_stage("train_gan", cwd, processed, monkeypatch)
    assert f"resuming from iteration {saved} of 200" in capsys.readouterr().err
    assert (cwd / "models" / "gan" / "config.json").exists()
    tsv = (cwd / "dvclive" / "train_gan" / "plots" / "metrics" / "d_loss.tsv").read_text().splitlines()
    assert [int(line.split("\t")[0]) for line in tsv[1:]] == list(range(20, 201, 20))
