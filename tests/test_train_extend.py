"""Extending a finished run (issue 14): a run to N1 continued to N2, from its own checkpoints or
from the run store, gives the files of a fresh N2 run byte for byte (weights, saved model, dvclive
curves apart from timestamps, sample grids, summary); anything else starts over and says so."""

import hashlib
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import Lines, copy_tree, shared_once
from genlab.params import Gan, Vae
from genlab.training import checkpoint
from genlab.training.gan import train_gan
from genlab.training.loop import TrainSettings
from genlab.training.vae import train_vae

pytestmark = pytest.mark.slow   # every test trains, in-process or through dvc

# N1 = 30 is off both schedules (logs and checkpoints every 20): the hardest case for a continuation
N1, N2 = 30, 60
SETTINGS = dict(batch_size=32, seed=2, log_every=20, ckpt_every=20, snapshot_every=20)
GAN = Gan.of(arch="dcgan", conditional=True, latent_dim=16, hidden=32, filters=8, lr=5e-4, beta_1=0.5, beta_2=0.999,
             d_lr=1e-3, loss="hinge", ema=0.9)
VAE = Vae.of(arch="conv", variant="vae", latent_dim=8, beta=1.0, hidden=64, filters=8, lr=1e-3, prior="normal",
             prior_components=10, temperature=1.0)


def gan_data(fmnist_small):
    x, y = fmnist_small["train"]
    return {"meta": {"dataset": "fashion_mnist", "shape": [28, 28, 1], "range": [-1.0, 1.0], "n_classes": 10,
                     "counts": {"train": len(x)}}, "train": (x, y)}


def vae_data(fmnist_small):
    (x, y), (xv, yv) = fmnist_small["train"], (fmnist_small["test"][0][:500], fmnist_small["test"][1][:500])
    return {"meta": {"dataset": "fashion_mnist", "shape": [28, 28, 1], "range": [-1.0, 1.0], "n_classes": 10,
                     "counts": {"train": len(x), "val": len(xv)}}, "train": (x, y), "val": (xv, yv)}


def run(kind, tmp, data, iterations, store=None, monkeypatch=None, settings=None, **overrides):
    """train_gan/train_vae into tmp/{model,ckpt,live} with the run store `store` (None = off);
    returns (model, the progress lines)."""
    monkeypatch.setenv("GENLAB_RUN_STORE", str(store) if store else "off")
    lines = Lines()
    settings = TrainSettings(iterations=iterations, **dict(SETTINGS, **(settings or {})))
    train, params = (train_gan, GAN) if kind == "gan" else (train_vae, VAE)
    model = train(data, tmp / "model", tmp / "ckpt", tmp / "live", settings=settings, out=lines,
                  **{kind: params.replace(**overrides)})
    return model, str(lines)


def snapshot(root, subs):
    """The files under root/<sub> for each sub, by relative path, with the timestamp column of the
    dvclive curves dropped: what a run leaves for DVC, compared byte for byte."""
    out = {}
    for sub in subs:
        for f in sorted((root / sub).rglob("*")):
            if f.is_file():
                data = f.read_bytes()
                if f.suffix == ".tsv":
                    data = b"\n".join(b"\t".join(line.split(b"\t")[1:]) for line in data.splitlines())
                out[str(f.relative_to(root))] = data
    return out


def files(tmp):
    """A library run's model files and dvclive files."""
    return snapshot(tmp, ("model", "live"))


def assert_same_run(a, b, model_a, model_b):
    fa, fb = files(a), files(b)
    assert sorted(fa) == sorted(fb)
    for name in fa:
        assert fa[name] == fb[name], name
    for va, vb in zip(model_a.networks().values(), model_b.networks().values()):
        for x, y in zip(va.variables, vb.variables):
            np.testing.assert_array_equal(x.numpy(), y.numpy())


def data_for(kind, fmnist_small):
    return gan_data(fmnist_small) if kind == "gan" else vae_data(fmnist_small)


@pytest.fixture(scope="session")
def fresh(fmnist_small, tmp_path_factory):
    """A fresh N2 run of each kind (no store), the reference of every comparison."""
    mp = pytest.MonkeyPatch()
    refs = {}
    for kind in ("gan", "vae"):
        tmp = tmp_path_factory.mktemp(f"fresh_{kind}")
        model, log = run(kind, tmp, data_for(kind, fmnist_small), N2, monkeypatch=mp)
        assert "continuing" not in log and "resuming" not in log
        refs[kind] = (tmp, model)
    mp.undo()
    return refs


@pytest.mark.parametrize("kind", ["gan", "vae"])
def test_extended_run_equals_a_fresh_run(kind, fresh, fmnist_small, tmp_path, monkeypatch):
    """N1 then N2 in the same folders (dvc repro / dvc exp run in the workspace), and N2 in empty
    folders from the run store (a queued or temporary experiment): both equal the fresh N2 run."""
    data, store = data_for(kind, fmnist_small), tmp_path / "store"
    ref_tmp, ref_model = fresh[kind]
    run(kind, tmp_path / "ws", data, N1, None, monkeypatch)
    model, log = run(kind, tmp_path / "ws", data, N2, None, monkeypatch)
    assert f"train_{kind}: continuing the finished run at iteration {N1} to {N2} ({N2 - N1} iterations)" in log
    assert_same_run(ref_tmp, tmp_path / "ws", ref_model, model)
    assert names(tmp_path / "ws" / "ckpt") == names(ref_tmp / "ckpt") == [N2]   # a finished run keeps its end

    _, log = run(kind, tmp_path / "first", data, N1, store, monkeypatch)
    assert f"train_{kind} {N1}/{N1} " in log
    (entry,) = store.iterdir()
    assert entry.name.startswith(f"train_{kind}-")
    assert names(entry) == [N1, 20]     # its end and the snapshot point it passed
    model, log = run(kind, tmp_path / "queued", data, N2, store, monkeypatch)
    assert f"continuing the finished run at iteration {N1} to {N2} ({N2 - N1} iterations) (run store {entry}/" in log
    assert_same_run(ref_tmp, tmp_path / "queued", ref_model, model)
    assert names(entry) == [N2, 40, N1, 20]
    model, log = run(kind, tmp_path / "again", data, N2, store, monkeypatch)   # nothing left to train
    assert f"resuming from iteration {N2} of {N2} (run store {entry}/" in log
    assert_same_run(ref_tmp, tmp_path / "again", ref_model, model)

def names(folder):
    """The steps of the checkpoints in a folder, newest first."""
    return [int(p.name.split("-")[1]) for p in checkpoint.list_checkpoints(folder)]


@pytest.fixture(scope="session")
def fresh_of(fmnist_small, tmp_path_factory):
    """fresh_of(kind, n): (folder, model) of a fresh n-iteration run without a store, made once per session."""
    made = {}

    def get(kind, n):
        if (kind, n) not in made:
            mp = pytest.MonkeyPatch()
            tmp = tmp_path_factory.mktemp(f"fresh_{kind}_{n}")
            model, log = run(kind, tmp, data_for(kind, fmnist_small), n, monkeypatch=mp)
            mp.undo()
            assert f"train_{kind}: training from scratch, iterations 0 to {n}" in log, log
            made[kind, n] = tmp, model
        return made[kind, n]
    return get


@pytest.mark.parametrize("kind", ["gan", "vae"])
def test_a_shorter_run_starts_from_the_newest_stored_state(kind, fresh_of, fmnist_small, tmp_path, monkeypatch):
    """After a 60-iteration run (snapshots every 20) the store holds its states at 20, 40 and 60. A 40-iteration
    run in empty folders (a queued or temporary experiment) trains nothing; a 50-iteration one in the longer
    run's workspace drops that run's checkpoint and trains 40 -> 50, and another 50 after it trains nothing.
    Each equals a fresh run of its length, checkpoints/ included (issue 28)."""
    data, store = data_for(kind, fmnist_small), tmp_path / "store"
    run(kind, tmp_path / "ws", data, 60, store, monkeypatch)
    (entry,) = store.iterdir()
    assert names(entry) == [60, 40, 20]
    model, log = run(kind, tmp_path / "at40", data, 40, store, monkeypatch)
    assert where_it_starts(log) == [f"train_{kind}: nothing to train: this run's end is iteration 40 of a "
                                    f"60-iteration run of the same params (run store {entry}/ckpt-000000040)"]
    assert f"train_{kind} " not in log.replace(f"train_{kind}: ", "")     # not one iteration, not one log line
    ref, ref_model = fresh_of(kind, 40)
    assert_same_run(ref, tmp_path / "at40", ref_model, model)
    assert names(tmp_path / "at40" / "ckpt") == names(ref / "ckpt") == [40]

    ref, ref_model = fresh_of(kind, 50)
    model, log = run(kind, tmp_path / "ws", data, 50, store, monkeypatch)
    assert where_it_starts(log) == [
        f"note: ignoring checkpoints in {tmp_path / 'ws' / 'ckpt'} beyond this run's 50 iterations (ckpt-000000060)",
        f"train_{kind}: starting from iteration 40 of a 60-iteration run of the same params, to 50 (10 iterations) "
        f"(run store {entry}/ckpt-000000040)"]
    assert_same_run(ref, tmp_path / "ws", ref_model, model)
    assert names(tmp_path / "ws" / "ckpt") == names(ref / "ckpt") == [50]
    assert names(entry) == [60, 50, 40, 20]
    model, log = run(kind, tmp_path / "at50", data, 50, store, monkeypatch)   # its end is stored now
    assert where_it_starts(log) == [f"train_{kind}: resuming from iteration 50 of 50 (run store {entry}/"
                                    "ckpt-000000050)"]
    assert_same_run(ref, tmp_path / "at50", ref_model, model)
    assert names(tmp_path / "at50" / "ckpt") == [50]


@pytest.mark.parametrize("kind", ["gan", "vae"])
def test_a_sweep_over_lengths_trains_each_iteration_once(kind, fresh_of, fmnist_small, tmp_path, monkeypatch):
    """Lengths 30, 50, 70 run one after another, each in folders of its own with one store (a queued sweep,
    `-S train.epochs=30,50,70`): the second continues the first, the third the second, and each equals a
    fresh run of its length."""
    data, store = data_for(kind, fmnist_small), tmp_path / "store"
    starts = []
    for n in (30, 50, 70):
        model, log = run(kind, tmp_path / str(n), data, n, store, monkeypatch)
        starts += where_it_starts(log)
        ref, ref_model = fresh_of(kind, n)
        assert_same_run(ref, tmp_path / str(n), ref_model, model)
    entry = next(store.iterdir())
    assert [line.split(" (run store")[0] for line in starts] == [
        f"train_{kind}: training from scratch, iterations 0 to 30 (no stored state of these params)",
        f"train_{kind}: continuing the finished run at iteration 30 to 50 (20 iterations)",
        f"train_{kind}: continuing the finished run at iteration 50 to 70 (20 iterations)"]
    assert names(entry) == [70, 60, 50, 40, 30, 20]


def test_other_params_or_a_shorter_run_without_the_store_start_over(fresh, fmnist_small, tmp_path, monkeypatch):
    data, store = gan_data(fmnist_small), tmp_path / "store"
    run("gan", tmp_path / "ws", data, N1, store, monkeypatch)
    _, log = run("gan", tmp_path / "ws", data, N2, store, monkeypatch, lr=4e-4)      # another lr
    assert "note: ignoring checkpoints" in log and "made with other params, data or code" in log
    assert "continuing" not in log and "resuming" not in log and "train_gan 20/60 " in log
    _, log = run("gan", tmp_path / "ws", data, 20, None, monkeypatch, lr=4e-4)  # shorter than 60, store off
    assert where_it_starts(log) == [
        f"note: ignoring checkpoints in {tmp_path / 'ws' / 'ckpt'} beyond this run's 20 iterations (ckpt-000000060)",
        "train_gan: starting this run over from iteration 0 (no usable checkpoint at or below 20)"]
    assert "train_gan 20/20 " in log


def where_it_starts(log):
    """The lines of a training's log that say what it dropped and where it starts (no progress lines)."""
    return [line for line in log.splitlines() if line.startswith(("note:", "warning:", "train_gan:", "train_vae:"))]


def test_a_shorter_run_after_a_longer_one_says_one_true_thing(fmnist_small, tmp_path, monkeypatch):
    """40 iterations, then 70 (continued), then 50 in the same workspace: the workspace holds only the
    70 run's final checkpoint (beyond 50), the run store the finished 40 run too. The run drops the
    former and continues the latter, and says that, never also that it starts over (issue 26, item 8)."""
    data, store = gan_data(fmnist_small), tmp_path / "store"
    run("gan", tmp_path / "ws", data, 40, store, monkeypatch)
    _, log = run("gan", tmp_path / "ws", data, 70, store, monkeypatch)
    assert where_it_starts(log) == ["train_gan: continuing the finished run at iteration 40 to 70 (30 iterations) "
                                    f"({tmp_path / 'ws' / 'ckpt' / 'ckpt-000000040'})"]
    model, log = run("gan", tmp_path / "ws", data, 50, store, monkeypatch)
    entry = checkpoint.store_entry(store, "train_gan", next(store.iterdir()).name.split("-", 1)[1])
    assert where_it_starts(log) == [
        f"note: ignoring checkpoints in {tmp_path / 'ws' / 'ckpt'} beyond this run's 50 iterations (ckpt-000000070)",
        f"train_gan: continuing the finished run at iteration 40 to 50 (10 iterations) (run store {entry}/"
        "ckpt-000000040)"]
    ref, _ = run("gan", tmp_path / "fresh", data, 50, None, monkeypatch)
    assert_same_run(tmp_path / "fresh", tmp_path / "ws", ref, model)


@pytest.mark.parametrize("damage", ["state", "live", "manifest", "foreign"])
def test_a_bad_store_entry_is_dropped_for_the_state_before_it(damage, fresh, fmnist_small, tmp_path, monkeypatch):
    """A damaged or foreign state in the store (its end at 30) is deleted with a note, and the run starts from
    the stored state before it (20) with the result of a fresh run."""
    data, store = gan_data(fmnist_small), tmp_path / "store"
    run("gan", tmp_path / "first", data, N1, store, monkeypatch)
    entry = next(p for p in store.iterdir())
    ckpt = entry / f"ckpt-{N1:09d}"
    if damage == "state":
        raw = bytearray((ckpt / "state.npz").read_bytes())
        raw[len(raw) // 2] ^= 0xFF
        (ckpt / "state.npz").write_bytes(bytes(raw))
    elif damage == "live":
        tsv = next((ckpt / "live").rglob("*.tsv"))
        tsv.write_text(tsv.read_text() + "0\t999\t1.0\n")
    elif damage == "manifest":
        (ckpt / "manifest.json").write_text('{"step": 30')
    else:  # another run's entry under this run's name (a copied or mixed-up store)
        run("gan", tmp_path / "other", data, N1, store, monkeypatch, lr=4e-4)
        other = next(p for p in store.iterdir() if p != entry)
        shutil.rmtree(ckpt)
        shutil.copytree(other / f"ckpt-{N1:09d}", ckpt)
    model, log = run("gan", tmp_path / "queued", data, N2, store, monkeypatch)
    assert re.search(rf"note: run store entry {re.escape(str(ckpt))} is unusable \(.+\); deleted it", log), log
    assert where_it_starts(log)[-1] == ("train_gan: starting from iteration 20 of a 30-iteration run of the same "
                                        f"params, to 60 (40 iterations) (run store {entry}/ckpt-000000020)")
    assert "train_gan 20/60 " not in log and "train_gan 40/60 " in log
    ref_tmp, ref_model = fresh["gan"]
    assert_same_run(ref_tmp, tmp_path / "queued", ref_model, model)


@pytest.mark.parametrize("kind, options", [
    ("gan", dict(arch="mlp", conditional=False, ema=0.0, loss="ns")),
    ("gan", dict(settings={"data_in_memory": False})),
    ("vae", dict(arch="mlp", variant="ae")),
    ("vae", dict(settings={"data_in_memory": False, "log_every": 15, "ckpt_every": 25})),
    ("gan", dict(settings={"mixed_precision": "bf16"})),
])
def test_extension_across_options(kind, options, fmnist_small, tmp_path, monkeypatch):
    """The other trajectories: mlp unconditional GAN without EMA, streamed data, the plain AE (whose
    end-only code Gaussian must not leak into the continuation), other schedules, bfloat16 mixed precision
    (float32 master weights, bfloat16 compute)."""
    data = data_for(kind, fmnist_small)
    ref, _ = run(kind, tmp_path / "fresh", data, N2, None, monkeypatch, **options)
    run(kind, tmp_path / "ws", data, N1, None, monkeypatch, **options)
    model, log = run(kind, tmp_path / "ws", data, N2, None, monkeypatch, **options)
    assert f"continuing the finished run at iteration {N1} to {N2}" in log
    assert_same_run(tmp_path / "fresh", tmp_path / "ws", ref, model)


def test_extension_under_a_mirrored_strategy(shared_data, tmp_path):
    """train.strategy mirrored over two logical CPU devices (tests/distributed_helper.py): a GAN with
    EMA run to 15 and continued to 20 ends with the weights of a fresh mirrored 20-iteration run."""
    from conftest import ROOT, tool_env
    helper = ROOT / "tests" / "distributed_helper.py"
    env = tool_env(GENLAB_TEST_DATA=str(shared_data), GENLAB_CPU_DEVICES="2")
    opts = ["strategy=mirrored", "xla=false"]

    def run_helper(out, work, iterations):
        r = subprocess.run([sys.executable, str(helper), str(out), str(work), "gan_options", *opts,
                            f"iterations={iterations}"], env=env, capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr[-3000:]
        return r.stderr

    run_helper(tmp_path / "fresh.npz", tmp_path / "fresh", 20)
    (tmp_path / "ext").mkdir()
    shutil.copytree(tmp_path / "fresh" / "processed", tmp_path / "ext" / "processed")
    run_helper(tmp_path / "short.npz", tmp_path / "ext", 15)
    err = run_helper(tmp_path / "ext.npz", tmp_path / "ext", 20)
    assert "train_gan: continuing the finished run at iteration 15 to 20 (5 iterations)" in err, err[-2000:]
    fresh, ext = np.load(tmp_path / "fresh.npz"), np.load(tmp_path / "ext.npz")
    names = sorted(k for k in fresh.files if k.startswith("w"))
    assert names == sorted(k for k in ext.files if k.startswith("w"))
    for k in names:
        np.testing.assert_array_equal(fresh[k], ext[k])
    np.testing.assert_array_equal(fresh["logged"][-1], ext["logged"][-1])   # the losses logged at 20


# --- the ways users run experiments (dvc): the smoke pipeline (60 iterations) extended to 90 --------

def dvc(proj, *args, env):
    r = subprocess.run(["dvc", *args], cwd=proj, capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r.stdout + r.stderr


def set_epochs(proj, n):
    import yaml
    params = yaml.safe_load((proj / "params.yaml").read_text())
    params["train"]["epochs"] = n
    (proj / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def pipeline_files(proj):
    """The trained models, their curves, the samples and the metrics of a pipeline run."""
    return snapshot(proj, ("models/gan", "models/vae", "dvclive/train_gan", "dvclive/train_vae", "samples", "metrics"))


def assert_same_files(a, b):
    assert sorted(a) == sorted(b)
    assert [k for k in a if a[k] != b[k]] == []


def continued(text, start, stop):
    return all(f"{s}: continuing the finished run at iteration {start} to {stop} ({stop - start} iterations)"
               in text for s in ("train_gan", "train_vae"))


def digests(files):
    return {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}


@pytest.fixture(scope="session")
def extension_base(smoke_pipeline, smoke_store, tmp_path_factory):
    """The smoke pipeline (60 iterations, run with a run store of its own) committed as a user's repo is,
    and the reference: the digests of a fresh 90-iteration pipeline's files (its checkpoints removed,
    no run store). Built once per test run (shared_once), whichever worker asks first; read-only."""
    shared, env, _ = smoke_pipeline
    shared_store = smoke_store

    def build(root):
        base = copy_tree(shared, root / "base")
        shutil.copytree(shared_store, root / "store")
        git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
        subprocess.run(git + ["add", "-A"], cwd=base, check=True)
        subprocess.run(git + ["commit", "-qm", "smoke pipeline"], cwd=base, check=True)
        fresh = copy_tree(base, root / "fresh")      # the reference: 90 iterations from scratch
        shutil.rmtree(fresh / "checkpoints")
        set_epochs(fresh, 90)
        out = dvc(fresh, "repro", env={**env, "GENLAB_RUN_STORE": "off"})
        assert "continuing" not in out and "resuming" not in out
        return {"base": str(base), "store": str(root / "store"), "reference": digests(pipeline_files(fresh))}
    built = shared_once(tmp_path_factory, "extension-base", build)
    return Path(built["base"]), Path(built["store"]), built["reference"], env


def test_exp_run_in_the_workspace_continues_the_finished_run(extension_base, tmp_path):
    """After the smoke pipeline (60 iterations), `dvc exp run -S train.epochs=90` in the workspace continues
    both trainings from the persisted checkpoints and gives the fresh 90-iteration pipeline's files. (`dvc repro`
    after editing params.yaml is the same path: `exp run` in the workspace sets the value and runs it.)"""
    base, _, reference, env = extension_base
    ws = copy_tree(base, tmp_path / "ws")
    assert continued(dvc(ws, "exp", "run", "-S", "train.epochs=90", env={**env, "GENLAB_RUN_STORE": "off"}), 60, 90)
    assert_same_files(reference, digests(pipeline_files(ws)))


def test_queued_and_temp_experiments_continue_the_finished_run(extension_base, tmp_path):
    """A queued experiment continues from the persisted checkpoints (DVC checks them out of its cache into the
    queue's temporary workspace: no run store needed). A temporary experiment of a longer run continues from
    the run store, which holds the queued run's end. With the run store on, evaluate takes the quality-curve
    rows of the snapshots the base run scored from its score cache, and the curves stay those of the fresh run."""
    base, shared_store, reference, env = extension_base
    store = tmp_path / "store"
    shutil.copytree(shared_store, store)
    on = {**env, "GENLAB_RUN_STORE": str(store)}
    queued = copy_tree(base, tmp_path / "queued")
    dvc(queued, "exp", "run", "--queue", "-n", "ext90", "-S", "train.epochs=90", env=on)
    dvc(queued, "exp", "run", "--run-all", env=on)    # = dvc queue start, waiting for the end
    logs = dvc(queued, "queue", "logs", "ext90", env=on)
    assert continued(logs, 60, 90) and "(run store" not in logs, logs   # the persisted checkpoints
    for name in ("gan", "vae"):   # the snapshots at 20, 40, 60 were scored by the base run: only 80, 90 are new
        assert f"evaluate: {name} quality curve over 5 snapshots (3 from the score cache)" in logs, logs
    dvc(queued, "exp", "apply", "ext90", env=on)
    assert_same_files(reference, digests(pipeline_files(queued)))

    temp = copy_tree(base, tmp_path / "temp")       # its dvc.lock has the 60-iteration checkpoints
    out = dvc(temp, "exp", "run", "--temp", "-S", "train.epochs=100", env=on)
    assert continued(out, 90, 100) and "(run store" in out, out


def test_a_shorter_exp_run_after_the_pipeline_trains_nothing(extension_base, tmp_path):
    """After the smoke pipeline (60 iterations, snapshots every 20, checkpoints every 30), `dvc exp run -S
    train.epochs=40` in the workspace trains neither network: both start and end at the state the 60-iteration
    run stored at 40 (a snapshot point, not a checkpoint one). Its files and checkpoints/ equal those of a fresh
    40-iteration pipeline (issue 28)."""
    base, shared_store, _, env = extension_base
    fresh = copy_tree(base, tmp_path / "fresh")
    shutil.rmtree(fresh / "checkpoints")
    set_epochs(fresh, 40)
    out = dvc(fresh, "repro", env={**env, "GENLAB_RUN_STORE": "off"})
    assert "continuing" not in out and "nothing to train" not in out
    store = tmp_path / "store"
    shutil.copytree(shared_store, store)
    ws = copy_tree(base, tmp_path / "ws")
    out = dvc(ws, "exp", "run", "-S", "train.epochs=40", env={**env, "GENLAB_RUN_STORE": str(store)})
    for stage in ("train_gan", "train_vae"):
        assert f"{stage}: nothing to train: this run's end is iteration 40 of a 60-iteration run" in out, out
        assert not re.search(rf"^{stage} \d+/40 ", out, re.M), out      # no iteration, no progress line
        assert names(ws / "checkpoints" / stage) == names(fresh / "checkpoints" / stage) == [40]
    assert_same_files(pipeline_files(fresh), pipeline_files(ws))
