"""Rough memory and disk budgets of the training stages, from the data's shape and the params alone
(no TensorFlow import), so a batch or a model that cannot fit is refused before anything is trained.

The estimates count float32 values, and are meant to catch orders of magnitude (a batch of 100,000
images that needs 30 GB), not to predict the peak to the megabyte:
  memory  = 4 bytes x (batch x activations per image x 3   forward values kept for the backward pass,
                                                           their gradients, temporaries
                       + parameters x 4                    weights, gradients, Adam's two moments
                       + training images x pixels)         the split held in memory (train.data_in_memory)
  disk    = 4 bytes x parameters x (3 x kept checkpoints        weights + Adam moments per checkpoint,
                                    + 2)                        the saved model (and a GAN's EMA copy)
Activations per image follow the layer shapes of genlab.models.gan, genlab.models.vae and
genlab.evaluation.evaluator (a batch-norm or activation layer counts as one more copy of its input).
Available memory is MemAvailable from /proc/meminfo (else the free physical pages from os.sysconf).
"""

import os

BYTES = 4           # float32
KEPT_CHECKPOINTS = 2
LIVE_DISK = 1 << 20   # a dvclive folder or a metrics file: curves and a few small images


def gan_counts(shape, gan, *, n_classes):
    """(activations per image of one training step, parameters) of the GAN (generator + discriminator)
    that gan (a genlab.params.Gan) builds."""
    arch, latent_dim, hidden, filters, conditional = gan.arch, gan.latent_dim, gan.hidden, gan.filters, gan.conditional
    h, w, c = shape
    pixels = h * w * c
    label = n_classes if conditional else 0
    if arch == "mlp":
        gen_act = latent_dim + label + 3 * hidden + 2 * pixels
        disc_act = pixels + 2 * hidden + 1
        params = (latent_dim + label) * hidden + hidden * pixels + pixels * hidden + hidden + label * hidden
    else:
        f = filters
        small, mid = (h // 4) * (w // 4) * 2 * f, (h // 2) * (w // 2) * f
        gen_act = latent_dim + label + 3 * small + 3 * mid + 2 * pixels
        disc_act = pixels + 2 * mid + 3 * small + 1
        params = ((latent_dim + label) * small + 16 * 2 * f * f + 16 * f * c
                  + 16 * c * f + 16 * f * 2 * f + small + label * small)
    return gen_act + 2 * disc_act, params      # the discriminator sees a real and a fake batch


def vae_counts(shape, vae):
    """(activations per image of one training step, parameters) of the VAE (encoder + decoder) that
    vae (a genlab.params.Vae) builds."""
    arch, latent_dim, hidden, filters = vae.arch, vae.latent_dim, vae.hidden, vae.filters
    h, w, c = shape
    pixels = h * w * c
    if arch == "mlp":
        act = 3 * pixels + 2 * (hidden + hidden // 2) + 3 * latent_dim
        params = 2 * (pixels * hidden + hidden * (hidden // 2)) + (hidden // 2) * 3 * latent_dim
    else:
        f = filters
        small, mid = (h // 4) * (w // 4) * 2 * f, (h // 2) * (w // 2)
        act = 3 * pixels + mid * f + 2 * small + 3 * latent_dim + small + mid * 2 * f + h * w * f
        params = (9 * c * f + 18 * f * f + small * 3 * latent_dim + 36 * f * f + 18 * f * f + 9 * f * c)
    return act, params


def evaluator_counts(shape, *, filters, feature_dim, n_classes):
    """(activations per image of one training step, parameters) of the evaluator CNN."""
    h, w, c = shape
    act, params, prev = h * w * c, 0, c
    for f in filters:
        act += 3 * h * w * f + (h // 2) * (w // 2) * f      # conv, batch norm, ReLU, 2x2 pool
        params += 9 * prev * f + 2 * f
        h, w, prev = h // 2, w // 2, f
    params += h * w * prev * feature_dim + feature_dim * n_classes
    return act + 2 * feature_dim + n_classes, params


def training_memory(batch_size, act_per_image, params, resident_images=0, pixels=0):
    """Bytes one training step needs (see the module docstring)."""
    return BYTES * (3 * batch_size * act_per_image + 4 * params + resident_images * pixels)


def checkpoint_disk(params, copies=3):
    """Bytes the kept checkpoints of a model with `params` parameters take: `copies` arrays of its size
    each (weights + Adam's two moments; the evaluator keeps its best weights too: 4)."""
    return BYTES * params * copies * KEPT_CHECKPOINTS


def model_disk(params):
    """Bytes the saved model takes (its weights, and a GAN's moving-average copy)."""
    return BYTES * params * 2


def available_memory():
    """Bytes of memory available to a new process (MemAvailable), or None when unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def human(nbytes):
    """1536 -> '1.5 KB' (decimal units, as df -H)."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(nbytes) < 1000 or unit == "TB":
            return f"{nbytes:.0f} {unit}" if unit == "B" else f"{nbytes:.1f} {unit}"
        nbytes /= 1000
