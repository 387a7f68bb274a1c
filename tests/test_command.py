"""The `genlab` command on models trained at smoke size on real Fashion-MNIST (the 4,000-image slice):
output shapes, the asked class honoured by the evaluator, seed determinism, the export round trip in a
fresh interpreter with no genlab import, and one clear line for every bad input."""

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import ROOT, own_lines, tool_env
from genlab.command import execute, parser
from genlab.errors import GenlabError

pytestmark = pytest.mark.slow   # trains a GAN, a VAE and an evaluator (about a minute)

NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


@pytest.fixture(scope="module")
def trained(fmnist_small, tmp_path_factory):
    """data/processed (normalize's layout), a conditional DCGAN, an unconditional MLP GAN, a conv VAE
    and the evaluator, all trained on the real slice."""
    from genlab.evaluation.evaluator import train_evaluator
    from genlab.params import Evaluator, Gan, Vae
    from genlab.training.gan import train_gan
    from genlab.training.loop import TrainSettings
    from genlab.training.vae import train_vae

    root = tmp_path_factory.mktemp("command")
    data = root / "data" / "processed"
    data.mkdir(parents=True)
    x, y = fmnist_small["train"]
    xt, yt = fmnist_small["test"]
    for split, (a, b) in {"train": (x, y), "val": (xt[:500], yt[:500]), "test": (xt, yt)}.items():
        np.save(data / f"{split}_x.npy", a)
        np.save(data / f"{split}_y.npy", b)
    meta = {"dataset": "fashion_mnist", "shape": [28, 28, 1], "range": [-1.0, 1.0], "n_classes": 10,
            "class_names": NAMES, "counts": {"train": len(x), "val": 500, "test": len(xt)}}
    (data / "meta.json").write_text(json.dumps(meta))
    dataset = {"meta": meta, "train": (x, y), "val": (xt[:500], yt[:500])}
    quiet = type("Quiet", (), {"write": lambda self, s: None, "flush": lambda self: None})()
    gan = Gan.of(arch="dcgan", conditional=True, latent_dim=64, hidden=128, filters=16, lr=1e-3, beta_1=0.5,
                 beta_2=0.999, d_lr=0.0, loss="hinge", ema=0.0)
    train_gan(dataset, root / "models" / "gan", root / "ck" / "gan", root / "live" / "gan", out=quiet,
              settings=TrainSettings(iterations=600, batch_size=64, seed=0, log_every=300, ckpt_every=600), gan=gan)
    train_gan(dataset, root / "models" / "ugan", root / "ck" / "ugan", root / "live" / "ugan", out=quiet,
              settings=TrainSettings(iterations=5, batch_size=32, seed=0, log_every=5, ckpt_every=5),
              gan=gan.replace(arch="mlp", conditional=False))
    train_vae(dataset, root / "models" / "vae", root / "ck" / "vae", root / "live" / "vae", out=quiet,
              settings=TrainSettings(iterations=600, batch_size=64, seed=0, log_every=300, ckpt_every=600),
              vae=Vae.of(arch="conv", variant="vae", latent_dim=8, beta=1.0, hidden=128, filters=16, lr=1e-3,
                         prior="normal", prior_components=10, temperature=1.0))
    evaluator, _ = train_evaluator(x, y, xt[:500], yt[:500], Evaluator.of(
        filters=[8, 16], feature_dim=32, dropout=0.0, epochs=3, warmup_epochs=1, batch_size=64, lr=3e-3, seed=0),
        n_classes=10, out=io.StringIO())
    return {"root": root, "data": data, "meta": data / "meta.json", "evaluator": evaluator, "test": (xt, yt)}


def genlab(trained, *argv):
    """Run one command in-process; returns the summary line (a GenlabError propagates)."""
    args = list(argv) + ["--meta", str(trained["meta"])]
    if argv[0] in ("interpolate", "edit"):
        args += ["--data", str(trained["data"])]
    return execute(parser().parse_args(args))


def proba(trained, x01):
    """The evaluator's class probabilities (it reads images in the data range, [-1, 1] here)."""
    from genlab.evaluation.evaluator import features_and_proba
    return features_and_proba(trained["evaluator"], x01 * 2.0 - 1.0)[1]


def test_generate_writes_the_asked_class_and_is_seeded(trained, tmp_path):
    gan = str(trained["root"] / "models" / "gan")
    line = genlab(trained, "generate", gan, "-n", "40", "--class", "Trouser", "-o", str(tmp_path / "a.npz"))
    assert line == f"genlab generate: 40 images -> {tmp_path / 'a.npz'}"
    genlab(trained, "generate", gan, "-n", "40", "--class", "1", "-o", str(tmp_path / "b.npz"))
    genlab(trained, "generate", gan, "-n", "40", "--class", "trouser", "--seed", "1", "-o", str(tmp_path / "c.npz"))
    with np.load(tmp_path / "a.npz") as a, np.load(tmp_path / "b.npz") as b, np.load(tmp_path / "c.npz") as c:
        assert a["x"].shape == (40, 28, 28, 1) and a["x"].dtype == np.float32
        assert 0.0 <= a["x"].min() and a["x"].max() <= 1.0
        assert (a["labels"] == 1).all()
        np.testing.assert_array_equal(a["x"], b["x"])          # name or id, same seed: same images
        assert not np.array_equal(a["x"], c["x"])               # another seed: other images
    # The evaluator (trained on real images only) sees the asked classes: far above chance (0.1).
    hits = []
    for k in (1, 5, 7, 8):
        genlab(trained, "generate", gan, "-n", "50", "--class", NAMES[k], "-o", str(tmp_path / f"k{k}.npz"))
        with np.load(tmp_path / f"k{k}.npz") as z:
            hits.append(np.mean(proba(trained, z["x"]).argmax(axis=1) == k))
    assert np.mean(hits) > 0.5, hits


def test_generate_png_is_the_grid_of_the_images(trained, tmp_path):
    gan = str(trained["root"] / "models" / "gan")
    genlab(trained, "generate", gan, "-n", "6", "--ncol", "3", "--scale", "2", "-o", str(tmp_path / "g.png"))
    genlab(trained, "generate", gan, "-n", "6", "-o", str(tmp_path / "g.npz"))
    png = np.asarray(Image.open(tmp_path / "g.png"))
    assert png.shape == (2 * (2 * 29 - 1), 2 * (3 * 29 - 1))   # 2 rows x 3 columns of 28 px, 1 px gaps, x2
    with np.load(tmp_path / "g.npz") as z:
        first = (z["x"][0, :, :, 0] * 255 + 0.5).astype(np.uint8)
    np.testing.assert_array_equal(png[0:56:2, 0:56:2], first)


def test_vae_generate_and_interpolate_between_images(trained, tmp_path):
    from genlab.models.load import load_model
    vae_dir = trained["root"] / "models" / "vae"
    genlab(trained, "generate", str(vae_dir), "-n", "8", "-o", str(tmp_path / "v.npz"))
    with np.load(tmp_path / "v.npz") as z:
        assert z["x"].shape == (8, 28, 28, 1) and "labels" not in z
    xt, yt = trained["test"]
    a, b = [np.where(yt == k)[0][0] for k in (1, 8)]
    for name, i in (("a.png", a), ("b.png", b)):
        Image.fromarray(((xt[i, :, :, 0] + 1) * 127.5 + 0.5).astype(np.uint8)).save(tmp_path / name)
    genlab(trained, "interpolate", str(vae_dir), "--from", str(tmp_path / "a.png"), "--to", str(tmp_path / "b.png"),
           "--steps", "5", "-o", str(tmp_path / "s.npz"))
    vae = load_model(vae_dir)
    ends = vae.decode(vae.encode(np.round((xt[[a, b]] + 1) * 127.5) / 255.0)[0])
    with np.load(tmp_path / "s.npz") as z:
        assert z["x"].shape == (5, 28, 28, 1)
        np.testing.assert_allclose(z["x"][[0, -1]], ends, atol=1e-5)
    genlab(trained, "interpolate", str(vae_dir), "--from", "Trouser", "--to", "Bag", "-o", str(tmp_path / "c.npz"))
    with np.load(tmp_path / "c.npz") as z:
        assert z["x"].shape == (9, 28, 28, 1)


def test_gan_interpolate_and_edit_end_on_the_generators_images(trained, tmp_path):
    """Between classes the strip starts and ends on GAN.generate's images of those classes (the soft
    class path equals the generator on one-hot rows); edit ends on the asked class."""
    from genlab.models.load import load_model
    gan_dir = trained["root"] / "models" / "gan"
    gan = load_model(gan_dir)
    genlab(trained, "interpolate", str(gan_dir), "--from", "Sneaker", "--to", "Ankle boot", "--seed", "4",
           "-o", str(tmp_path / "i.npz"))
    with np.load(tmp_path / "i.npz") as z:
        strip = z["x"]
    to01 = lambda x: (x + 1) / 2   # noqa: E731
    np.testing.assert_allclose(strip[0], to01(gan.generate(1, 4, labels=7))[0], atol=1e-5)
    np.testing.assert_allclose(strip[-1], to01(gan.generate(1, 4, labels=9))[0], atol=1e-5)
    assert not np.allclose(strip[4], strip[0], atol=1e-3)
    genlab(trained, "edit", str(gan_dir), "--seed", "5", "--to", "Bag", "-o", str(tmp_path / "e.npz"))
    image, label = gan.generate(1, 5, return_labels=True)
    with np.load(tmp_path / "e.npz") as z:
        np.testing.assert_allclose(z["x"][0], to01(image)[0], atol=1e-5)          # the seed's own image
        np.testing.assert_allclose(z["x"][-1], to01(gan.generate(1, 5, labels=8))[0], atol=1e-5)
    genlab(trained, "interpolate", str(gan_dir), "--from", "seed:1", "--to", "seed:2", "--class", "Bag",
           "-o", str(tmp_path / "s.npz"))
    with np.load(tmp_path / "s.npz") as z:
        np.testing.assert_allclose(z["x"][-1], to01(gan.generate(1, 2, labels=8))[0], atol=1e-5)


def test_vae_edit_moves_an_image_toward_the_class(trained, tmp_path):
    vae_dir = str(trained["root"] / "models" / "vae")
    xt, yt = trained["test"]
    trousers = np.where(yt == 1)[0][:10]
    gain = []
    for i in trousers:
        Image.fromarray(((xt[i, :, :, 0] + 1) * 127.5 + 0.5).astype(np.uint8)).save(tmp_path / "t.png")
        line = genlab(trained, "edit", vae_dir, "--image", str(tmp_path / "t.png"), "--to", "Bag", "--steps", "3",
                      "-o", str(tmp_path / "e.npz"))
        with np.load(tmp_path / "e.npz") as z:
            p = proba(trained, z["x"])[:, 8]
        gain.append(p[-1] - p[0])
    assert "Trouser -> Bag" in line                       # its class found as the nearest class mean
    assert np.mean(gain) > 0.3, gain                      # the edit makes the evaluator see a bag



def test_the_pipelines_attribute_figure_and_genlab_edit_move_along_one_vector(trained, tmp_path):
    """The sample stage's attribute.png and `genlab edit` take the same vector (training-split class
    means, genlab.outputs.sampling.vae_class_codes): the command's last frame is the figure's +1 v row."""
    from genlab.models.load import load_model
    from genlab.outputs.sampling import vae_class_codes, vae_figures
    vae = load_model(trained["root"] / "models" / "vae")
    x, y = np.load(trained["data"] / "train_x.npy"), np.load(trained["data"] / "train_y.npy")
    xt, yt = trained["test"]
    codes = vae_class_codes(vae, (x + 1.0) / 2.0, y, 10)
    stats = vae_figures(vae, tmp_path, x_test01=(xt + 1.0) / 2.0, y_test=yt, class_codes=codes, seed=0, grid=2,
                        steps=4, rows=1, edit=(1, 8), classify=lambda im: proba(trained, im).argmax(axis=1),
                        class_names=NAMES)
    assert stats["attribute_edit"]["to_share_after"] > stats["attribute_edit"]["to_share_before"]
    first_trouser = int(np.flatnonzero(yt == 1)[0])     # the figure's first edited row
    Image.fromarray(((xt[first_trouser, :, :, 0] + 1) * 127.5 + 0.5).astype(np.uint8)).save(tmp_path / "t.png")
    genlab(trained, "edit", str(trained["root"] / "models" / "vae"), "--image", str(tmp_path / "t.png"),
           "--from", "Trouser", "--to", "Bag", "--steps", "2", "-o", str(tmp_path / "e.npz"))
    z = vae.encode(np.asarray(Image.open(tmp_path / "t.png"), np.float32)[None, :, :, None] / 255.0)[0][0]
    with np.load(tmp_path / "e.npz") as e:
        np.testing.assert_allclose(e["x"][-1], vae.decode((z + codes[8] - codes[1])[None])[0], atol=1e-5)


EXPORT_CHECK = r"""
import json, sys
import numpy as np, keras, tensorflow as tf
out, kind = sys.argv[1], sys.argv[2]
info = json.load(open(f"{out}/export.json"))
z = np.random.default_rng(3).standard_normal((5, info["latent_dim"])).astype(np.float32)
sm = tf.saved_model.load(f"{out}/saved_model")
if kind == "gan":
    label = np.array([0, 1, 7, 8, 9], np.int32)
    k = keras.models.load_model(f"{out}/generator.keras")([z, label]).numpy()
    s = sm.signatures["serving_default"](z=tf.constant(z), label=tf.constant(label))["images"].numpy()
else:
    k = keras.models.load_model(f"{out}/decoder.keras")(z).numpy()
    s = sm.signatures["decode"](z=tf.constant(z))["images"].numpy()
    x = np.load(sys.argv[3])
    codes = sm.signatures["encode"](x01=tf.constant(x))["z_mean"].numpy()
    np.save(f"{out}/codes.npy", codes)
assert "genlab" not in sys.modules, "the export must load without genlab"
np.savez(f"{out}/check.npz", keras=k, saved=s, z=z)
"""


def test_export_round_trip_in_a_fresh_interpreter(trained, tmp_path):
    from genlab.models.load import load_model
    for kind in ("gan", "vae"):
        out = tmp_path / f"export-{kind}"
        line = genlab(trained, "export", str(trained["root"] / "models" / kind), str(out))
        assert line.startswith(f"genlab export: {kind} exported -> {out}")
        info = json.loads((out / "export.json").read_text())
        assert info["family"] == kind and info["class_names"] == NAMES
        x = (trained["test"][0][:4] + 1) / 2
        np.save(tmp_path / "x.npy", x)
        r = subprocess.run([sys.executable, "-I", "-c", EXPORT_CHECK, str(out), kind, str(tmp_path / "x.npy")],
                           cwd=tmp_path, capture_output=True, text=True, env=tool_env())
        assert r.returncode == 0, r.stderr[-2000:]
        model = load_model(trained["root"] / "models" / kind)
        with np.load(out / "check.npz") as c:
            if kind == "gan":
                ours = (model.generate(5, 3, labels=[0, 1, 7, 8, 9]) + 1) / 2   # the same z: default_rng(3)
            else:
                ours = model.decode(c["z"])
                np.testing.assert_allclose(np.load(out / "codes.npy"), model.encode(x)[0], atol=1e-5)
            np.testing.assert_allclose(c["keras"], ours, atol=1e-5)
            np.testing.assert_allclose(c["saved"], ours, atol=1e-5)


def test_an_exported_vae_says_how_genlab_draws_its_codes(trained, tmp_path):
    """A VAE with the code mixture (vae.prior gmm, the default) exports the mixture and the recipe
    genlab's generate() follows, so a user without genlab draws the same images; not N(0, I)."""
    from genlab.models.export import export
    from genlab.models.load import load_model
    vae = load_model(trained["root"] / "models" / "vae")
    x = np.load(trained["data"] / "train_x.npy")[:2000]
    vae.fit_code_gmm(vae.encode((x + 1.0) / 2.0)[0], 5, seed=0)
    info = export(vae, tmp_path / "e")
    assert "N(0, I)" not in info["sampling"] and "default_rng(seed)" in info["sampling"]
    g = info["code_gmm"]
    rng, w = np.random.default_rng(3), np.asarray(g["weights"])
    k = rng.choice(len(w), 8, p=w / w.sum())
    eps = rng.standard_normal((8, info["latent_dim"]))
    z = (np.asarray(g["means"])[k] + np.einsum("nij,nj->ni", np.asarray(g["scale_trils"])[k], eps)).astype(np.float32)
    np.testing.assert_allclose(vae.decode(z) * 2.0 - 1.0, vae.generate(8, 3), atol=1e-5)

@pytest.mark.parametrize("argv,message", [
    (["generate", "{root}/data", "-o", "{tmp}/x.png"], "/data/config.json not found: train the model first"),
    (["generate", "{root}/nowhere", "-o", "{tmp}/x.png"], "nowhere is not a folder: give a model folder"),
    (["generate", "{root}/models/gan", "--class", "Spaceship", "-o", "{tmp}/x.png"],
     "unknown class 'Spaceship': this model knows 0 'T-shirt/top', 1 'Trouser'"),
    (["generate", "{root}/models/gan", "--class", "10", "-o", "{tmp}/x.png"], "unknown class '10'"),
    (["generate", "{root}/models/ugan", "--class", "Bag", "-o", "{tmp}/x.png"],
     "this GAN is unconditional (gan.conditional: false): it cannot generate a chosen class"),
    (["generate", "{root}/models/vae", "--class", "Bag", "-o", "{tmp}/x.png"], "a VAE is unconditional"),
    (["edit", "{root}/models/vae", "--image", "{tmp}/big.png", "--to", "Bag", "-o", "{tmp}/x.png"],
     "big.png is 32x32 pixels: this model takes 28x28 images with 1 channel; resize it first"),
    (["edit", "{root}/models/vae", "--image", "{tmp}/rgb.png", "--to", "Bag", "-o", "{tmp}/x.png"],
     "rgb.png is a RGB image: this model takes greyscale images (1 channel); convert it first"),
    (["edit", "{root}/models/vae", "--image", "{tmp}/text.png", "--to", "Bag", "-o", "{tmp}/x.png"],
     "text.png is not a readable image"),
    (["edit", "{root}/models/gan", "--image", "{tmp}/rgb.png", "--to", "Bag", "-o", "{tmp}/x.png"],
     "a GAN has no encoder, so it cannot edit a given image"),
    (["edit", "{root}/models/ugan", "--to", "Bag", "-o", "{tmp}/x.png"], "this GAN is unconditional"),
    (["interpolate", "{root}/models/gan", "--from", "{tmp}/rgb.png", "--to", "Bag", "-o", "{tmp}/x.png"],
     "rgb.png: a GAN has no encoder, so its ends cannot be images: give a class or seed:<integer>"),
    (["interpolate", "{root}/models/ugan", "--from", "Bag", "--to", "seed:2", "-o", "{tmp}/x.png"],
     "--from Bag: this GAN is unconditional, so its ends are codes: give seed:<integer>"),
    (["generate", "{root}/models/gan", "-o", "{tmp}/text.png/x.png"],
     "{tmp}/text.png/x.png: the folder {tmp}/text.png cannot be created (File exists): give an output path"),
    (["generate", "{root}/models/gan", "-o", "{tmp}/x.jpg"], "give a .png (a grid) or .npz (the arrays) file name"),
    (["generate", "{root}/models/gan", "-n", "0", "-o", "{tmp}/x.png"], "--n must be a positive integer, got 0"),
    (["export", "{root}/models/gan", "{tmp}"], "already exists: give a new folder, or remove it first"),
])
def test_bad_input_is_one_clear_error_and_writes_nothing(trained, tmp_path, argv, message):
    Image.new("L", (32, 32)).save(tmp_path / "big.png")
    Image.new("RGB", (28, 28)).save(tmp_path / "rgb.png")
    (tmp_path / "text.png").write_text("not an image")
    before = sorted(p.name for p in tmp_path.iterdir())
    argv = [a.format(root=trained["root"], tmp=tmp_path) for a in argv]
    with pytest.raises(GenlabError) as e:
        genlab(trained, *argv)
    assert message.format(tmp=tmp_path) in str(e.value)
    assert "\n" not in str(e.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == before      # nothing written, nothing left half-written


def test_console_command_prints_one_line(trained, tmp_path):
    """The command as users run it: the summary line on stdout, or one `error:` line and exit 1."""
    cmd = [sys.executable, "-m", "genlab.command"]
    ok = subprocess.run(cmd + ["generate", str(trained["root"] / "models" / "gan"), "-n", "4", "--class", "Bag",
                               "--meta", str(trained["meta"]), "-o", str(tmp_path / "b.png")],
                        cwd=tmp_path, capture_output=True, text=True, env=tool_env(PYTHONPATH=str(ROOT)))
    assert ok.returncode == 0 and ok.stdout == f"genlab generate: 4 images -> {tmp_path / 'b.png'}\n", ok.stderr
    assert own_lines(ok.stderr) == []
    bad = subprocess.run(cmd + ["generate", str(trained["root"] / "models" / "gan"), "--class", "Spaceship",
                                "--meta", str(trained["meta"]), "-o", str(tmp_path / "x.png")],
                         cwd=tmp_path, capture_output=True, text=True, env=tool_env(PYTHONPATH=str(ROOT)))
    assert bad.returncode == 1 and len(own_lines(bad.stderr)) == 1
    assert own_lines(bad.stderr)[0].startswith("error: unknown class 'Spaceship'")
    assert not (tmp_path / "x.png").exists()


def test_the_console_command_is_installed():
    """bootstrap.sh installs the package, and with it the `genlab` command, into the venv."""
    exe = Path(sys.executable).parent / "genlab"
    r = subprocess.run([str(exe), "generate", "--help"], capture_output=True, text=True, env=tool_env())
    assert r.returncode == 0 and "--class" in r.stdout and "a class name or id" in r.stdout, r.stderr
