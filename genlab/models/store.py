"""Trained models (GAN, VAE) as self-describing folders: the format, and saving.

A model folder holds config.json ({"family": "gan" | "vae", "format", "config": construction
arguments}) and one Keras `<network>.weights.h5` per network. Loading is genlab.models.load.load_model,
kept apart so that a training stage depends only on its own model's code (see dvc.yaml).
"""

import io
import json
import zipfile
from pathlib import Path

import numpy as np

from genlab.errors import GenlabError
from genlab.io import atomic_dir, atomic_file, ensure_space, write_json

FORMAT = 1
SNAPSHOTS = "snapshots"  # <live dir>/snapshots/<iteration, 9 digits>.npz: the weights sampling needs,
# kept by the training stages every train.snapshot_every iterations (genlab.training.loop)


def save_weights(path, arrays):
    """A snapshot: arrays (numpy) as w0000.npy, w0001.npy, ... in one .npz, written atomically, with
    fixed zip timestamps (the same weights give the same bytes, in a resumed run too)."""
    with atomic_file(path) as f, zipfile.ZipFile(f, "w") as z:
        for i, a in enumerate(arrays):
            buf = io.BytesIO()
            np.save(buf, np.asarray(a), allow_pickle=False)
            z.writestr(zipfile.ZipInfo(f"w{i:04d}.npy", date_time=(1980, 1, 1, 0, 0, 0)), buf.getvalue())


def list_snapshots(folder):
    """[(iteration, path)] of the snapshots in folder (a training stage's <live>/snapshots), by iteration."""
    folder = Path(folder)
    found = [(int(p.stem), p) for p in folder.glob("*.npz") if p.stem.isdigit()] if folder.is_dir() else []
    return sorted(found)


def load_weights(path):
    """The arrays of one snapshot, in order."""
    with np.load(path) as z:
        return [z[f"w{i:04d}"] for i in range(len(z.files))]


def save_model(model, model_dir):
    """Write model (a GAN or VAE) to model_dir atomically: the folder appears whole or not at all."""
    import keras
    ensure_space(Path(model_dir).parent, sum(v.numpy().nbytes for net in model.networks().values()
                                             for v in net.weights), f"the model {model_dir}")
    with atomic_dir(model_dir) as tmp:
        for name, net in model.networks().items():
            net.save_weights(str(Path(tmp) / f"{name}.weights.h5"))
        write_json(Path(tmp) / "config.json", {"family": model.family, "format": FORMAT,
                                               "keras_version": keras.__version__, "config": model.config})


def read_model_config(model_dir):
    """(family, config) from model_dir/config.json, checked against this genlab's format."""
    d = Path(model_dir)
    cfg_path = d / "config.json"
    if not cfg_path.exists():
        raise GenlabError(f"{cfg_path} not found: train the model first "
                          "(`dvc repro train_gan` or `dvc repro train_vae`)")
    try:
        saved = json.loads(cfg_path.read_text())
        family, config = saved["family"], saved["config"]
    except (ValueError, KeyError, TypeError) as e:
        raise GenlabError(f"{cfg_path} is not a genlab model config ({e}): retrain the model") from None
    if saved.get("format") != FORMAT:
        raise GenlabError(f"{cfg_path} has format {saved.get('format')}, this genlab reads {FORMAT}: retrain the model")
    return family, config
