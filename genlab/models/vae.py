"""Variational autoencoder (and the plain autoencoder variant) with a Bernoulli likelihood.

Likelihood: each pixel of an image x01 scaled to [0, 1] is the mean of a Bernoulli distribution
whose logit the decoder outputs; the reconstruction term is the Bernoulli cross-entropy
sum_pixels BCE(x01, logits) in nats per image, with the grey levels themselves as targets (no
binarization during training). Prior p(z) = N(0, I); posterior q(z|x) = N(z_mean, exp(z_log_var)).
Training loss per image: reconstruction + beta * KL(q(z|x) || p(z)); with beta = 1 it is the
negative ELBO.

Images shown (decode: samples, reconstructions, interpolations, edits) are sigmoid(logits / T) with
T = vae.temperature: at 1 the Bernoulli means, which average every detail the code leaves uncertain
into grey blur; below 1 each pixel is pushed toward the nearer of black and white. T is a sampling
choice like the code mixture, made after training on the validation split (benchmarks/README.md);
the ELBO and IW bound read decode_logits, the likelihood as trained, whatever T is.

variant "ae" is a deterministic autoencoder: the encoder gives a code z (no z_log_var), the loss
is the reconstruction term alone, and new images are decoded from a Gaussian fitted to the codes
of the training images after training (`VAE.fit_code_gaussian`), since an autoencoder has no prior.

Layer names: enc_* (encoder), dec_* (decoder), apart from the GAN's g_*/d_* (generator, discriminator).
Arrays: x01 (N, H, W, C) float32 in [0, 1]; z (N, latent_dim) float32. The numpy methods
(encode, decode_logits, decode, generate) work in batches through compiled functions.
"""

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from genlab.errors import GenlabError
from genlab.models.density import fit_gmm, sample_gmm
from genlab.params import VAE_ARCHS, VAE_VARIANTS


def build_encoder(cfg):
    """x01 (N, H, W, C) -> [z_mean, z_log_var] (vae) or z (ae), each (N, latent_dim)."""
    x = keras.Input(shape=tuple(cfg["shape"]), name="x01")
    if cfg["arch"] == "mlp":
        h = layers.Flatten(name="enc_flat")(x)
        h = layers.Dense(cfg["hidden"], activation="relu", name="enc_dense1")(h)
        h = layers.Dense(cfg["hidden"] // 2, activation="relu", name="enc_dense2")(h)
    else:
        f = cfg["filters"]
        h = layers.Conv2D(f, 3, strides=2, padding="same", activation="relu", name="enc_conv1")(x)   # H/2
        h = layers.Conv2D(2 * f, 3, strides=2, padding="same", activation="relu", name="enc_conv2")(h)  # H/4
        h = layers.Flatten(name="enc_flat")(h)
    z_mean = layers.Dense(cfg["latent_dim"], name="z_mean")(h)
    if cfg["variant"] == "ae":
        return keras.Model(x, z_mean, name="encoder")
    z_log_var = layers.Dense(cfg["latent_dim"], name="z_log_var")(h)
    return keras.Model(x, [z_mean, z_log_var], name="encoder")


def build_decoder(cfg):
    """z (N, latent_dim) -> Bernoulli logits (N, H, W, C)."""
    h_img, w_img, c_img = cfg["shape"]
    z = keras.Input(shape=(cfg["latent_dim"],), name="z")
    if cfg["arch"] == "mlp":
        h = layers.Dense(cfg["hidden"] // 2, activation="relu", name="dec_dense1")(z)
        h = layers.Dense(cfg["hidden"], activation="relu", name="dec_dense2")(h)
        h = layers.Dense(h_img * w_img * c_img, name="dec_logits")(h)
        out = layers.Reshape((h_img, w_img, c_img), name="dec_image")(h)
    else:
        f = cfg["filters"]
        h = layers.Dense((h_img // 4) * (w_img // 4) * 2 * f, activation="relu", name="dec_dense")(z)
        h = layers.Reshape((h_img // 4, w_img // 4, 2 * f), name="dec_grid")(h)
        h = layers.Conv2DTranspose(2 * f, 3, strides=2, padding="same", activation="relu", name="dec_up1")(h)
        h = layers.Conv2DTranspose(f, 3, strides=2, padding="same", activation="relu", name="dec_up2")(h)
        out = layers.Conv2DTranspose(c_img, 3, padding="same", name="dec_logits")(h)
    return keras.Model(z, out, name="decoder")


def vae_config(vae, *, shape, value_range):
    """The construction arguments saved with a VAE (config.json) and used to rebuild it: the network
    params of vae (a genlab.params.Vae) and the data's shape and value range."""
    if vae.arch not in VAE_ARCHS:
        raise GenlabError(f"vae.arch must be one of {', '.join(VAE_ARCHS)}, got {vae.arch!r}")
    if vae.variant not in VAE_VARIANTS:
        raise GenlabError(f"vae.variant must be one of {', '.join(VAE_VARIANTS)}, got {vae.variant!r}")
    shape = [int(s) for s in shape]
    if vae.arch == "conv" and (shape[0] % 4 or shape[1] % 4):
        raise GenlabError(f"vae.arch conv needs image sides divisible by 4, got {shape}: use vae.arch mlp")
    return {"arch": vae.arch, "variant": vae.variant, "latent_dim": int(vae.latent_dim), "hidden": int(vae.hidden),
            "filters": int(vae.filters), "shape": shape, "value_range": [float(v) for v in value_range],
            "temperature": float(vae.temperature), "code_gaussian": None, "code_gmm": None}


class VAE:
    """Encoder/decoder pair built from `config` (see vae_config)."""

    family = "vae"

    def __init__(self, config):
        self.config = dict(config)
        self.encoder = build_encoder(self.config)
        self.decoder = build_decoder(self.config)
        spec_x = tf.TensorSpec([None, *self.config["shape"]], tf.float32)
        spec_z = tf.TensorSpec([None, self.latent_dim], tf.float32)
        self._encode_fn = tf.function(lambda x: self.encoder(x, training=False), input_signature=[spec_x])
        self._decode_fn = tf.function(lambda z: self.decoder(z, training=False), input_signature=[spec_z])

    @property
    def latent_dim(self):
        return self.config["latent_dim"]

    @property
    def variational(self):
        """True for a VAE, False for the plain autoencoder (no z_log_var, no ELBO)."""
        return self.config["variant"] == "vae"

    def networks(self):
        """Name -> keras model, in a fixed order (used for weights files and checkpoints)."""
        return {"encoder": self.encoder, "decoder": self.decoder}

    def _batched(self, fn, a, batch_size):
        a = np.asarray(a, dtype=np.float32)
        outs = [fn(a[i:i + batch_size]) for i in range(0, len(a), batch_size)]
        if not outs:
            outs = [fn(a)]
        if isinstance(outs[0], (list, tuple)):
            return tuple(np.concatenate([o[k].numpy() for o in outs]) for k in range(len(outs[0])))
        return np.concatenate([o.numpy() for o in outs])

    def encode(self, x01, batch_size=1000):
        """x01 (N, H, W, C) in [0, 1] -> (z_mean, z_log_var), numpy (N, latent_dim) each.

        For the plain autoencoder z_log_var is None (the code is deterministic)."""
        out = self._batched(self._encode_fn, x01, batch_size)
        return out if self.variational else (out, None)

    def decode_logits(self, z, batch_size=1000):
        """z (N, latent_dim) -> Bernoulli logits (N, H, W, C), numpy float32."""
        return self._batched(self._decode_fn, z, batch_size)

    @property
    def temperature(self):
        """vae.temperature: decode() shows sigmoid(logits / temperature); 1 for a model saved before it existed."""
        return float(self.config.get("temperature", 1.0))

    def decode(self, z, batch_size=1000):
        """z (N, latent_dim) -> images in [0, 1]: sigmoid(logits / temperature), the Bernoulli means at
        temperature 1, sharper below 1 (what every image the model shows is made of; the bounds use
        decode_logits)."""
        logits = self.decode_logits(z, batch_size) / np.float32(self.temperature)
        return (0.5 + 0.5 * np.tanh(0.5 * logits)).astype(np.float32)

    def sample_codes(self, n, seed):
        """n codes: from the mixture fitted to the training codes if there is one (vae.prior gmm,
        genlab.models.density); else z ~ N(0, I) for a VAE, and for an AE from the Gaussian fitted to
        its training codes."""
        if self.config.get("code_gmm"):
            return sample_gmm(self.config["code_gmm"], n, seed)
        eps = np.random.default_rng(seed).standard_normal((n, self.latent_dim)).astype(np.float32)
        if self.variational:
            return eps
        gauss = self.config.get("code_gaussian")
        if gauss is None:
            raise GenlabError("this autoencoder has no fitted code distribution to sample from: "
                              "retrain it with `dvc repro train_vae`")
        return (np.asarray(gauss["mean"], np.float32) + eps @ np.asarray(gauss["scale_tril"], np.float32).T)

    def generate(self, n, seed, labels=None, batch_size=1000):
        """n new images in the data range (float32 (n, H, W, C)): sampled codes, decoded (decode)."""
        if labels is not None:
            raise GenlabError("a VAE is unconditional: it cannot generate a chosen class (labels must be None)")
        lo, hi = self.config["value_range"]
        return (self.decode(self.sample_codes(n, seed), batch_size) * (hi - lo) + lo).astype(np.float32)

    def fit_code_gaussian(self, x01=None, codes=None):
        """AE only: fit N(mean, L L^T) to the codes of x01 (or to `codes`, already encoded) so that
        generate() has a distribution."""
        z = self.encode(x01)[0] if codes is None else codes
        z = z.astype(np.float64)
        cov = np.cov(z, rowvar=False).reshape(self.latent_dim, self.latent_dim)
        cov += 1e-6 * np.eye(self.latent_dim)
        self.config["code_gaussian"] = {"mean": z.mean(axis=0).tolist(),
                                        "scale_tril": np.linalg.cholesky(cov).tolist()}


    def fit_code_gmm(self, codes, components, seed, max_codes=10000):
        """Fit the mixture sample_codes draws from to (a seeded subset of max_codes of) `codes`,
        the encoder's means of the training images (ex-post density estimation)."""
        codes = np.asarray(codes, np.float64)
        if len(codes) > max_codes:
            codes = codes[np.sort(np.random.default_rng(seed).choice(len(codes), max_codes, replace=False))]
        self.config["code_gmm"], _ = fit_gmm(codes, components, seed=seed)


def vae_losses(model, x01, seed, beta, eps=None):
    """Graph code: per-batch means of total, reconstruction and kl for x01 (B, H, W, C).

    seed: int32/int64 (2,) for the reparameterization noise (stateless, so a step is reproducible);
    eps: that noise given directly ((B, latent_dim), a replica's share of the global batch's noise)
    instead. Under mixed precision the networks compute in float16/bfloat16; the losses are float32.
    """
    if model.variational:
        z_mean, z_log_var = (tf.cast(t, tf.float32) for t in model.encoder(x01, training=True))
        eps = tf.random.stateless_normal(tf.shape(z_mean), seed) if eps is None else eps
        z = z_mean + tf.exp(0.5 * z_log_var) * eps
        kl = -0.5 * tf.reduce_sum(1.0 + z_log_var - tf.square(z_mean) - tf.exp(z_log_var), axis=1)
    else:
        z = tf.cast(model.encoder(x01, training=True), tf.float32)
        kl = tf.zeros(tf.shape(z)[:1])
    logits = tf.cast(model.decoder(z, training=True), tf.float32)
    reconstruction = tf.reduce_sum(tf.nn.sigmoid_cross_entropy_with_logits(labels=x01, logits=logits),
                                   axis=[1, 2, 3])
    total = reconstruction + beta * kl
    return {"loss": tf.reduce_mean(total), "reconstruction": tf.reduce_mean(reconstruction),
            "kl": tf.reduce_mean(kl)}


def vae_step(model, opt, x01, seed, beta, eps=None, replicas=1):
    """One VAE iteration (graph code): an Adam step on the mean loss of the batch x01 (one replica's
    share of the global batch when replicas > 1: the loss is divided by replicas, since the optimizer
    sums the replicas' gradients; fp16 loss scaling by the optimizer's scale_loss)."""
    with tf.GradientTape() as tape:
        losses = vae_losses(model, x01, seed, beta, eps)
        loss = losses["loss"] / replicas if replicas > 1 else losses["loss"]
        scaled = opt.scale_loss(loss)
    variables = model.encoder.trainable_variables + model.decoder.trainable_variables
    opt.apply_gradients(zip(tape.gradient(scaled, variables), variables))
    return losses
