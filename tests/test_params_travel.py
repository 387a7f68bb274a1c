"""Params travel as the checked objects (genlab.params.Gan, Vae, Train), not as exploded keyword lists
(issue 25 item 4): a new GAN param is a field of genlab.params.Gan, the model code that uses it,
params.yaml and dvc.yaml, and nothing in between; the run fingerprint of the same values is the one
the keyword-list code computed, so checkpoints and the run store stay valid."""

import ast
from dataclasses import dataclass
from dataclasses import fields as dataclass_fields

import numpy as np
import pytest

from conftest import ROOT
from genlab import identity, params
from genlab.errors import GenlabError
from genlab.params import Evaluator, Gan, Train, Vae, param
from genlab.training import gan as gan_training
from genlab.training import loop
from genlab.training import vae as vae_training

# params.yaml's train/gan/vae sections as of issue 25 (written out: the test is about the code path)
TRAIN = Train.of(epochs=9000, batch_size=128, seed=0, log_every=100, ckpt_every=500, snapshot_every=1000,
                 strategy="default", mixed_precision="none", xla="auto", data_in_memory=True)
GAN = Gan.of(arch="dcgan", conditional=True, latent_dim=100, hidden=128, filters=32, lr=0.0002, beta_1=0.5,
             beta_2=0.999, d_lr=0.0, loss="hinge", ema=0.999)
VAE = Vae.of(arch="conv", variant="vae", latent_dim=16, beta=1.0, hidden=512, filters=16, lr=0.001, prior="gmm",
             prior_components=20, temperature=1.0)
# computed before the change by the keyword-list code (train_gan(..., **gan.asdict())), with the code
# digest and the environment held fixed (they are not the params' part of the fingerprint); train_gan's
# pair was computed again when `gan.beta_2` joined the GAN's params (a new training param changes every
# GAN fingerprint by design)
BEFORE = {"train_gan": ("b6b7281c13bef040bdff825eeca33fa86e9d53c09a98d322ba9dcb7efecd24ac",
                        "9d8dfea93f5bda74bc6159b15a023deccd04054cd41bbed236076763de163a85"),
          "train_vae": ("5a7ebfcaa5fe1fbc405f752abdde359fb4d296d8ed8123d218e49bf88c7e7890",
                        "9379dead62a8fe3a357f8edc2c06d00d3286fc57e7d1a889ac3302e0e4b16b3a")}


def tiny_dataset():
    x, y = np.zeros((4, 28, 28, 1), np.float32), np.arange(4, dtype=np.int32)
    return {"meta": {"shape": [28, 28, 1], "n_classes": 10, "range": [0.0, 1.0]}, "train": (x, y), "val": (x, y)}


def captured_train(monkeypatch, module):
    """Replace the shared training body in `module` by a recorder of its keyword arguments."""
    got = {}
    monkeypatch.setattr(module, "train", lambda make_task, **kw: got.update(kw, make_task=make_task))
    return got


def test_the_run_fingerprint_of_the_default_params_is_the_one_before(monkeypatch):
    monkeypatch.setattr(identity, "code_digest", lambda *modules: "CODE")
    monkeypatch.setattr(identity, "environment", lambda: "ENV")
    settings = loop.TrainSettings.from_params(TRAIN)
    for stage, module, kw in (("train_gan", gan_training, {"gan": GAN}), ("train_vae", vae_training, {"vae": VAE})):
        got = captured_train(monkeypatch, module)
        getattr(module, stage)(tiny_dataset(), "model", "ckpt", "live", settings=settings, **kw)
        fingerprint = loop.run_fingerprint(got["stage"], got["args"], got["settings"], tiny_dataset(), got["splits"],
                                           got["modules"])
        assert (identity.digest(got["args"]), fingerprint) == BEFORE[stage], stage


@dataclass(frozen=True)
class GanWithDropout(Gan):
    """gan.* with one param more, declared the way docs/pipeline.md says: one field."""
    dropout: float = param(float, lo=0.0, hi=0.9)


def test_a_new_gan_param_is_one_field(monkeypatch):
    """Add a field to Gan: read() checks it, train_gan covers it in the run's fingerprint, and it
    reaches the code that builds the network and the task, with no signature in between changed."""
    monkeypatch.setitem(params.SECTIONS, "gan", GanWithDropout)
    with pytest.raises(GenlabError, match=r"gan.dropout must be a number in \[0.0, 0.9\], got 2"):
        params.read({"gan": {**GAN.asdict(), "dropout": 2}}, "gan")
    gan = params.read({"gan": {**GAN.asdict(), "dropout": 0.25}}, "gan")
    seen = []
    real_config = gan_training.gan_config
    monkeypatch.setattr(gan_training, "gan_config", lambda g, **kw: seen.append(g.dropout) or real_config(g, **kw))
    got = captured_train(monkeypatch, gan_training)
    settings = loop.TrainSettings.from_params(TRAIN.replace(batch_size=2))
    gan_training.train_gan(tiny_dataset(), "model", "ckpt", "live", gan=gan.replace(arch="mlp"), settings=settings)
    assert got["args"]["dropout"] == 0.25           # another value: another run, its checkpoints not resumed
    task = got["make_task"](None)                    # what loop.train builds
    assert seen == [0.25] and task.gan.dropout == 0.25


def test_of_checks_like_read():
    assert Gan.of(**GAN.asdict()) == GAN and GAN.replace(lr=1) == Gan.of(**{**GAN.asdict(), "lr": 1.0})
    with pytest.raises(GenlabError, match=r"gan.lr must be a number > 0, got 0.0"):
        GAN.replace(lr=0)
    with pytest.raises(GenlabError, match=r"Gan.of needs exactly the gan.\* params, got unknown \['lr2'\], "
                                          r"missing \['ema'\]"):
        Gan.of(**{k: v for k, v in GAN.asdict().items() if k != "ema"}, lr2=1.0)


# today's most per section; build_evaluator(filters, feature_dim, dropout): the architecture record a saved
# evaluator is rebuilt from (genlab.evaluation.evaluator.load_evaluator)
MAX_MIRRORED = {"Gan": 2, "Vae": 2, "Evaluator": 3}


def test_no_function_takes_the_gan_or_vae_params_one_by_one():
    """No function in genlab/ or stages/ has more than MAX_MIRRORED parameters named like gan.*,
    vae.* or evaluator.* fields (train_gan had 10, gan_config 5, GanTask 5, train_evaluator 8): the
    checked object travels instead, so the exploded keyword lists cannot come back."""
    sections = {cls.__name__: {f.name for f in dataclass_fields(cls)} for cls in (Gan, Vae, Evaluator)}
    found = []
    for path in sorted([*(ROOT / "genlab").rglob("*.py"), *(ROOT / "stages").rglob("*.py")]):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                a = node.args
                names = {x.arg for x in a.posonlyargs + a.args + a.kwonlyargs}
                for section, keys in sections.items():
                    if len(names & keys) > MAX_MIRRORED[section]:
                        found.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}: {sorted(names & keys)} "
                                     f"(take a genlab.params.{section} instead)")
    assert not found, "\n".join(found)
