"""Save and load trained models (GAN, VAE) as self-describing folders.

A model folder holds config.json ({"family": "gan" | "vae", "config": construction arguments})
and one Keras `<network>.weights.h5` per network. `load_model(dir)` rebuilds the networks from the
config with the same builders used for training (genlab.gan / genlab.vae), so no caller restates an
architecture. The loaded object offers `generate(n, seed, labels=None)` (images in the data range)
and, for a VAE, `encode`, `decode_logits`, `decode`.
"""

import json
from pathlib import Path

from genlab.errors import GenlabError
from genlab.io import atomic_dir, ensure_space, write_json

FORMAT = 1


def _families():
    from genlab.gan import GAN
    from genlab.vae import VAE
    return {"gan": GAN, "vae": VAE}


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


def load_model(model_dir):
    """Rebuild the GAN or VAE saved in model_dir (see save_model)."""
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
    families = _families()
    if family not in families:
        raise GenlabError(f"{cfg_path} names an unknown model family {family!r}: retrain the model")
    if saved.get("format") != FORMAT:
        raise GenlabError(f"{cfg_path} has format {saved.get('format')}, this genlab reads {FORMAT}: retrain the model")
    model = families[family](config)
    for name, net in model.networks().items():
        path = d / f"{name}.weights.h5"
        if not path.exists():
            raise GenlabError(f"{path} not found: the model folder is incomplete, retrain the model")
        try:
            net.load_weights(str(path))
        except Exception as e:  # h5py/keras raise many types for truncated or mismatched files
            raise GenlabError(f"{path} cannot be loaded ({type(e).__name__}: {e}): retrain the model") from None
    return model
