"""The params the training stages read, validated (no TensorFlow import, so errors come at once).

Each function returns exactly the keys it read, as keyword arguments for the library:
train_settings -> genlab.training.loop.TrainSettings, gan_params -> genlab.training.gan.train_gan,
vae_params -> genlab.training.vae.train_vae.
"""

from genlab import config
from genlab.errors import GenlabError


def both(*checks):
    """Run every check (a function of no arguments); return their results, or raise one GenlabError
    naming every bad value (so train.* and gan.* errors are reported together)."""
    results, errors = [], []
    for check in checks:
        try:
            results.append(check())
        except GenlabError as e:
            errors.append(str(e))
    if errors:
        raise GenlabError("; ".join(errors))
    return results


def _positive(params, key):
    """A number > 0 (a learning rate): 0 and negative values get the same message."""
    value = config.get(params, key, float)
    if not value > 0:
        raise GenlabError(f"{key} must be a number > 0, got {value!r}")
    return value


def train_settings(params):
    """train.epochs (iterations of one batch), batch_size, seed, log_every, ckpt_every; and where and
    how to run: strategy, mixed_precision, xla, data_in_memory (genlab.training.devices)."""
    get = lambda key, lo: config.get(params, f"train.{key}", int, lo=lo)  # noqa: E731
    return {"iterations": get("epochs", 1), "batch_size": get("batch_size", 1), "seed": get("seed", 0),
            "log_every": get("log_every", 1), "ckpt_every": get("ckpt_every", 1),
            "snapshot_every": get("snapshot_every", 0),
            "strategy": config.get(params, "train.strategy", str, choices=("default", "mirrored", "multi_worker")),
            "mixed_precision": config.get(params, "train.mixed_precision", str, choices=("none", "bf16", "fp16")),
            "xla": _xla(params),
            "data_in_memory": config.get(params, "train.data_in_memory", bool)}


def _xla(params):
    """train.xla: auto, true or false (YAML reads the last two as booleans) -> "auto" | "true" | "false"."""
    value = config.get(params, "train.xla", object)
    if value is True or value is False:
        return str(value).lower()
    if value != "auto":
        raise GenlabError(f"train.xla must be auto, true or false, got {value!r}")
    return value


def gan_params(params):
    """gan.arch, conditional, latent_dim, hidden, filters, lr, beta_1, d_lr, loss, ema."""
    return {
        "arch": config.get(params, "gan.arch", str, choices=("mlp", "dcgan")),
        "conditional": config.get(params, "gan.conditional", bool),
        "latent_dim": config.get(params, "gan.latent_dim", int, lo=1),
        "hidden": config.get(params, "gan.hidden", int, lo=1),
        "filters": config.get(params, "gan.filters", int, lo=1),
        "lr": _positive(params, "gan.lr"),
        "beta_1": config.get(params, "gan.beta_1", float, lo=0.0, hi=0.9999),
        "d_lr": config.get(params, "gan.d_lr", float, lo=0.0),
        "loss": config.get(params, "gan.loss", str, choices=("ns", "hinge")),
        "ema": config.get(params, "gan.ema", float, lo=0.0, hi=0.9999),
    }


def vae_params(params):
    """vae.arch, variant, latent_dim, beta, hidden, filters, lr, prior, prior_components."""
    return {
        "arch": config.get(params, "vae.arch", str, choices=("mlp", "conv")),
        "variant": config.get(params, "vae.variant", str, choices=("vae", "ae")),
        "latent_dim": config.get(params, "vae.latent_dim", int, lo=1),
        "beta": config.get(params, "vae.beta", float, lo=0.0),
        "hidden": config.get(params, "vae.hidden", int, lo=2),
        "filters": config.get(params, "vae.filters", int, lo=1),
        "lr": _positive(params, "vae.lr"),
        "prior": config.get(params, "vae.prior", str, choices=("normal", "gmm")),
        "prior_components": config.get(params, "vae.prior_components", int, lo=1),
    }
