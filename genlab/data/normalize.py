"""normalize: scale raw uint8 images to float32 in a range, NHWC layout, seeded train/val split.

Output (see genlab.data.processed for the reader): {train,val,test}_{x,y}.npy and meta.json in one folder,
written atomically. MLP models flatten x to (N, H*W*C) themselves: a free reshape.
"""


import json
from pathlib import Path

import numpy as np

from genlab.errors import GenlabError
from genlab.identity import file_digest
from genlab.io import atomic_dir, write_json


def scale(x, value_range):
    """uint8 0..255 (N, H, W[, C]) -> float32 (N, H, W, C) in value_range."""
    lo, hi = value_range
    x = np.asarray(x)
    if x.ndim == 3:
        x = x[..., None]
    return (x.astype(np.float32) * np.float32((hi - lo) / 255.0) + np.float32(lo)).astype(np.float32)


def split_indices(n, val_fraction, seed):
    """A seeded permutation of range(n) cut into (train, val) index arrays, each sorted."""
    n_val = int(round(n * val_fraction))
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def check_validation(stamp_path, raw_dir):
    """Refuse to normalize data that the validate stage did not pass (its stamp names the raw data)."""
    path = Path(stamp_path)
    if not path.exists():
        raise GenlabError(f"{path} not found: run `dvc repro validate` first")
    try:
        stamp = json.loads(path.read_text())
    except ValueError:
        raise GenlabError(f"{path} is corrupt: run `dvc repro -f validate`") from None
    if not stamp.get("success"):
        raise GenlabError(f"{path} records a failed validation: fix the data and run `dvc repro`")
    manifest = Path(raw_dir) / "dataset.json"
    if not manifest.exists() or file_digest(manifest) != stamp.get("raw_manifest_sha256"):
        raise GenlabError(f"{path} was written for other raw data than {raw_dir}: run `dvc repro validate`")


def normalize(arrays, out_dir, *, value_range, val_fraction, seed, dataset, class_names=None):
    """Write the processed dataset to out_dir; return its meta dict."""
    lo, hi = value_range
    if not lo < hi:
        raise GenlabError(f"normalize.range must be [low, high] with low < high, got {list(value_range)}")
    y_train = np.asarray(arrays["y_train"]).astype(np.int32)
    n_classes = int(y_train.max()) + 1
    train_idx, val_idx = split_indices(len(y_train), val_fraction, seed)
    splits = {
        "train": (arrays["x_train"][train_idx], y_train[train_idx]),
        "val": (arrays["x_train"][val_idx], y_train[val_idx]),
        "test": (arrays["x_test"], np.asarray(arrays["y_test"]).astype(np.int32)),
    }
    with atomic_dir(out_dir) as tmp:
        for split, (x, y) in splits.items():
            np.save(tmp / f"{split}_x.npy", scale(x, value_range))
            np.save(tmp / f"{split}_y.npy", y)
        x0 = scale(splits["train"][0][:1], value_range)
        meta = {
            "dataset": dataset,
            "shape": list(x0.shape[1:]),
            "range": [float(lo), float(hi)],
            "n_classes": n_classes,
            "class_names": list(class_names) if class_names else [str(i) for i in range(n_classes)],
            "counts": {split: int(len(y)) for split, (_, y) in splits.items()},
        }
        write_json(tmp / "meta.json", meta)
    return meta
