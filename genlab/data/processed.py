"""Load the normalize stage's output (data/processed/): arrays plus meta.json.

Layout written by normalize:
  {split}_x.npy  float32 (N, H, W, C) scaled to meta["range"] (default [-1, 1])
  {split}_y.npy  int32   (N,) class labels 0..n_classes-1
  meta.json      dataset, shape [H, W, C], range [low, high], n_classes, class_names, counts
with split in train, val, test. Flat (MLP) models reshape x to (N, H*W*C): a free view.
"""

import json
from pathlib import Path

import numpy as np

from genlab.errors import GenlabError

SPLITS = ("train", "val", "test")


def load_meta(processed_dir):
    path = Path(processed_dir) / "meta.json"
    if not path.exists():
        raise GenlabError(f"{path} not found: run `dvc repro normalize` first")
    return json.loads(path.read_text())


def load_split(processed_dir, split, mmap=True):
    """Return (x, y) of one split; x memory-mapped unless mmap=False."""
    if split not in SPLITS:
        raise GenlabError(f"unknown split {split!r}: use one of {', '.join(SPLITS)}")
    d = Path(processed_dir)
    xs, ys = d / f"{split}_x.npy", d / f"{split}_y.npy"
    for p in (xs, ys):
        if not p.exists():
            raise GenlabError(f"{p} not found: run `dvc repro normalize` first")
    try:
        x = np.load(xs, mmap_mode="r" if mmap else None)
        y = np.load(ys)
    except (ValueError, OSError) as e:
        raise GenlabError(f"{d} holds a corrupt array ({e}): run `dvc repro -f normalize`") from None
    if len(x) != len(y):
        raise GenlabError(f"{xs} has {len(x)} images but {ys} has {len(y)} labels: run `dvc repro -f normalize`")
    return x, y


def to_unit(x, value_range):
    """Map images from value_range (e.g. [-1, 1]) to [0, 1] (for Bernoulli likelihoods, display)."""
    lo, hi = value_range
    return (np.asarray(x, dtype=np.float32) - lo) / (hi - lo)


def from_unit(x, value_range):
    """Map images from [0, 1] to value_range."""
    lo, hi = value_range
    return np.asarray(x, dtype=np.float32) * (hi - lo) + lo
