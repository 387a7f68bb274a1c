"""The datasets fetch knows: payload digests, sources, and the facts validate checks."""

import urllib.parse
from dataclasses import dataclass, field

from genlab.errors import GenlabError
from genlab.params import DATASETS


@dataclass(frozen=True)
class Dataset:
    """A built-in dataset: payload file names with their sha256, and where to find them."""
    format: str                       # "idx" (four IDX files) or "npz" (one keras-style .npz)
    files: dict                       # payload name -> sha256 of the payload (decompressed) bytes
    urls: tuple                       # base URLs; file URL = base + name (+ ".gz" when gzipped)
    gzipped: bool                     # whether the canonical files are .gz
    folder: str                       # sub-folder in a mirror
    local_dirs: tuple = field(default=())
    counts: dict = field(default=None)         # expected images per split, None = any
    image_shape: tuple = field(default=None)   # expected (H, W) or (H, W, C), None = any
    class_names: tuple = field(default=None)   # None = inferred labels 0..K-1
    remote: dict = field(default=None)         # payload name -> name at the source, if different


BUILTIN = {
    "fashion_mnist": Dataset(
        format="idx",
        files={
            "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
            "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
            "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
            "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        },
        urls=("https://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
              "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"),
        gzipped=True,
        folder="fashion-mnist",
        local_dirs=("/usr/share/datasets/fashion-mnist",),
        counts={"train": 60000, "test": 10000},
        image_shape=(28, 28),
        class_names=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                     "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
    ),
    "mnist": Dataset(
        format="npz",
        files={"mnist.npz": "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"},
        urls=("https://storage.googleapis.com/tensorflow/tf-keras-datasets/",),
        gzipped=False,
        folder="mnist",
        counts={"train": 60000, "test": 10000},
        image_shape=(28, 28),
        class_names=tuple(str(d) for d in range(10)),
    ),
}
NAMES = DATASETS   # BUILTIN, then "url" and "image_folder" (see genlab.data.image_folder)
assert set(BUILTIN) <= set(NAMES), "a built-in dataset missing from genlab.params.DATASETS"
URL_FILE = "dataset.npz"   # what a user-URL dataset is saved as


def user_dataset(url, sha256):
    """A Dataset for a user's .npz (or .npz.gz) at `url` with keys x_train, y_train, x_test, y_test.

    sha256 is the digest of the .npz payload (after decompression when the URL ends in .gz).
    """
    if not isinstance(url, str) or not url:
        raise GenlabError("data.url is empty: with data.name=url give the .npz URL in data.url")
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https", "file") or not parts.path.rstrip("/"):
        raise GenlabError(f"data.url must be an http(s):// or file:// URL of an .npz file, got {url!r}")
    if not (isinstance(sha256, str) and len(sha256) == 64 and all(c in "0123456789abcdef" for c in sha256.lower())):
        raise GenlabError("data.sha256 must be the 64-hex-digit sha256 of the file at data.url "
                          "(compute it with `sha256sum FILE`); a URL without a digest is refused")
    base, name = url.rsplit("/", 1)
    gz = name.endswith(".gz")
    return Dataset(format="npz", files={URL_FILE: sha256.lower()}, urls=(base + "/",), gzipped=gz,
                   folder="url", remote={URL_FILE: name[:-3] if gz else name})


def get(name, url="", sha256=""):
    """The Dataset for params data.name (and data.url/sha256 when name is 'url')."""
    if name == "url":
        return user_dataset(url, sha256)
    if name == "image_folder":
        raise GenlabError("data.name image_folder is imported from data.path (genlab.data.image_folder), not fetched")
    if name not in BUILTIN:
        raise GenlabError(f"data.name must be one of {', '.join(NAMES)}, got {name!r}")
    return BUILTIN[name]
