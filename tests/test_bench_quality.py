"""benchmarks/bench_quality.py end to end with a tiny budget on real Fashion-MNIST: every row of the
table is there with finite numbers (the equal-time race itself is measured, not tested)."""

import importlib.util
import io
import json
import math
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT

SCRIPT = ROOT / "benchmarks" / "bench_quality.py"


def bench_module():
    spec = importlib.util.spec_from_file_location("bench_quality", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def tiny_evaluator(fmnist_small, tmp_path_factory):
    """An evaluator trained for one epoch on 2,000 real images (scores only need its features)."""
    from genlab.evaluation.evaluator import accuracy, save_evaluator, train_evaluator
    (x, y), (xt, yt) = fmnist_small["train"], fmnist_small["test"]
    from genlab.params import Evaluator
    model, info = train_evaluator(x[:2000], y[:2000], xt[:200], yt[:200], Evaluator.of(
        filters=[8, 16], feature_dim=32, dropout=0.0, epochs=1, warmup_epochs=0, batch_size=64, lr=3e-3, seed=0),
        n_classes=10, out=io.StringIO())
    info.update(dataset="fashion_mnist", input_range=[-1.0, 1.0], test_accuracy=accuracy(model, xt, yt))
    d = tmp_path_factory.mktemp("evaluator")
    save_evaluator(model, d, info)
    return d


@pytest.mark.slow   # the benchmark script in a subprocess
def test_every_row_is_scored_with_finite_numbers(tiny_evaluator, shared_data, tmp_path):
    out = tmp_path / "bq"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--minutes", "0.02", "--n", "500", "--iw-k", "4",
                           "--jobs", "2", "--evaluator", str(tiny_evaluator), "--min-evaluator-accuracy", "0",
                           "--data", str(shared_data / "fashion-mnist"), "--out", str(out)],
                          capture_output=True, text=True, cwd=ROOT, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.with_suffix(".json").read_text())
    names = [r["name"] for r in result["rows"]]
    assert names == list(bench_module().MODELS)
    for r in result["rows"]:
        assert r["iterations"] >= 1 and r["train_s"] > 0 and r["load_before"] >= 0 and r["load_after"] >= 0
        s = result["scores"][r["name"]]
        for key in ("fd", "kid", "precision", "recall", "classes_covered", "detector_accuracy"):
            assert math.isfinite(s[key]), (r["name"], key)
        if r["family"] == "vae":
            assert math.isfinite(r["elbo"]) and r["iw_bound"] >= r["elbo"] - 1.0 and r["elbo"] < 0
    md = out.with_suffix(".md").read_text()
    rows = [line for line in md.splitlines() if line.startswith("| ") and not line.startswith("| model")]
    assert len(rows) == len(names) + 1  # + the real-vs-real floor
    for name, line in zip(names, rows):
        assert line.startswith(f"| {name} ") and "nan" not in line.lower()
    assert "bench_quality.py --minutes 0.02" in md


def test_variant_rows_change_only_the_named_params():
    bench = bench_module()
    assert bench.parse_variant("ema=gan.ema=0.999,gan.loss=hinge") == ("ema", {"gan.ema": 0.999, "gan.loss": "hinge"},
                                                                         "gan")
    params = bench.read_params({"gan.ema": 0.999})
    assert params["gan"]["ema"] == 0.999 and params["gan"]["filters"] == bench.read_params()["gan"]["filters"]
    for bad in ("default_gan=gan.ema=0.9", "x=gan.ema=0.9,vae.beta=2", "x=gan.ema"):
        with pytest.raises(SystemExit):
            bench.parse_variant(bad)
    with pytest.raises(SystemExit, match="not a key"):
        bench.read_params({"gan.emma": 0.9})
    assert np.isfinite(bench.load1())


def test_the_default_vae_row_samples_as_the_pipeline_does(fmnist_small, monkeypatch):
    """default_vae fits the code mixture of params.yaml (vae.prior gmm) after training, as train_vae does."""
    monkeypatch.syspath_prepend(str(SCRIPT.parent))
    bench = bench_module()
    (x, y) = fmnist_small["train"]
    dataset = {"meta": {"range": [-1.0, 1.0], "shape": [28, 28, 1]}, "train": (x[:300], y[:300]),
               "val": (x[300:400], y[300:400])}
    task, _, _, desc = bench.build("default_vae", "vae", bench.read_params(), dataset)
    assert (task.prior, task.prior_components) == ("gmm", 20) and "20-component code mixture" in desc
    task, _, _, desc = bench.build("vae_normal", "vae", bench.read_params({"vae.prior": "normal"}), dataset)
    assert task.prior == "normal" and "samples from N(0, I), decoded at temperature " in desc


def test_a_gan_row_names_what_its_variant_changed(fmnist_small, monkeypatch):
    """Two GAN rows that differ only in Adam's moments are told apart by their descriptions."""
    monkeypatch.syspath_prepend(str(SCRIPT.parent))
    bench = bench_module()
    (x, y) = fmnist_small["train"]
    dataset = {"meta": {"range": [-1.0, 1.0], "shape": [28, 28, 1], "n_classes": 10}, "train": (x[:300], y[:300]),
               "val": (x[300:400], y[300:400])}
    descs = [bench.build("default_gan", "gan", bench.read_params(o), dataset)[3]
             for o in ({}, {"gan.beta_1": 0.5, "gan.beta_2": 0.999})]
    assert "Adam (0, 0.99)" in descs[0] and "Adam (0.5, 0.999)" in descs[1]


def test_against_val_scores_the_validation_images_never_the_test_ones(shared_data):
    """--against val (how a default is chosen): the generated images meet the validation split, as the normalize
    stage cuts it, and a request for more images than the split holds stops with the limit."""
    bench = bench_module()
    dataset = bench.load_data(shared_data / "fashion-mnist", bench.read_params())
    x_val = bench.scored_images(dataset, "val", 6000)
    assert x_val.shape == (6000, 28, 28, 1) and np.array_equal(x_val, dataset["val"][0])
    assert np.array_equal(bench.scored_images(dataset, "test", 100), dataset["test"][0][:100])
    with pytest.raises(SystemExit, match="exceed the 6,000 validation images: give at most 6000"):
        bench.scored_images(dataset, "val", 6001)
