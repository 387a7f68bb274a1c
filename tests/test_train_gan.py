"""GAN training on real Fashion-MNIST (the 4,000-image slice): learning, save/load, determinism,
resume after a kill, stale checkpoints, divergence, conditional generation."""

import json
import re

import numpy as np
import pytest

from genlab.errors import GenlabError
from genlab.models.load import load_model
from genlab.params import Gan
from genlab.training.gan import train_gan
from genlab.training.loop import TrainSettings

# The recipe's networks; lr 1e-3 instead of its 2e-4 so that 400 iterations show clear learning.
RECIPE = Gan.of(arch="mlp", conditional=False, latent_dim=100, hidden=128, filters=8, lr=1e-3, beta_1=0.5, beta_2=0.999,
                d_lr=0.0, loss="ns", ema=0.0)
SETTINGS = TrainSettings(iterations=400, batch_size=128, seed=3, log_every=50, ckpt_every=100)


class Killed(BaseException):
    """Stands in for kill -9: no handler runs, nothing is saved on the way out."""


def dataset_of(fmnist_small, x=None):
    x_train, y_train = fmnist_small["train"]
    meta = {"dataset": "fashion_mnist", "shape": [28, 28, 1], "range": [-1.0, 1.0], "n_classes": 10,
            "counts": {"train": len(x_train)}}
    return {"meta": meta, "train": (x_train if x is None else x, y_train)}


def run(tmp, dataset, settings=SETTINGS, on_log=None, log=None, jit_compile="auto", **overrides):
    """train_gan into tmp/{model,ckpt,live}; progress lines go to `log`. jit_compile=False where a
    test is about the loop's logic, not XLA (it saves ~3 s of compilation per run)."""
    gan = RECIPE.replace(**overrides)
    lines = log if log is not None else []

    class Out:
        def write(self, s):
            lines.append(s)

        def flush(self):
            pass

    return train_gan(dataset, tmp / "model", tmp / "ckpt", tmp / "live", settings=settings,
                     on_log=on_log, out=Out(), jit_compile=jit_compile, gan=gan)


def weights(model):
    return [v.numpy() for net in (model.generator, model.discriminator) for v in net.variables]


def tsv_steps(live, name):
    """The step column of a dvclive metric file."""
    lines = (live / "plots" / "metrics" / f"{name}.tsv").read_text().splitlines()
    return [int(line.split("\t")[0]) for line in lines[1:]]


@pytest.fixture(scope="module")
def reference(fmnist_small, tmp_path_factory):
    """One uninterrupted 400-iteration run of the recipe GAN (seed 3)."""
    tmp = tmp_path_factory.mktemp("gan_ref")
    logged = []
    model = run(tmp, dataset_of(fmnist_small), on_log=lambda step, v: logged.append((step, v)))
    return {"tmp": tmp, "model": model, "logged": logged, "weights": weights(model)}


def test_losses_finite_and_logged_every_interval(reference):
    steps = [s for s, _ in reference["logged"]]
    assert steps == list(range(50, 401, 50))
    for _, values in reference["logged"]:
        assert set(values) == {"d_loss", "g_loss", "d_real", "d_fake"}
        assert all(np.isfinite(v) for v in values.values())
        assert 0.0 < values["d_real"] < 1.0 and 0.0 < values["d_fake"] < 1.0
    live = reference["tmp"] / "live"
    assert tsv_steps(live, "d_loss") == steps
    summary = json.loads((live / "metrics.json").read_text())
    assert summary["step"] == 400 and summary["g_loss"] == pytest.approx(reference["logged"][-1][1]["g_loss"])
    assert sorted(p.name for p in (live / "plots" / "images" / "samples").iterdir()) == \
        sorted(f"{s}.png" for s in (100, 200, 300, 400))


def distances(model, real):
    """(mean-image gap, pixel-histogram gap) between 1,000 samples of model and the real images."""
    fake = model.generate(1000, seed=11)
    mean_gap = np.abs(fake.mean(axis=0) - real.mean(axis=0)).mean()
    bins = np.linspace(-1, 1, 21)
    hist_gap = np.abs(np.histogram(fake, bins)[0] / fake.size - np.histogram(real, bins)[0] / real.size).sum()
    return mean_gap, hist_gap


def test_samples_move_toward_the_data(reference, fmnist_small):
    from genlab.models.gan import GAN
    real = fmnist_small["test"][0]
    mean0, hist0 = distances(GAN(reference["model"].config), real)
    mean1, hist1 = distances(reference["model"], real)
    assert mean1 < 0.5 * mean0, (mean0, mean1)   # measured: 0.49 -> 0.16
    assert hist1 < 0.8 * hist0, (hist0, hist1)   # measured: 1.36 -> 0.92


def test_model_folder_round_trip(reference):
    model_dir = reference["tmp"] / "model"
    assert sorted(p.name for p in model_dir.iterdir()) == \
        ["config.json", "discriminator.weights.h5", "generator.weights.h5"]
    loaded = load_model(model_dir)
    assert loaded.config == reference["model"].config
    a, b = reference["model"].generate(50, seed=5), loaded.generate(50, seed=5)
    assert a.shape == (50, 28, 28, 1) and a.min() >= -1.0 and a.max() <= 1.0
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, loaded.generate(50, seed=6))


@pytest.mark.slow   # two trainings
def test_same_seed_same_weights(reference, fmnist_small, tmp_path):
    again = run(tmp_path, dataset_of(fmnist_small))
    for w0, w1 in zip(reference["weights"], weights(again)):
        np.testing.assert_array_equal(w0, w1)
    other = run(tmp_path / "seed4", dataset_of(fmnist_small),
                settings=TrainSettings(**{**SETTINGS.__dict__, "seed": 4, "iterations": 50}), jit_compile=False)
    assert not np.array_equal(reference["weights"][0], weights(other)[0])


@pytest.mark.slow   # killed and resumed trainings compared with an uninterrupted one
def test_killed_run_resumes_to_the_same_weights(reference, fmnist_small, tmp_path):
    """kill -9 at iteration 250 (checkpoints every 100), run again: the result is bit-identical to
    the uninterrupted reference and the curves have no repeated rows. (Ctrl-C/SIGTERM, which also
    checkpoints on the way out, is tested on the real stage in test_train_stages.py.)"""
    data = dataset_of(fmnist_small)

    def kill_at_250(step, values):
        if step == 250:
            raise Killed()

    with pytest.raises(Killed):
        run(tmp_path, data, on_log=kill_at_250)
    assert [p.name for p in sorted((tmp_path / "ckpt").iterdir())] == ["ckpt-000000100", "ckpt-000000200"]
    assert tsv_steps(tmp_path / "live", "d_loss")[-1] == 250
    assert not (tmp_path / "model").exists()
    log = []
    model = run(tmp_path, data, log=log)
    assert "resuming from iteration 200 of 400" in "".join(log)
    for w0, w1 in zip(reference["weights"], weights(model)):
        np.testing.assert_array_equal(w0, w1)
    assert tsv_steps(tmp_path / "live", "d_loss") == list(range(50, 401, 50))
    ref_rows = (reference["tmp"] / "live" / "plots" / "metrics" / "g_loss.tsv").read_text()
    assert (tmp_path / "live" / "plots" / "metrics" / "g_loss.tsv").read_text() == ref_rows
    assert (tmp_path / "model" / "config.json").exists()


@pytest.mark.slow   # two trainings
def test_checkpoint_of_other_params_is_ignored(fmnist_small, tmp_path):
    data = dataset_of(fmnist_small)
    short = TrainSettings(iterations=20, batch_size=64, seed=0, log_every=10, ckpt_every=10)
    run(tmp_path, data, settings=short, jit_compile=False)
    log = []
    run(tmp_path, data, settings=short, log=log, jit_compile=False)  # same params: nothing left to train
    assert "resuming from iteration 20 of 20" in "".join(log)
    log = []
    run(tmp_path, data, settings=short, log=log, jit_compile=False, lr=2e-4)  # another lr: a new run
    text = "".join(log)
    assert "note: ignoring checkpoints" in text and "(ckpt-000000020)" in text   # a finished run keeps its end
    assert "resuming" not in text
    assert re.search(r"train_gan 10/20 ", text)
    manifests = [json.loads((p / "manifest.json").read_text()) for p in (tmp_path / "ckpt").iterdir()]
    assert len({m["fingerprint"] for m in manifests}) == 1 and len(manifests) == 1


def test_nan_in_the_data_stops_training(fmnist_small, tmp_path):
    x = fmnist_small["train"][0].copy()
    x[1234, 14, 14, 0] = np.nan
    settings = TrainSettings(iterations=300, batch_size=128, seed=0, log_every=10, ckpt_every=10)
    with pytest.raises(GenlabError, match=r"training diverged at iteration (\d+): d_loss is nan.*lower gan.lr") as e:
        run(tmp_path, dataset_of(fmnist_small, x), settings=settings, jit_compile=False)
    bad = int(re.search(r"iteration (\d+)", str(e.value)).group(1))
    assert 1 <= bad < 300
    assert not (tmp_path / "model").exists()
    steps = [json.loads((p / "manifest.json").read_text())["step"] for p in (tmp_path / "ckpt").glob("ckpt-*")]
    assert all(s < bad for s in steps)
    for f in (tmp_path / "live").rglob("*"):
        if f.suffix in (".tsv", ".json"):
            assert not re.search(r"nan|inf", f.read_text(), re.I), f


def test_conditional_dcgan_generates_the_asked_class(fmnist_small, tmp_path):
    settings = TrainSettings(iterations=10, batch_size=32, seed=0, log_every=5, ckpt_every=10)
    model = run(tmp_path, dataset_of(fmnist_small), settings=settings, arch="dcgan", conditional=True, filters=8)
    loaded = load_model(tmp_path / "model")
    assert loaded.config["arch"] == "dcgan" and loaded.conditional
    trousers = loaded.generate(6, seed=1, labels=[1] * 6)
    np.testing.assert_array_equal(trousers, model.generate(6, seed=1, labels=1))
    assert trousers.shape == (6, 28, 28, 1)
    assert not np.array_equal(trousers, loaded.generate(6, seed=1, labels=[9] * 6))
    images, labels = loaded.generate(40, seed=2, return_labels=True)
    assert labels.shape == (40,) and set(labels) <= set(range(10)) and len(set(labels)) > 3
    with pytest.raises(GenlabError, match="class ids in 0..9"):
        loaded.generate(2, seed=1, labels=[3, 10])
    # decode: given codes and labels -> what generate gives for them, in [0, 1] (figures use it)
    z = np.random.default_rng(1).standard_normal((6, loaded.latent_dim)).astype(np.float32)
    np.testing.assert_allclose(loaded.decode(z, labels=[1] * 6), (trousers + 1) / 2, atol=1e-6)
    with pytest.raises(GenlabError, match="conditional: give a class id"):
        loaded.decode(z)


def test_unconditional_gan_refuses_labels(reference):
    with pytest.raises(GenlabError, match="unconditional"):
        reference["model"].generate(2, seed=0, labels=[1, 2])
    with pytest.raises(GenlabError, match="unconditional"):
        reference["model"].decode(np.zeros((2, 100), np.float32), labels=[1, 2])
    x01 = reference["model"].decode(np.zeros((3, 100), np.float32))
    assert x01.shape == (3, 28, 28, 1) and x01.dtype == np.float32 and 0 <= x01.min() <= x01.max() <= 1


def test_mlp_networks_are_the_recipes():
    from genlab.models.gan import GAN, gan_config
    cfg = gan_config(RECIPE, shape=[28, 28, 1], n_classes=10, value_range=[-1.0, 1.0])
    model = GAN(cfg)

    def layers(net):
        out = []
        for layer in net.layers:
            kind = type(layer).__name__
            if kind == "Dense":
                out.append(("Dense", layer.units, layer.activation.__name__))
            elif kind == "LeakyReLU":
                out.append(("LeakyReLU", round(float(layer.negative_slope), 4)))
            elif kind == "BatchNormalization":
                out.append(("BatchNormalization",))
        return out

    assert layers(model.generator) == [("Dense", 128, "linear"), ("LeakyReLU", 0.01), ("BatchNormalization",),
                                       ("Dense", 784, "tanh")]
    assert layers(model.discriminator) == [("Dense", 128, "linear"), ("LeakyReLU", 0.01), ("Dense", 1, "linear")]
    assert model.generator.count_params() == 100 * 128 + 128 + 4 * 128 + 128 * 784 + 784
    assert model.discriminator.count_params() == 784 * 128 + 128 + 128 + 1


@pytest.mark.parametrize("arch", ["mlp", "dcgan"])
@pytest.mark.parametrize("conditional", [False, True])
def test_every_gan_variant_builds_with_the_right_shapes(arch, conditional):
    from genlab.models.gan import GAN, gan_config
    cfg = gan_config(RECIPE.replace(arch=arch, latent_dim=12, conditional=conditional, hidden=16, filters=4),
                     shape=[28, 28, 1], n_classes=10, value_range=[0.0, 1.0])
    model = GAN(cfg)
    labels = np.arange(5) if conditional else None
    images = model.generate(5, seed=0, labels=labels)
    assert images.shape == (5, 28, 28, 1) and images.min() >= 0.0 and images.max() <= 1.0  # the data range
    x = (images * 2 - 1).astype(np.float32)
    logits = model.discriminator(model.d_inputs(x, labels.astype(np.int32)) if conditional else x)
    assert tuple(logits.shape) == (5, 1)


EMA_SETTINGS = TrainSettings(iterations=60, batch_size=32, seed=1, log_every=20, ckpt_every=20)


@pytest.mark.slow   # killed and resumed trainings compared with an uninterrupted one
def test_ema_generator_is_saved_and_a_killed_run_resumes_bit_identical(fmnist_small, tmp_path):
    """gan.ema: the saved generator is the weight average (not the last raw weights, which a run
    with ema 0 and the same seed ends with), and a run killed at 40 (before its checkpoint) resumes to
    the same files."""
    data = dataset_of(fmnist_small)
    kw = dict(settings=EMA_SETTINGS, jit_compile=False, ema=0.9, loss="hinge", d_lr=4e-4)
    ema_model = run(tmp_path / "a", data, **kw)
    raw_model = run(tmp_path / "b", data, **dict(kw, ema=0.0))
    g_ema = [v.numpy() for v in ema_model.generator.variables]
    g_raw = [v.numpy() for v in raw_model.generator.variables]
    assert all(np.isfinite(w).all() for w in g_ema)
    assert any(not np.allclose(a, b) for a, b in zip(g_ema, g_raw))  # average != raw weights
    # the discriminators saw the same training (EMA does not feed back into it)
    for a, b in zip(ema_model.discriminator.variables, raw_model.discriminator.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    saved = load_model(tmp_path / "a" / "model")
    for a, b in zip(saved.generator.variables, g_ema):
        np.testing.assert_array_equal(a.numpy(), b)

    def kill_at_40(step, values):
        if step == 40:
            raise Killed()

    with pytest.raises(Killed):
        run(tmp_path / "c", data, on_log=kill_at_40, **kw)
    log = []
    resumed = run(tmp_path / "c", data, log=log, **kw)
    assert "resuming from iteration 20 of 60" in "".join(log)
    for a, b in zip(weights(resumed), weights(ema_model)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.slow   # long trainings that must learn
@pytest.mark.parametrize("options", [{"loss": "hinge"}, {"loss": "hinge", "ema": 0.99, "d_lr": 2e-3}])
def test_hinge_loss_ema_and_two_learning_rates_learn(options, fmnist_small, tmp_path):
    """The options change the training (other weights than the recipe's loss) and still learn: the
    samples move toward the data as much as the recipe's do."""
    from genlab.models.gan import GAN
    real = fmnist_small["test"][0]
    data = dataset_of(fmnist_small)
    model = run(tmp_path / "opt", data, **options)
    mean0, hist0 = distances(GAN(model.config), real)
    mean1, hist1 = distances(model, real)
    assert mean1 < 0.5 * mean0, (options, mean0, mean1)
    assert hist1 < 0.8 * hist0, (options, hist0, hist1)


@pytest.mark.slow   # several trainings
def test_options_change_the_training(fmnist_small, tmp_path):
    settings = TrainSettings(iterations=20, batch_size=32, seed=1, log_every=10, ckpt_every=20)
    data = dataset_of(fmnist_small)
    base = weights(run(tmp_path / "a", data, settings=settings, jit_compile=False))
    for i, change in enumerate([{"loss": "hinge"}, {"d_lr": 3e-3}]):
        other = weights(run(tmp_path / f"b{i}", data, settings=settings, jit_compile=False, **change))
        assert all(np.isfinite(w).all() for w in other)
        assert any(not np.array_equal(a, b) for a, b in zip(base, other)), change


def test_one_generator_pass_per_iteration_trains_both_networks(fmnist_small):
    """gan_step runs the generator once: the discriminator's step and the generator's step use the same
    fakes (the generator's gradient goes through the updated discriminator), and every weight matrix of both
    networks moves."""
    import keras
    import tensorflow as tf

    from genlab.models.gan import GAN, gan_config, gan_step
    model = GAN(gan_config(RECIPE.replace(arch="dcgan", conditional=True, filters=4), shape=[28, 28, 1],
                           n_classes=10, value_range=[-1.0, 1.0]))
    calls = []

    class Counting:
        def __init__(self, net):
            self.net = net

        def __call__(self, *args, **kwargs):
            calls.append(1)
            return self.net(*args, **kwargs)

        def __getattr__(self, name):
            return getattr(self.net, name)

    model.generator = Counting(model.generator)
    opt_d, opt_g = keras.optimizers.Adam(1e-3), keras.optimizers.Adam(1e-3)
    x, y = fmnist_small["train"]
    rng = np.random.default_rng(0)
    before = [[v.numpy() for v in net.trainable_variables] for net in (model.generator, model.discriminator)]
    args = [x[:16], y[:16].astype(np.int32), rng.standard_normal((16, 100)).astype(np.float32),
            y[16:32].astype(np.int32)]
    out = gan_step(model, opt_d, opt_g, *map(tf.constant, args), loss="hinge")
    assert calls == [1]
    assert {k: bool(np.isfinite(v.numpy())) for k, v in out.items()} == dict.fromkeys(out, True)
    for net, old in zip((model.generator, model.discriminator), before):
        kernels = [(v, w) for v, w in zip(net.trainable_variables, old) if w.ndim >= 2]
        assert kernels and all(not np.array_equal(v.numpy(), w) for v, w in kernels), net.name
