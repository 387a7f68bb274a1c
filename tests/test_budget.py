"""The memory/disk budget (genlab.training.budget, an arithmetic estimate without TensorFlow) counts
the parameters of the models it budgets for: checked against Keras's own count of every architecture
at the defaults and at other sizes, so a change to a network that the estimate does not follow fails
here instead of making check_data's memory and disk checks quietly wrong."""

import pytest

from genlab.evaluation.evaluator import build_evaluator
from genlab.models.gan import GAN as GAN_MODEL
from genlab.models.gan import gan_config
from genlab.models.vae import VAE as VAE_MODEL
from genlab.models.vae import vae_config
from genlab.params import GAN_ARCHS, VAE_ARCHS, Gan, Vae
from genlab.training import budget

SHAPES = ([28, 28, 1], [32, 32, 3])
TOLERANCE = 0.2   # it leaves out biases and batch-norm parameters (up to 16 % of a small conv net);
#                   the memory and disk checks it feeds are meant to catch orders of magnitude
GAN = Gan.of(arch="dcgan", conditional=True, latent_dim=100, hidden=128, filters=32, lr=2e-4, beta_1=0.5, beta_2=0.999,
             d_lr=0.0, loss="hinge", ema=0.999)
VAE = Vae.of(arch="conv", variant="vae", latent_dim=16, beta=1.0, hidden=512, filters=16, lr=1e-3, prior="gmm",
             prior_components=20, temperature=1.0)


def close(estimate, real):
    return abs(estimate - real) <= TOLERANCE * real


@pytest.mark.parametrize("arch", GAN_ARCHS)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("size, conditional", [((100, 128, 32), True), ((16, 64, 8), False)])
def test_gan_parameters(arch, shape, size, conditional):
    latent_dim, hidden, filters = size
    gan = GAN.replace(arch=arch, latent_dim=latent_dim, conditional=conditional, hidden=hidden, filters=filters)
    model = GAN_MODEL(gan_config(gan, shape=shape, n_classes=10, value_range=[-1.0, 1.0]))
    real = model.generator.count_params() + model.discriminator.count_params()
    _, estimate = budget.gan_counts(shape, gan, n_classes=10)
    assert close(estimate, real), (estimate, real)


@pytest.mark.parametrize("arch", VAE_ARCHS)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("size", [(16, 512, 16), (2, 64, 8)])
def test_vae_parameters(arch, shape, size):
    latent_dim, hidden, filters = size
    vae = VAE.replace(arch=arch, latent_dim=latent_dim, hidden=hidden, filters=filters)
    model = VAE_MODEL(vae_config(vae, shape=shape, value_range=[-1.0, 1.0]))
    real = model.encoder.count_params() + model.decoder.count_params()
    _, estimate = budget.vae_counts(shape, vae)
    assert close(estimate, real), (estimate, real)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("filters, feature_dim", [([16, 32], 128), ([8], 32)])
def test_evaluator_parameters(shape, filters, feature_dim):
    real = build_evaluator(shape, 10, filters=filters, feature_dim=feature_dim, dropout=0.3).count_params()
    _, estimate = budget.evaluator_counts(shape, filters=filters, feature_dim=feature_dim, n_classes=10)
    assert close(estimate, real), (estimate, real)
