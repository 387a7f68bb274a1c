"""Image-folder datasets: real Fashion-MNIST images written as PNG/JPEG class folders are imported
into the raw layout; broken folders and files are refused with one line naming the problem."""

import numpy as np
import pytest
from PIL import Image

from genlab.data.image_folder import import_folder, load_folder, split_indices
from genlab.data.readers import load_raw, load_raw_info
from genlab.errors import GenlabError

CLASSES = ("T-shirt", "Trouser", "Bag")        # Fashion-MNIST labels 0, 1, 8


def write_folder(root, raw, per_class=12, labels=(0, 1, 8), names=CLASSES):
    """Real images as <root>/<name>/<i>.png|.jpg: every third one RGB, every fourth one JPEG,
    every fifth one upscaled to 40x36 (mixed sizes). Returns the images written per class."""
    written = {}
    for label, name in zip(labels, names):
        (root / name).mkdir(parents=True)
        imgs = raw["x_train"][raw["y_train"] == label][:per_class]
        for i, x in enumerate(imgs):
            img = Image.fromarray(x, "L")
            if i % 3 == 0:
                img = img.convert("RGB")
            if i % 5 == 0:
                img = img.resize((40, 36))
            img.save(root / name / (f"{i:03d}.jpg" if i % 4 == 0 else f"{i:03d}.png"))
        written[name] = imgs
    (root / "README.txt").write_text("top-level files are skipped")
    (root / CLASSES[0] / ".DS_Store").write_bytes(b"\0\1")
    (root / CLASSES[0] / "notes.txt").write_text("skipped")
    return written


@pytest.fixture()
def folder(tmp_path, fmnist_raw):
    written = write_folder(tmp_path / "imgs", fmnist_raw)
    return tmp_path / "imgs", written


@pytest.mark.parametrize("channels", [1, 3])
def test_import_real_images_into_raw_layout(folder, tmp_path, channels):
    root, written = folder
    info = import_folder(root, tmp_path / "raw", image_size=32, channels=channels, test_fraction=0.25, seed=0,
                         log=lambda m: None)
    arrays = load_raw(tmp_path / "raw")
    assert load_raw_info(tmp_path / "raw") == info
    assert info["class_names"] == sorted(CLASSES) and info["image_shape"] == [32, 32, channels]
    assert info["source"]["skipped_files"] == 1                       # notes.txt (hidden files and README ignored)
    assert arrays["x_train"].shape == (27, 32, 32, channels) and arrays["x_test"].shape == (9, 32, 32, channels)
    assert arrays["x_train"].dtype == np.uint8
    for split in ("train", "test"):                                   # stratified: 3 test images per class
        assert np.bincount(arrays[f"y_{split}"], minlength=3).tolist() == ([9, 9, 9] if split == "train" else [3] * 3)
    # labels follow the sorted class names; a grey PNG keeps its content (28 -> 32 resize)
    bag = sorted(CLASSES).index("Bag")
    x_all = np.concatenate([arrays["x_train"], arrays["x_test"]])
    y_all = np.concatenate([arrays["y_train"], arrays["y_test"]])
    ref = np.asarray(Image.fromarray(written["Bag"][1]).resize((32, 32), Image.Resampling.BICUBIC), np.float32)
    dists = [np.abs(x[..., 0].astype(np.float32) - ref).mean() for x in x_all[y_all == bag]]
    assert min(dists) < 1.0
    if channels == 3:                                                 # grey sources give R = G = B
        assert np.array_equal(x_all[..., 0], x_all[..., 2])


def test_same_folder_and_seed_give_identical_bytes_and_the_seed_moves_the_split(folder, tmp_path):
    root, _ = folder
    kw = dict(image_size=32, channels=3, test_fraction=0.25, log=lambda m: None)
    import_folder(root, tmp_path / "a", seed=0, **kw)
    import_folder(root, tmp_path / "b", seed=0, **kw)
    for f in ("x_train.npy", "y_train.npy", "x_test.npy", "y_test.npy", "dataset.json"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f
    labels = np.repeat(np.arange(3), 12)
    assert not np.array_equal(split_indices(labels, 0.25, 0)[1], split_indices(labels, 0.25, 1)[1])


def test_corrupt_image_is_named(folder, tmp_path):
    root, _ = folder
    bad = root / "Trouser" / "005.png"
    bad.write_bytes(bad.read_bytes()[:60])                             # truncated PNG
    with pytest.raises(GenlabError, match=r"Trouser/005\.png cannot be read as an image .*delete or replace"):
        import_folder(root, tmp_path / "raw", image_size=32, channels=1, test_fraction=0.25, seed=0)
    assert not (tmp_path / "raw").exists()
    bad.write_bytes(b"not an image at all")
    with pytest.raises(GenlabError, match=r"005\.png cannot be read as an image \(UnidentifiedImageError"):
        load_folder(root, image_size=32, channels=1, test_fraction=0.25, seed=0)


@pytest.mark.parametrize("setup, msg", [
    (lambda r: (r / "Empty").mkdir(), r"class folder .*Empty holds 0 PNG/JPEG image\(s\), at least 2"),
    (lambda r: [p.unlink() for p in list((r / "Bag").iterdir())[1:]], r"Bag holds 1 PNG/JPEG image"),
    (lambda r: [__import__("shutil").rmtree(r / n) for n in ("Bag", "Trouser")],
     r"single class subfolder \(T-shirt\).*at least 2 classes"),
])
def test_bad_folders_are_refused(folder, setup, msg):
    root, _ = folder
    setup(root)
    with pytest.raises(GenlabError, match=msg):
        load_folder(root, image_size=32, channels=3, test_fraction=0.25, seed=0)


def test_missing_folder_and_bad_settings(tmp_path):
    with pytest.raises(GenlabError, match=r"data.path is empty"):
        load_folder("", image_size=32, channels=3, test_fraction=0.2, seed=0)
    with pytest.raises(GenlabError, match=r"data.path .*nope is not a folder"):
        load_folder(tmp_path / "nope", image_size=32, channels=3, test_fraction=0.2, seed=0)
    (tmp_path / "flat").mkdir()
    Image.new("L", (8, 8)).save(tmp_path / "flat" / "a.png")
    with pytest.raises(GenlabError, match=r"flat has no class subfolders"):
        load_folder(tmp_path / "flat", image_size=32, channels=3, test_fraction=0.2, seed=0)
    with pytest.raises(GenlabError, match=r"data.image_size must be a multiple of 4 .*got 30"):
        load_folder(tmp_path / "flat", image_size=30, channels=3, test_fraction=0.2, seed=0)
    with pytest.raises(GenlabError, match=r"data.channels must be 1 \(grey\) or 3 \(RGB\), got 4"):
        load_folder(tmp_path / "flat", image_size=32, channels=4, test_fraction=0.2, seed=0)


@pytest.mark.parametrize("shape", [[32, 32, 3], [32, 32, 1]])
def test_every_model_takes_its_shape_from_the_data(shape):
    """GAN mlp/dcgan (conditional, 4 classes) and VAE mlp/conv at the image folder's H x W x C."""
    from genlab.models.gan import GAN, gan_config
    from genlab.models.vae import VAE, vae_config
    from genlab.params import Gan, Vae

    GAN_PARAMS = Gan.of(arch="dcgan", conditional=True, latent_dim=8, hidden=16, filters=4, lr=2e-4, beta_1=0.5,
                        beta_2=0.999, d_lr=0.0, loss="hinge", ema=0.0)
    VAE_PARAMS = Vae.of(arch="conv", variant="vae", latent_dim=4, beta=1.0, hidden=16, filters=4, lr=1e-3,
                        prior="normal", prior_components=10, temperature=1.0)
    for arch in ("mlp", "dcgan"):
        gan = GAN(gan_config(GAN_PARAMS.replace(arch=arch), shape=shape, n_classes=4, value_range=[-1.0, 1.0]))
        x = gan.generate(8, seed=0, labels=np.arange(8) % 4)
        assert x.shape == (8, *shape) and tuple(gan.discriminator([x, np.arange(8) % 4]).shape) == (8, 1)
    for arch in ("mlp", "conv"):
        vae = VAE(vae_config(VAE_PARAMS.replace(arch=arch), shape=shape, value_range=[-1.0, 1.0]))
        z_mean, _ = vae.encode(np.full((3, *shape), 0.5, np.float32))
        assert z_mean.shape == (3, 4) and vae.decode(z_mean).shape == (3, *shape)
    with pytest.raises(GenlabError, match=r"dcgan needs image sides divisible by 4"):
        gan_config(GAN_PARAMS.replace(conditional=False), shape=[30, 30, 3], n_classes=4, value_range=[-1.0, 1.0])


def test_corrupt_raw_npy_is_named(folder, tmp_path):
    root, _ = folder
    import_folder(root, tmp_path / "raw", image_size=8, channels=1, test_fraction=0.25, seed=0, log=lambda m: None)
    (tmp_path / "raw" / "x_test.npy").write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(GenlabError, match=r"x_test\.npy is not a readable \.npy file .*dvc repro -f fetch"):
        load_raw(tmp_path / "raw")
