"""Devices and distribution on a CPU: MirroredStrategy over two logical CPU devices and
MultiWorkerMirroredStrategy over two worker processes on 127.0.0.1 give the single-device results
(same seed, same global batch); resume under a strategy; streamed batches from memory-mapped files
give the in-memory results; mixed precision code paths; the params' checks.

Tolerances. Distributed training computes the same global batch (each replica takes its rows of
the batch drawn by the single-device RNG), averages the replicas' gradients (the optimizer sums
replica gradients of loss / replicas) and, in the GAN generator, uses BatchNorm statistics of the
global batch (synchronized over replicas). What differs is the order of float32 sums (two partial
batch sums all-reduced instead of one sum; BatchNorm's E[x^2] - E[x]^2 instead of a two-pass
variance), i.e. rounding: measured after 20 Adam iterations, relative loss differences <= 1.2e-7
and weight differences <= 3.5e-7. Adam divides by sqrt(v), so a rounding difference in a near-zero
gradient can move a weight by up to lr per iteration; the bounds below (losses rtol 1e-5, weights
atol 1e-5) are ~30x the measured values, far below lr * iterations = 2e-2 and far below what a real
mistake makes (per-replica BatchNorm statistics: 2e-3 after one iteration; a wrong batch split or
unaveraged gradients: percent-level loss differences). Runs compare with train.xla false: XLA
draws its Gaussian noise with another algorithm, so an XLA run is a different (equally valid)
sample path, and XLA is off under a strategy.
"""

import json
import shutil
import socket
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT, Lines, own_lines, published, tool_env
from genlab.errors import GenlabError
from genlab.params import Gan, Vae

HELPER = ROOT / "tests" / "distributed_helper.py"
ITERS = "iterations=20"


def helper(out, work, family, *opts, **env):
    """Start tests/distributed_helper.py (returns the Popen; see its docstring)."""
    cmd = [sys.executable, str(HELPER), str(out), str(work), family, *opts]
    return subprocess.Popen(cmd, env=tool_env(**env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(*procs, timeout=300):
    errs = []
    for p in procs:
        _, err = p.communicate(timeout=timeout)
        # (the error itself, not the interpreter's shutdown noise after it: dulwich's "Exception ignored" lines)
        assert p.returncode == 0, err.split("\nException ignored in")[0][-3000:]
        errs.append(err)
    return errs


def weights(npz):
    return [npz[k] for k in sorted(npz.files) if k.startswith("w")]


def assert_close(a, b, rtol=1e-5, atol=1e-5):
    """a, b: helper outputs. Logged losses (every iteration) and final weights."""
    np.testing.assert_array_equal(a["logged"][:, 0], b["logged"][:, 0])
    np.testing.assert_allclose(a["logged"][:, 1:], b["logged"][:, 1:], rtol=rtol)
    for wa, wb in zip(weights(a), weights(b)):
        np.testing.assert_allclose(wa, wb, rtol=0, atol=atol)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, shared_data):
    """Single-device and mirrored (2 logical CPU devices) runs of the MLP GAN and the MLP VAE,
    20 iterations on 2,000 real images, global batch 64, losses logged every iteration."""
    tmp = tmp_path_factory.mktemp("dist")
    env = dict(GENLAB_TEST_DATA=str(shared_data), GENLAB_CPU_DEVICES="2")
    out = {}
    for family in ("gan", "vae"):
        procs = [helper(tmp / f"{family}-{s}.npz", tmp / f"{family}-{s}", family, ITERS, "log_every=1",
                        "xla=false", f"strategy={s}", **env) for s in ("default", "mirrored")]
        errs = finish(*procs)
        assert "note: train.strategy mirrored: 2 replicas, 32 images each per iteration" in errs[1]
        for s in ("default", "mirrored"):
            out[family, s] = np.load(tmp / f"{family}-{s}.npz")
    out["tmp"], out["env"] = tmp, env
    return out


@pytest.mark.slow   # training subprocesses (distributed_helper.py)
@pytest.mark.parametrize("family", ["gan", "vae"])
def test_mirrored_matches_single_device(runs, family):
    a, b = runs[family, "default"], runs[family, "mirrored"]
    assert len(a["logged"]) == 20
    assert_close(a, b)


@pytest.mark.slow   # training subprocesses (distributed_helper.py)
def test_mirrored_gan_options_match_single_device(runs):
    """gan.loss hinge, gan.ema (updated outside the replicas) and gan.d_lr under the mirrored strategy:
    the same losses and saved (averaged) generator as on one device."""
    tmp, env = runs["tmp"], runs["env"]
    procs = [helper(tmp / f"opts-{s}.npz", tmp / f"opts-{s}", "gan_options", ITERS, "log_every=1", "xla=false",
                    f"strategy={s}", **env) for s in ("default", "mirrored")]
    finish(*procs)
    a, b = np.load(tmp / "opts-default.npz"), np.load(tmp / "opts-mirrored.npz")
    assert len(a["logged"]) == 20
    assert_close(a, b)
    plain = runs["gan", "default"]
    assert any(not np.allclose(wa, wb) for wa, wb in zip(weights(a), weights(plain)))


@pytest.mark.slow   # training subprocesses (distributed_helper.py)
def test_mirrored_run_resumes_after_a_kill(runs):
    """Killed at iteration 15 (checkpoint at 10), run again: the same weights as the uninterrupted
    mirrored run, bit for bit (same devices, same reduction order)."""
    work, env = runs["tmp"] / "gan-resume", runs["env"]
    opts = (ITERS, "log_every=1", "strategy=mirrored")
    finish(helper(work / "unused.npz", work, "gan", *opts, "kill_at=15", **env))
    assert sorted(p.name for p in (work / "ckpt").iterdir()) == ["ckpt-000000010"]
    err, = finish(helper(work / "out.npz", work, "gan", *opts, **env))
    assert "resuming from iteration 10 of 20" in err
    resumed, reference = np.load(work / "out.npz"), runs["gan", "mirrored"]
    for wa, wb in zip(weights(resumed), weights(reference)):
        np.testing.assert_array_equal(wa, wb)


def free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


@pytest.mark.slow   # training subprocesses (distributed_helper.py)
def test_multi_worker_two_processes_match_single_device(runs, shared_data):
    """Two worker processes (one replica each, TF_CONFIG on 127.0.0.1): the same losses and weights
    as the single-device run; only worker 0 (the chief) writes checkpoints and the model."""
    work = runs["tmp"] / "gan-mw"
    workers = [f"127.0.0.1:{p}" for p in free_ports(2)]
    shutil.copytree(runs["tmp"] / "gan-default" / "processed", work / "processed")  # the workers' shared data
    procs = [helper(work / f"w{i}.npz", work, "gan", ITERS, "log_every=1", "strategy=multi_worker",
                    GENLAB_TEST_DATA=str(shared_data),
                    TF_CONFIG=json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": i}}))
             for i in range(2)]
    errs = finish(*procs, timeout=600)
    assert "note: train.strategy multi_worker: 2 replicas, 32 images each per iteration" in errs[0]
    assert "train_gan 20/20" in errs[0] and "train_gan 20/20" not in errs[1]   # worker 1 logs nothing
    assert sorted(p.name for p in (work / "ckpt").iterdir()) == ["ckpt-000000020"]   # a finished run keeps its end
    assert (work / "model" / "config.json").exists()
    for i in range(2):
        assert_close(runs["gan", "default"], np.load(work / f"w{i}.npz"))


def _dataset(fmnist_small, tmp_path, in_memory):
    """The real slice saved as normalize's .npy files, loaded in memory or memory-mapped."""
    from genlab.training.loop import load_training_data
    d = tmp_path / "processed"
    if not d.exists():
        d.mkdir()
        (x, y), (xv, yv) = fmnist_small["train"], fmnist_small["test"]
        for split, (a, b) in {"train": (x[:2000], y[:2000]), "val": (xv[:300], yv[:300])}.items():
            np.save(d / f"{split}_x.npy", a)
            np.save(d / f"{split}_y.npy", b)
        meta = {"dataset": "fashion_mnist", "shape": [28, 28, 1], "range": [-1.0, 1.0], "n_classes": 10}
        (d / "meta.json").write_text(json.dumps(meta))
    return load_training_data(d, ["train", "val"], in_memory=in_memory)


@pytest.mark.slow   # pairs of trainings compared bit for bit
@pytest.mark.parametrize("family, arch, xla", [("gan", "mlp", "auto"), ("vae", "conv", "false")])
def test_streaming_matches_in_memory(fmnist_small, tmp_path, family, arch, xla):
    """train.data_in_memory false reads each batch from the memory-mapped .npy through tf.data, with
    the batch indices of the in-memory path (same stateless RNG): the same training, bit for bit
    (the MLPs under XLA, as by default on a CPU; the conv VAE without)."""
    from genlab.training.gan import train_gan
    from genlab.training.loop import TrainSettings
    from genlab.training.vae import train_vae
    results = {}
    for in_memory in (True, False):
        dataset = _dataset(fmnist_small, tmp_path, in_memory)
        assert isinstance(dataset["train"][0], np.memmap) != in_memory
        settings = TrainSettings(iterations=12, batch_size=32, seed=2, log_every=4, ckpt_every=12, xla=xla,
                                 data_in_memory=in_memory)
        logged = []
        dirs = {k: tmp_path / f"{k}-{in_memory}" for k in ("model_dir", "ckpt_dir", "live_dir")}
        kw = dict(settings=settings, on_log=lambda s, v: logged.append(v), out=Lines(), **dirs)
        if family == "gan":
            model = train_gan(dataset, gan=Gan.of(arch=arch, conditional=True, latent_dim=8, hidden=32, filters=4,
                                                  lr=1e-3, beta_1=0.5, beta_2=0.999, d_lr=0.0, loss="ns",
                                                  ema=0.0), **kw)
            nets = (model.generator, model.discriminator)
        else:
            model = train_vae(dataset, vae=Vae.of(arch=arch, variant="vae", latent_dim=4, beta=1.0, hidden=32,
                                                  filters=4, lr=1e-3, prior="normal", prior_components=10,
                                                  temperature=1.0), **kw)
            nets = (model.encoder, model.decoder)
        results[in_memory] = logged, [v.numpy() for net in nets for v in net.variables]
    (log_a, w_a), (log_b, w_b) = results[True], results[False]
    assert len(log_a) == 3 and log_a == log_b
    for a, b in zip(w_a, w_b):
        np.testing.assert_array_equal(a, b)


@pytest.mark.slow   # pairs of trainings compared bit for bit
def test_streaming_resumes_mid_run(fmnist_small, tmp_path):
    """A streamed run killed after its checkpoint at 6 restarts its input at iteration 6."""
    from genlab.training.loop import TrainSettings
    from genlab.training.vae import train_vae
    dataset = _dataset(fmnist_small, tmp_path, False)
    settings = TrainSettings(iterations=12, batch_size=32, seed=2, log_every=3, ckpt_every=6, xla="false",
                             data_in_memory=False)

    class Killed(BaseException):
        pass

    def kill_at_9(step, values):
        if step == 9:
            raise Killed()

    def run(name, on_log=None):
        return train_vae(dataset, tmp_path / f"m-{name}", tmp_path / f"c-{name}", tmp_path / f"l-{name}",
                         vae=Vae.of(arch="mlp", variant="vae", latent_dim=4, beta=1.0, hidden=32, filters=4,
                                    lr=1e-3, prior="normal", prior_components=10, temperature=1.0),
                         settings=settings, on_log=on_log, out=Lines())

    reference = run("ref")
    with pytest.raises(Killed):
        run("kill", kill_at_9)
    resumed = run("kill")
    for a, b in zip(reference.encoder.variables + reference.decoder.variables,
                    resumed.encoder.variables + resumed.decoder.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_mixed_precision_code_path(fmnist_small, precision):
    """What a GPU runs, forced on the CPU: float16/bfloat16 networks, float32 variables and losses,
    fp16 with a LossScaleOptimizer (its scale is checkpointed); the policy is restored after."""
    import keras
    import tensorflow as tf

    from genlab.models.gan import GAN, gan_config
    from genlab.training import devices
    from genlab.training.gan import GanTask
    from genlab.training.loop import CompiledSteps, TrainSettings, set_determinism
    settings = TrainSettings(iterations=5, batch_size=32, seed=0, log_every=5, ckpt_every=5, mixed_precision=precision)
    placement = devices.Placement(settings, "mlp", force_mixed_precision=True)
    set_determinism(0)
    x, y = fmnist_small["train"]
    with placement.scope():
        gan = Gan.of(arch="mlp", conditional=True, latent_dim=8, hidden=16, filters=4, lr=1e-3, beta_1=0.5,
                     beta_2=0.999, d_lr=0.0, loss="ns", ema=0.0)
        model = GAN(gan_config(gan, shape=[28, 28, 1], n_classes=10, value_range=[-1.0, 1.0]))
        task = GanTask(model, x[:500], y[:500], gan, 0, optimizer=placement.optimizer)
        steps = CompiledSteps(task, settings, False, placement)
        steps.run(tf.constant(5, tf.int32))
        assert model.generator.get_layer("g_dense").compute_dtype == {"fp16": "float16", "bf16": "bfloat16"}[precision]
    assert keras.config.dtype_policy().name == "float32"
    assert all(v.dtype == "float32" for v in model.generator.trainable_variables)
    assert all(np.isfinite(v) for v in steps.read_means().values())
    is_scaled = isinstance(task.opt_d, keras.optimizers.LossScaleOptimizer)
    assert is_scaled == (precision == "fp16")
    if is_scaled:
        assert any(v is task.opt_d.dynamic_scale for v in task.opt_d.variables)


def test_mixed_precision_is_ignored_on_a_cpu_with_a_note():
    from genlab.training import devices
    from genlab.training.loop import TrainSettings
    settings = TrainSettings(iterations=1, batch_size=8, seed=0, log_every=1, ckpt_every=1, mixed_precision="fp16")
    placement = devices.Placement(settings, "dcgan")
    assert placement.notes == ["note: train.mixed_precision fp16 is ignored on a CPU (no GPU found); "
                               "training in float32"]
    assert placement.precision == "none" and placement.optimizer("adam") == "adam"


@pytest.mark.parametrize("key, value, message", [
    ("strategy", "horovod", "train.strategy must be one of 'default', 'mirrored', 'multi_worker', got 'horovod'"),
    ("mixed_precision", "fp8", "train.mixed_precision must be one of 'none', 'bf16', 'fp16', got 'fp8'"),
    ("xla", "sometimes", "train.xla must be auto, true or false, got 'sometimes'"),
    ("data_in_memory", "no", "train.data_in_memory must be true or false, got 'no'"),
])
def test_bad_device_params_are_one_clear_line(key, value, message):
    from genlab.params import read
    train = {"epochs": 1, "batch_size": 8, "seed": 0, "log_every": 1, "ckpt_every": 1, "snapshot_every": 0,
             "strategy": "default",
             "mixed_precision": "none", "xla": "auto", "data_in_memory": True}
    assert read({"train": dict(train, xla=False)}, "train").xla == "false"
    with pytest.raises(GenlabError) as e:
        read({"train": dict(train, **{key: value})}, "train")
    assert str(e.value) == message


def test_xla_true_under_a_strategy_is_refused():
    from genlab.training import devices
    from genlab.training.loop import TrainSettings
    settings = TrainSettings(iterations=1, batch_size=8, seed=0, log_every=1, ckpt_every=1, strategy="mirrored",
                             xla="true")
    with pytest.raises(GenlabError, match=r"^train.xla true is not supported with train.strategy mirrored .*"
                                          r"use train.xla auto or false$"):
        devices.Placement(settings, "mlp")


def test_multi_worker_without_tf_config_is_refused(monkeypatch):
    from genlab.training import devices
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(GenlabError, match=r"multi_worker needs the cluster in the TF_CONFIG environment variable"):
        devices.make_strategy("multi_worker")


@pytest.mark.slow   # a stage in a subprocess
def test_batch_not_divisible_by_replicas_is_refused(fmnist_small, tmp_path):
    """batch 31 on 2 replicas: one clear line, before any training (the real stage, 2 logical CPUs)."""
    import yaml
    params = yaml.safe_load(published("params.yaml"))
    params["train"].update(batch_size=31, strategy="mirrored", epochs=2)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    _dataset(fmnist_small, tmp_path, True)
    cmd = [sys.executable, "-m", "stages.train_gan", "--data", "processed", "--model", "models/gan",
           "--checkpoints", "checkpoints/train_gan", "--live", "dvclive/train_gan"]
    out = subprocess.run(cmd, cwd=tmp_path, env=tool_env(PYTHONPATH=str(ROOT), GENLAB_CPU_DEVICES="2"),
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 1, out.stderr[-2000:]
    assert own_lines(out.stderr) == [
        "error: train.batch_size 31 cannot be split over 2 replicas: use a multiple of 2"]
    assert not (tmp_path / "checkpoints").exists() and not (tmp_path / "models").exists()
