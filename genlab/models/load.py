"""Load a trained GAN or VAE from its model folder (format: genlab.models.store).

`load_model(dir)` rebuilds the networks from the saved config with the same builders used for
training (genlab.models.gan / genlab.models.vae), so no caller restates an architecture. The loaded object offers
`generate(n, seed, labels=None)` (images in the data range), `decode(z)` (given codes, plus
labels= for a conditional GAN -> images in [0, 1]) and, for a VAE, `encode`, `decode_logits`.
"""

from pathlib import Path

from genlab.errors import GenlabError
from genlab.models.gan import GAN
from genlab.models.store import read_model_config
from genlab.models.vae import VAE

FAMILIES = {"gan": GAN, "vae": VAE}


def load_model(model_dir):
    """Rebuild the GAN or VAE saved in model_dir (see genlab.models.store.save_model)."""
    d = Path(model_dir)
    family, config = read_model_config(d)
    if family not in FAMILIES:
        raise GenlabError(f"{d / 'config.json'} names an unknown model family {family!r}: retrain the model")
    model = FAMILIES[family](config)
    for name, net in model.networks().items():
        path = d / f"{name}.weights.h5"
        if not path.exists():
            raise GenlabError(f"{path} not found: the model folder is incomplete, retrain the model")
        try:
            net.load_weights(str(path))
        except Exception as e:  # h5py/keras raise many types for truncated or mismatched files
            raise GenlabError(f"{path} cannot be loaded ({type(e).__name__}: {e}): retrain the model") from None
    return model
