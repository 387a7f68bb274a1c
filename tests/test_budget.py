"""The memory/disk budget (genlab.training.budget, an arithmetic estimate without TensorFlow) counts
the parameters of the models it budgets for: checked against Keras's own count of every architecture
at the defaults and at other sizes, so a change to a network that the estimate does not follow fails
here instead of making check_data's memory and disk checks quietly wrong."""

import pytest

from genlab.evaluation.evaluator import build_evaluator
from genlab.models.gan import GAN, gan_config
from genlab.models.vae import VAE, vae_config
from genlab.params import GAN_ARCHS, VAE_ARCHS
from genlab.training import budget

SHAPES = ([28, 28, 1], [32, 32, 3])
TOLERANCE = 0.2   # it leaves out biases and batch-norm parameters (up to 16 % of a small conv net);
#                   the memory and disk checks it feeds are meant to catch orders of magnitude


def close(estimate, real):
    return abs(estimate - real) <= TOLERANCE * real


@pytest.mark.parametrize("arch", GAN_ARCHS)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("size, conditional", [((100, 128, 32), True), ((16, 64, 8), False)])
def test_gan_parameters(arch, shape, size, conditional):
    latent_dim, hidden, filters = size
    model = GAN(gan_config(arch=arch, latent_dim=latent_dim, conditional=conditional, hidden=hidden,
                           filters=filters, shape=shape, n_classes=10, value_range=[-1.0, 1.0]))
    real = model.generator.count_params() + model.discriminator.count_params()
    _, estimate = budget.gan_counts(shape, arch=arch, latent_dim=latent_dim, hidden=hidden, filters=filters,
                                    n_classes=10, conditional=conditional)
    assert close(estimate, real), (estimate, real)


@pytest.mark.parametrize("arch", VAE_ARCHS)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("size", [(16, 512, 16), (2, 64, 8)])
def test_vae_parameters(arch, shape, size):
    latent_dim, hidden, filters = size
    model = VAE(vae_config(arch=arch, variant="vae", latent_dim=latent_dim, hidden=hidden, filters=filters,
                           shape=shape, value_range=[-1.0, 1.0]))
    real = model.encoder.count_params() + model.decoder.count_params()
    _, estimate = budget.vae_counts(shape, arch=arch, latent_dim=latent_dim, hidden=hidden, filters=filters)
    assert close(estimate, real), (estimate, real)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("filters, feature_dim", [([16, 32], 128), ([8], 32)])
def test_evaluator_parameters(shape, filters, feature_dim):
    real = build_evaluator(shape, 10, filters=filters, feature_dim=feature_dim, dropout=0.3).count_params()
    _, estimate = budget.evaluator_counts(shape, filters=filters, feature_dim=feature_dim, n_classes=10)
    assert close(estimate, real), (estimate, real)
