"""The evaluator CNN: accuracy on a real slice, save/load, determinism, the gate, the stage script.

Slice gate: trained 4 epochs (1 of warm-up) on 10,000 real training images (1,000 more for selection), the
evaluator must reach >= 0.85 accuracy on the first 2,000 test images (full data reaches >= 0.90).
"""

import io
import json
import sys
import time

import numpy as np
import pytest
import yaml

from genlab.errors import GenlabError
from genlab.evaluation.evaluator import (
    accuracy,
    build_evaluator,
    check_evaluator,
    check_gate,
    features,
    features_and_proba,
    gate_for,
    load_evaluator,
    load_evaluator_info,
    predict_proba,
    save_evaluator,
    train_evaluator,
)
from genlab.params import Evaluator, check_gates

SLICE_GATE = 0.85
ARCH = dict(filters=[16, 32], feature_dim=128, dropout=0.3)


def evaluator_params(**run):
    """The checked evaluator.* params (genlab.params.Evaluator): ARCH and the given run values."""
    return Evaluator.of(**ARCH, **run)
QUIET = dict(out=io.StringIO())


def scaled(x):
    return x.astype(np.float32)[..., None] / 127.5 - 1.0


@pytest.fixture(scope="module")
def trained(fmnist_raw):
    x, y = scaled(fmnist_raw["x_train"][:11000]), fmnist_raw["y_train"][:11000].astype(np.int32)
    model, info = train_evaluator(x[:10000], y[:10000], x[10000:], y[10000:], evaluator_params(
        epochs=4, warmup_epochs=1, batch_size=128, lr=0.003, seed=0), n_classes=10, **QUIET)
    return model, info


def test_evaluator_reaches_slice_gate(trained, fmnist_raw):
    model, info = trained
    acc = accuracy(model, scaled(fmnist_raw["x_test"][:2000]), fmnist_raw["y_test"][:2000])
    assert acc >= SLICE_GATE, f"evaluator accuracy {acc:.4f} on 2,000 test images"
    check_gate(acc, SLICE_GATE, "fashion_mnist (slice)")
    assert 1 <= info["train"]["best_epoch"] <= 4 and len(info["history"]) == 4


def test_features_and_probabilities(trained, fmnist_raw):
    model, _ = trained
    x = scaled(fmnist_raw["x_test"][:300])
    f, p = features_and_proba(model, x)
    assert f.shape == (300, 128) and f.dtype == np.float32 and (f >= 0).all()   # ReLU features
    assert p.shape == (300, 10) and np.allclose(p.sum(axis=1), 1.0)
    np.testing.assert_array_equal(features(model, x.reshape(300, 784)), f)      # flat input accepted
    with pytest.raises(GenlabError, match=r"takes images of shape \(N, 28, 28, 1\)"):
        features(model, np.zeros((5, 32, 32, 1)))


def test_save_load_round_trip(trained, fmnist_raw, tmp_path):
    model, info = trained
    save_evaluator(model, tmp_path / "ev", {**info, "test_accuracy": 0.9, "dataset": "fashion_mnist"})
    loaded = load_evaluator(tmp_path / "ev")
    x = scaled(fmnist_raw["x_test"][:200])
    np.testing.assert_allclose(features(loaded, x), features(model, x), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(predict_proba(loaded, x), predict_proba(model, x), rtol=1e-6, atol=1e-9)
    meta = load_evaluator_info(tmp_path / "ev")
    assert meta["test_accuracy"] == 0.9 and meta["build"]["filters"] == [16, 32]


@pytest.mark.slow   # two evaluator trainings
def test_training_is_deterministic(fmnist_small):
    x, y = fmnist_small["train"]
    params = evaluator_params(epochs=1, warmup_epochs=0, batch_size=100, lr=0.003, seed=7)
    runs = [train_evaluator(x[:600], y[:600], x[1000:1100], y[1000:1100], params, n_classes=10, **QUIET)[0]
            for _ in range(2)]
    for a, b in zip(runs[0].weights, runs[1].weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_gate_refuses_a_weak_evaluator():
    with pytest.raises(GenlabError, match=r"evaluator test accuracy 0\.8500 on fashion_mnist is below the gate "
                                          r"0\.9000: .*evaluator\.epochs"):
        check_gate(0.85, 0.90, "fashion_mnist")
    with pytest.raises(GenlabError, match="unknown"):
        check_gate(None, 0.90, "fashion_mnist")
    check_gate(0.90, 0.90, "fashion_mnist")  # at the gate is enough


def test_gate_for_dataset():
    gates = {"mnist": 0.99, "fashion_mnist": 0.90}
    assert gate_for(gates, "mnist") == 0.99
    with pytest.raises(GenlabError, match="no gate for dataset 'url'.*add `url: "):
        gate_for(gates, "url")
    for bad in (99, -0.1, True, "high"):
        with pytest.raises(GenlabError, match=r"min_evaluator_accuracy\.mnist must be a number in \[0, 1\]"):
            check_gates({"fashion_mnist": 0.9, "mnist": bad})
    assert check_gates({"mnist": 1, "url": 0}) == {"mnist": 1.0, "url": 0.0}


def test_check_evaluator_matches_dataset_and_gate():
    gates = {"mnist": 0.99, "fashion_mnist": 0.90}
    check_evaluator({"dataset": "fashion_mnist", "test_accuracy": 0.91}, gates, "fashion_mnist")
    with pytest.raises(GenlabError, match="trained on 'fashion_mnist' but the data is 'mnist'"):
        check_evaluator({"dataset": "fashion_mnist", "test_accuracy": 0.995}, gates, "mnist")
    with pytest.raises(GenlabError, match="below the gate 0.9900"):
        check_evaluator({"dataset": "mnist", "test_accuracy": 0.98}, gates, "mnist")


def test_load_refuses_missing_or_corrupt(tmp_path):
    with pytest.raises(GenlabError, match="run `dvc repro train_evaluator` first"):
        load_evaluator(tmp_path / "nothing")
    (tmp_path / "old").mkdir()   # an evaluator of the previous format (a whole-model .keras file)
    (tmp_path / "old" / "evaluator.json").write_text('{"format": "genlab-evaluator/1"}')
    with pytest.raises(GenlabError, match=r"is not a genlab-evaluator/2 description: run `dvc repro -f "
                                          r"train_evaluator`"):
        load_evaluator(tmp_path / "old")
    save_evaluator(build_evaluator((28, 28, 1), 10, filters=[4], feature_dim=8, dropout=0.0), tmp_path / "ev", {})
    (tmp_path / "ev" / "evaluator.weights.h5").write_bytes(b"not an HDF5 file")
    with pytest.raises(GenlabError, match="cannot be loaded"):
        load_evaluator(tmp_path / "ev")


def test_an_evaluator_saved_twice_is_byte_identical(trained, tmp_path):
    """Saving the same evaluator later gives the same bytes (a .keras archive carries its save time), so a
    retrain to the same weights leaves models/evaluator's DVC hash, and everything after it, unchanged."""
    model, info = trained
    save_evaluator(model, tmp_path / "a", info)
    time.sleep(2.1)
    save_evaluator(model, tmp_path / "b", info)
    for name in ("evaluator.json", "evaluator.weights.h5"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_refuses_bad_inputs(fmnist_small):
    x, y = fmnist_small["train"]
    run = dict(epochs=1, warmup_epochs=0, lr=0.01, seed=0)
    with pytest.raises(GenlabError, match="labels must lie in 0..9"):
        train_evaluator(x[:10], y[:10] + 10, x[:5], y[:5], evaluator_params(batch_size=5, **run), n_classes=10)
    with pytest.raises(GenlabError, match=r"evaluator.batch_size \(64\) is larger than the training split "
                                          r"\(10 images\): lower evaluator.batch_size to at most 10"):
        train_evaluator(x[:10], y[:10], x[:5], y[:5], evaluator_params(batch_size=64, **run), n_classes=10)
    with pytest.raises(GenlabError, match=r"evaluator.warmup_epochs \(2\) must be less than evaluator.epochs"):
        evaluator_params(epochs=2, warmup_epochs=2, batch_size=5, lr=0.01, seed=0)   # checked where it is read


# ---- the stage script -----------------------------------------------------------------------------

PARAMS = {"evaluator": {"filters": [8, 16], "feature_dim": 32, "dropout": 0.2, "epochs": 1,
                        "warmup_epochs": 0, "batch_size": 100, "lr": 0.003, "seed": 0}}


def _project(tmp_path, fmnist_small, params):
    data = tmp_path / "data" / "processed"
    data.mkdir(parents=True)
    (x, y), (xt, yt) = fmnist_small["train"], fmnist_small["test"]
    for split, (xs, ys) in {"train": (x[:1000], y[:1000]), "val": (x[1000:1200], y[1000:1200]),
                            "test": (xt[:200], yt[:200])}.items():
        np.save(data / f"{split}_x.npy", xs)
        np.save(data / f"{split}_y.npy", ys)
    meta = {"dataset": "fashion_mnist", "shape": [28, 28, 1], "range": [-1.0, 1.0], "n_classes": 10,
            "class_names": [str(i) for i in range(10)], "counts": {"train": 1000, "val": 200, "test": 200}}
    (data / "meta.json").write_text(json.dumps(meta))
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    return ["train_evaluator", "--data", "data/processed", "--model", "models/evaluator",
            "--checkpoints", "checkpoints/train_evaluator", "--metrics", "metrics/evaluator.json"]


def test_stage_writes_model_and_metrics(tmp_path, fmnist_small, monkeypatch):
    from stages import train_evaluator as stage
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", _project(tmp_path, fmnist_small, PARAMS))
    stage.main()
    metrics = json.loads((tmp_path / "metrics" / "evaluator.json").read_text())
    assert set(metrics) == {"test_accuracy", "val_accuracy", "best_epoch", "n_train"}
    assert 0.0 < metrics["test_accuracy"] <= 1.0
    info = load_evaluator_info(tmp_path / "models" / "evaluator")
    assert info["test_accuracy"] == metrics["test_accuracy"] and info["input_range"] == [-1.0, 1.0]
    assert info["dataset"] == "fashion_mnist" and info["build"]["feature_dim"] == 32
    assert features(load_evaluator(tmp_path / "models" / "evaluator"), np.zeros((2, 28, 28, 1))).shape == (2, 32)


@pytest.mark.parametrize("key, value, message", [
    ("epochs", 0, "evaluator.epochs must be a positive integer, got 0"),
    ("filters", [16, "wide"], "evaluator.filters must be a non-empty list of positive integers"),
    ("lr", "fast", "evaluator.lr must be a number in"),
    ("warmup_epochs", 1, r"evaluator.warmup_epochs \(1\) must be less than evaluator.epochs \(1\)"),
])
def test_stage_refuses_bad_params_before_work(tmp_path, fmnist_small, monkeypatch, key, value, message):
    from stages import train_evaluator as stage
    params = {"evaluator": {**PARAMS["evaluator"], key: value}}
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", _project(tmp_path, fmnist_small, params))
    with pytest.raises(GenlabError, match=message):
        stage.main()
    assert not (tmp_path / "models").exists() and not (tmp_path / "metrics").exists()
