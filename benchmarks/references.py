"""The reference models bench_quality.py races against (not part of genlab: nothing else uses them).

ReferenceDCGAN  the common tutorial DCGAN (TensorFlow's DCGAN tutorial, trimmed to the shape named in
                issue 9): generator z(100) -> Dense 7x7x128 (no bias) + BN + LeakyReLU -> ConvT 64 5x5/2
                (no bias) + BN + LeakyReLU -> ConvT 1 5x5/2 tanh; discriminator Conv 64 5x5/2 + LeakyReLU
                + Dropout 0.3 -> Conv 128 5x5/2 + LeakyReLU + Dropout 0.3 -> Flatten -> Dense 1 (logit).
                Unconditional; Adam(2e-4, beta_1 0.5) for both, non-saturating loss, batch 64.
ReferenceVAE    the Keras "Variational AutoEncoder" example: encoder Conv 32 3x3/2 ReLU -> Conv 64 3x3/2
                ReLU -> Flatten -> Dense 16 ReLU -> z_mean, z_log_var (latent_dim 2); decoder Dense 7x7x64
                ReLU -> ConvT 64 3x3/2 ReLU -> ConvT 32 3x3/2 ReLU -> ConvT 1 3x3 (the example's sigmoid is
                inside the Bernoulli loss here, so the decoder returns logits). Adam() (lr 1e-3), batch 128,
                loss = summed pixel BCE + KL, i.e. the negative ELBO, like genlab.models.vae.
Both subclass the project's model classes so that they train in the same compiled loop (genlab's
GanTask/VaeTask steps) and sample and score through the same code; only the networks differ.
"""

import keras
from keras import layers

from genlab.models.gan import GAN, gan_config
from genlab.models.vae import VAE, vae_config
from genlab.params import Gan, Vae

# each reference's params as genlab's checked objects (hidden/filters 1: unused by its own networks), and batch
DCGAN = Gan.of(arch="dcgan", conditional=False, latent_dim=100, hidden=1, filters=1, lr=2e-4, beta_1=0.5, beta_2=0.999,
               d_lr=0.0, loss="ns", ema=0.0)
DCGAN_BATCH = 64
VAE_EXAMPLE = Vae.of(arch="conv", variant="vae", latent_dim=2, beta=1.0, hidden=2, filters=1, lr=1e-3, prior="normal",
                     prior_components=10, temperature=1.0)
VAE_EXAMPLE_BATCH = 128
RECIPE_MLP = DCGAN.replace(arch="mlp", hidden=128)   # the original recipe's networks, Adam 2e-4/0.5
RECIPE_MLP_BATCH = 128


def _dcgan_generator(latent_dim):
    z = keras.Input((latent_dim,), name="z")
    h = layers.Dense(7 * 7 * 128, use_bias=False)(z)
    h = layers.LeakyReLU()(layers.BatchNormalization()(h))
    h = layers.Reshape((7, 7, 128))(h)
    h = layers.Conv2DTranspose(64, 5, strides=2, padding="same", use_bias=False)(h)   # 14x14x64
    h = layers.LeakyReLU()(layers.BatchNormalization()(h))
    out = layers.Conv2DTranspose(1, 5, strides=2, padding="same", activation="tanh")(h)  # 28x28x1
    return keras.Model(z, out, name="generator")


def _dcgan_discriminator():
    x = keras.Input((28, 28, 1), name="image")
    h = layers.Dropout(0.3)(layers.LeakyReLU()(layers.Conv2D(64, 5, strides=2, padding="same")(x)))
    h = layers.Dropout(0.3)(layers.LeakyReLU()(layers.Conv2D(128, 5, strides=2, padding="same")(h)))
    return keras.Model(x, layers.Dense(1)(layers.Flatten()(h)), name="discriminator")


class ReferenceDCGAN(GAN):
    """The tutorial DCGAN (28x28x1 images), unconditional, with genlab's GAN interface."""

    def __init__(self, value_range):
        super().__init__(gan_config(DCGAN, shape=[28, 28, 1], n_classes=10, value_range=value_range))
        self.generator = _dcgan_generator(DCGAN.latent_dim)
        self.discriminator = _dcgan_discriminator()


def _vae_encoder(latent_dim):
    x = keras.Input((28, 28, 1), name="x01")
    h = layers.Conv2D(32, 3, activation="relu", strides=2, padding="same")(x)
    h = layers.Conv2D(64, 3, activation="relu", strides=2, padding="same")(h)
    h = layers.Dense(16, activation="relu")(layers.Flatten()(h))
    return keras.Model(x, [layers.Dense(latent_dim, name="z_mean")(h), layers.Dense(latent_dim, name="z_log_var")(h)],
                       name="encoder")


def _vae_decoder(latent_dim):
    z = keras.Input((latent_dim,), name="z")
    h = layers.Reshape((7, 7, 64))(layers.Dense(7 * 7 * 64, activation="relu")(z))
    h = layers.Conv2DTranspose(64, 3, activation="relu", strides=2, padding="same")(h)
    h = layers.Conv2DTranspose(32, 3, activation="relu", strides=2, padding="same")(h)
    return keras.Model(z, layers.Conv2DTranspose(1, 3, padding="same")(h), name="decoder")


class ReferenceVAE(VAE):
    """The Keras example's convolutional VAE (latent 2), with genlab's VAE interface."""

    def __init__(self, value_range):
        super().__init__(vae_config(VAE_EXAMPLE, shape=[28, 28, 1], value_range=value_range))
        self.encoder = _vae_encoder(VAE_EXAMPLE.latent_dim)
        self.decoder = _vae_decoder(VAE_EXAMPLE.latent_dim)
