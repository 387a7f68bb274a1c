"""One run identity (genlab.identity): the import closure a code digest covers, and for every key of
the project, that each of its inputs changes it and that an unrelated change does not."""

import os
import shutil
from dataclasses import replace

import keras
import numpy as np
import pytest

from conftest import ROOT
from genlab import identity
from genlab.evaluation import evaluator as evaluator_module
from genlab.evaluation import floor, score_cache
from genlab.params import Cas, Evaluate
from genlab.training import gan as gan_training
from genlab.training.loop import TrainSettings, run_fingerprint


@pytest.fixture
def code_copy(tmp_path, monkeypatch):
    """A copy of the genlab package that the identity functions read instead of the real one."""
    shutil.copytree(ROOT / "genlab", tmp_path / "genlab", ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(identity, "ROOT", tmp_path)
    return tmp_path


def other_threads():
    """A thread cap other than the one this run has (the suite sets one: conftest._cap_threads)."""
    return str(int(os.environ.get("GENLAB_THREADS") or 0) + 1)


def touch(root, rel):
    """Append a comment to a module: new source, same behaviour."""
    with open(root / rel, "a") as f:
        f.write("\n# changed\n")


def assert_key_inputs(key, changes, unrelated):
    """key(): the key now. changes/unrelated: {name: function that changes one input (and undoes
    nothing)}; each function in `changes` must change the key, each in `unrelated` must keep it."""
    for name, change in changes.items():
        before = key()
        change()
        assert key() != before, f"changing {name} did not change the key"
    for name, change in unrelated.items():
        before = key()
        change()
        assert key() == before, f"changing {name} changed the key"


def test_closure_follows_imports_at_any_depth_and_nothing_else(tmp_path):
    pkg = tmp_path / "genlab"
    (pkg / "sub").mkdir(parents=True)
    for f in ("__init__.py", "sub/__init__.py"):
        (pkg / f).write_text("")
    (pkg / "a.py").write_text("def f():\n    from genlab.sub import b\n    return b\n")   # function-level
    (pkg / "sub" / "b.py").write_text("import genlab.c\n")
    (pkg / "c.py").write_text("import numpy\n")
    (pkg / "d.py").write_text("from genlab import a\n")   # imports a, not imported by it
    closure = [p.as_posix() for p in identity.module_closure("genlab.a", root=tmp_path)]
    assert closure == ["genlab/a.py", "genlab/c.py", "genlab/sub/b.py"]
    before = identity.code_digest("genlab.a", root=tmp_path)
    touch(tmp_path, "genlab/d.py")
    assert identity.code_digest("genlab.a", root=tmp_path) == before
    touch(tmp_path, "genlab/c.py")
    assert identity.code_digest("genlab.a", root=tmp_path) != before
    with pytest.raises(ValueError, match="no module genlab.nope"):
        identity.module_closure("genlab.nope", root=tmp_path)


def test_the_training_closure_holds_the_loop_and_the_model_but_not_evaluation():
    closure = {p.as_posix() for p in identity.module_closure("genlab.training.gan")}
    assert {"genlab/training/gan.py", "genlab/training/loop.py", "genlab/training/checkpoint.py",
            "genlab/models/gan.py", "genlab/identity.py"} <= closure
    assert not any(p.startswith(("genlab/evaluation/", "genlab/outputs/report")) for p in closure)


def test_digests():
    a = np.arange(6, dtype=np.float32)
    assert identity.array_digest(a) != identity.array_digest(a.reshape(2, 3))          # shape counts
    assert identity.array_digest(a) != identity.array_digest(a.astype(np.float64))     # dtype counts
    assert identity.digest({"a": 1, "b": 2}) == identity.digest({"b": 2, "a": 1})      # canonical
    assert identity.digest({"a": 1}) != identity.digest({"a": 1.5})


def test_training_run_fingerprint(code_copy, monkeypatch):
    x = np.random.default_rng(0).random((8, 4, 4, 1)).astype(np.float32)
    y = np.arange(8, dtype=np.int32)
    run = dict(stage="train_gan", args={"arch": "dcgan", "lr": 2e-4},
               settings=TrainSettings(iterations=100, batch_size=4, seed=0, log_every=10, ckpt_every=50),
               dataset={"meta": {"dataset": "fashion_mnist"}, "train": (x, y)}, splits=("train",),
               modules=[gan_training])

    def set_(name, value):
        return lambda: run.__setitem__(name, value)

    def settings(**kw):
        return lambda: run.__setitem__("settings", replace(run["settings"], **kw))

    assert_key_inputs(lambda: run_fingerprint(**run), changes={
        "stage": set_("stage", "train_vae"),
        "a model param": set_("args", {"arch": "dcgan", "lr": 1e-4}),
        "the seed": settings(seed=1),
        "the batch size": settings(batch_size=8),
        "the snapshot interval": settings(snapshot_every=10),
        "the data": set_("dataset", {"meta": {"dataset": "fashion_mnist"}, "train": (x + 1, y)}),
        "the labels": set_("dataset", {"meta": {"dataset": "fashion_mnist"}, "train": (x + 1, y[::-1].copy())}),
        "the data's meta": set_("dataset", {"meta": {"dataset": "mnist"}, "train": (x + 1, y[::-1].copy())}),
        "the model's code": lambda: touch(code_copy, "genlab/models/gan.py"),
        "the loop's code": lambda: touch(code_copy, "genlab/training/loop.py"),
        "a module imported further down": lambda: touch(code_copy, "genlab/io.py"),
        "the thread cap": lambda: monkeypatch.setenv("GENLAB_THREADS", other_threads()),
    }, unrelated={
        "the iteration count (a longer run continues a shorter one)": settings(iterations=200),
        "the evaluation code": lambda: touch(code_copy, "genlab/evaluation/metrics.py"),
        "the report code": lambda: touch(code_copy, "genlab/outputs/report.py"),
    })


def test_evaluator_run_key(code_copy, monkeypatch):
    x = np.zeros((4, 4, 4, 1), np.float32)
    args = {"build": {"filters": [8]}, "run": {"epochs": 2}, "arrays": [x, np.zeros(4, np.int32)]}
    key = lambda: evaluator_module._run_fingerprint(args["build"], args["run"], *args["arrays"])  # noqa: E731
    assert_key_inputs(key, changes={
        "the architecture": lambda: args.update(build={"filters": [16]}),
        "a training setting": lambda: args.update(run={"epochs": 3}),
        "the data": lambda: args.update(arrays=[x + 1, np.zeros(4, np.int32)]),
        "its code": lambda: touch(code_copy, "genlab/evaluation/evaluator.py"),
        "code it imports": lambda: touch(code_copy, "genlab/io.py"),
        "the thread cap": lambda: monkeypatch.setenv("GENLAB_THREADS", other_threads()),
    }, unrelated={
        "the GAN's code": lambda: touch(code_copy, "genlab/models/gan.py"),
    })


def small_net(seed):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])


SETTINGS = Evaluate(n_samples=10, min_evaluator_accuracy={}, iw_k=1, binarize_threshold=0.5, kid_subset_size=5,
                    kid_subsets=2, pr_k=3, coverage_min_share=0.1, two_sample_l2=1e-3, two_sample_max_iter=10,
                    pixel_detector_epochs=1, curve_n=8, seed=0)
CAS = Cas(n=10, epochs=1, batch_size=2, lr=1e-3, seed=0)


def test_floor_key(code_copy, monkeypatch):
    x, y = np.zeros((4, 2), np.float32), np.zeros(4, np.int32)
    a = {"evaluator": small_net(0), "test": (x, y), "train": (x + 1, y), "settings": SETTINGS, "cas": CAS}
    assert_key_inputs(lambda: floor.key(**a), changes={
        "the evaluator's weights": lambda: a.update(evaluator=small_net(1)),
        "the test images": lambda: a.update(test=(x + 2, y)),
        "the training labels": lambda: a.update(train=(x + 1, y + 1)),
        **{f"evaluate.{k}": (lambda k=k: a.update(settings=replace(a["settings"], **{k: getattr(SETTINGS, k) + 1})))
           for k in floor.FIELDS},
        "cas.seed": lambda: a.update(cas=replace(CAS, seed=1)),
        "the scoring code": lambda: touch(code_copy, "genlab/evaluation/metrics.py"),
        "the thread cap": lambda: monkeypatch.setenv("GENLAB_THREADS", other_threads()),
    }, unrelated={
        "evaluate.curve_n (the curves only)": lambda: a.update(settings=replace(a["settings"], curve_n=9)),
        "the same weights in another model object": lambda: a.update(evaluator=small_net(1)),
        "the VAE's code": lambda: touch(code_copy, "genlab/training/vae.py"),
    })


def test_score_cache_keys(code_copy, monkeypatch, tmp_path):
    x, y = np.zeros((8, 2), np.float32), np.zeros(8, np.int32)
    a = {"config": {"arch": "dcgan", "code_gmm": [1.0]}, "evaluator": small_net(0), "x_val": x, "y_val": y,
         "settings": SETTINGS, "cas": CAS}
    assert_key_inputs(lambda: score_cache.curve_context(**a), changes={
        "the model's config": lambda: a.update(config={"arch": "mlp", "code_gmm": [1.0]}),
        "the evaluator's weights": lambda: a.update(evaluator=small_net(1)),
        "the validation images": lambda: a.update(x_val=x + 1),
        "the validation labels": lambda: a.update(y_val=y + 1),
        "evaluate.curve_n": lambda: a.update(settings=replace(a["settings"], curve_n=4)),
        "evaluate.pr_k": lambda: a.update(settings=replace(a["settings"], pr_k=4)),
        "the cas settings": lambda: a.update(cas=None),
        "the scoring code": lambda: touch(code_copy, "genlab/evaluation/detect.py"),
        "the model code": lambda: touch(code_copy, "genlab/models/vae.py"),
        "the thread cap": lambda: monkeypatch.setenv("GENLAB_THREADS", other_threads()),
    }, unrelated={
        "the fitted code mixture (snapshots sample the prior)": lambda: a.update(
            config={**a["config"], "code_gmm": [2.0]}),
        "validation images past curve_n": lambda: a.update(x_val=np.concatenate([a["x_val"], x + 5])),
        "evaluate.n_samples (the headline metrics only)": lambda: a.update(
            settings=replace(a["settings"], n_samples=20)),
        "the report code": lambda: touch(code_copy, "genlab/outputs/report.py"),
    })
    snap = tmp_path / "snap.npz"
    snap.write_bytes(b"weights")
    cache = score_cache.RowCache(tmp_path / "store", "context")
    row = {"iteration": 5, "snapshot": snap}
    assert_key_inputs(lambda: cache._key(row["iteration"], row["snapshot"]), changes={
        "the iteration": lambda: row.update(iteration=6),
        "the snapshot's bytes": lambda: snap.write_bytes(b"other weights"),
        "the context": lambda: setattr(cache, "context", "other context"),
    }, unrelated={})
