"""GAN networks and the GAN model object: the original recipe's MLP pair and a DCGAN pair.

The generator works in [-1, 1] (tanh output); `GAN.generate` maps its images to the data range
stored in the model config. Both networks optionally take an int32 class label (conditional GAN),
so a user can ask for a chosen class: the generator gets it one-hot, joined to z; the
discriminator projects its features on a learned label embedding. The discriminator returns a
logit (no sigmoid): the losses use the numerically stable `sigmoid_cross_entropy_with_logits`,
which is the recipe's sigmoid + binary cross-entropy.

Shapes: z (N, latent_dim) float32; label (N,) int32; image (N, H, W, C) float32.
"""

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from genlab.errors import GenlabError
from genlab.params import GAN_ARCHS, GAN_LOSSES


def _label_input(n_classes):
    label = keras.Input(shape=(), dtype="int32", name="label")
    return label, layers.CategoryEncoding(n_classes, output_mode="one_hot", name="label_one_hot")(label)


def build_generator(cfg):
    """z (N, latent_dim) [+ label (N,)] -> image (N, H, W, C) in [-1, 1]."""
    h_img, w_img, c_img = cfg["shape"]
    z = keras.Input(shape=(cfg["latent_dim"],), name="z")
    inputs, h = [z], z
    if cfg["conditional"]:
        label, one_hot = _label_input(cfg["n_classes"])
        inputs.append(label)
        h = layers.Concatenate(name="z_label")([z, one_hot])
    if cfg["arch"] == "mlp":
        # The recipe (latent_dim 100, hidden 128): 100 -> Dense 128 -> LeakyReLU(0.01) -> BatchNorm -> Dense 784 tanh
        h = layers.Dense(cfg["hidden"], name="g_dense")(h)
        h = layers.LeakyReLU(negative_slope=0.01, name="g_lrelu")(h)
        h = layers.BatchNormalization(name="g_bn")(h)
        h = layers.Dense(h_img * w_img * c_img, activation="tanh", name="g_out")(h)
        out = layers.Reshape((h_img, w_img, c_img), name="g_image")(h)
    else:
        # DCGAN: Dense -> 7x7x2f -> ConvT 14x14xf -> ConvT 28x28xC (tanh).
        f = cfg["filters"]
        h = layers.Dense((h_img // 4) * (w_img // 4) * 2 * f, use_bias=False, name="g_dense")(h)
        h = layers.BatchNormalization(name="g_bn0")(h)
        h = layers.ReLU(name="g_relu0")(h)
        h = layers.Reshape((h_img // 4, w_img // 4, 2 * f), name="g_7x7")(h)
        h = layers.Conv2DTranspose(f, 4, strides=2, padding="same", use_bias=False, name="g_up1")(h)
        h = layers.BatchNormalization(name="g_bn1")(h)
        h = layers.ReLU(name="g_relu1")(h)
        out = layers.Conv2DTranspose(c_img, 4, strides=2, padding="same", activation="tanh", name="g_up2")(h)
    return keras.Model(_bare_if_one(inputs), out, name="generator")


def _bare_if_one(inputs):
    """A lone input is declared bare, not as a list of one: callers pass it alone (g_inputs, d_inputs), and
    Keras warns when a call's structure differs from the declared one."""
    return inputs if len(inputs) > 1 else inputs[0]


def build_discriminator(cfg):
    """image (N, H, W, C) in [-1, 1] [+ label (N,)] -> logit (N, 1).

    Conditional: a projection discriminator (Miyato & Koyama 2018): logit = w.h + embed(label).h,
    with h the features before the output layer, so the label decides which features count."""
    h_img, w_img, c_img = cfg["shape"]
    x = keras.Input(shape=(h_img, w_img, c_img), name="image")
    inputs = [x]
    if cfg["arch"] == "mlp":
        # The recipe (hidden 128): 784 -> Dense 128 -> LeakyReLU(0.01) -> Dense 1 (a logit here, see above)
        h = layers.Flatten(name="d_flat")(x)
        h = layers.Dense(cfg["hidden"], name="d_dense")(h)
        h = layers.LeakyReLU(negative_slope=0.01, name="d_lrelu")(h)
    else:
        # DCGAN: 28x28 -> Conv 14x14xf -> Conv 7x7x2f -> Dense 1.
        f = cfg["filters"]
        h = layers.Conv2D(f, 4, strides=2, padding="same", name="d_conv1")(x)
        h = layers.LeakyReLU(negative_slope=0.2, name="d_lrelu1")(h)
        h = layers.Conv2D(2 * f, 4, strides=2, padding="same", name="d_conv2")(h)
        h = layers.LeakyReLU(negative_slope=0.2, name="d_lrelu2")(h)
        h = layers.Flatten(name="d_flat")(h)
    out = layers.Dense(1, name="d_logit")(h)
    if cfg["conditional"]:
        label = keras.Input(shape=(), dtype="int32", name="label")
        inputs.append(label)
        embed = layers.Embedding(cfg["n_classes"], h.shape[-1], name="d_label_embed")(label)
        out = layers.Add(name="d_logit_projected")([out, layers.Dot(axes=1, name="d_projection")([embed, h])])
    return keras.Model(_bare_if_one(inputs), out, name="discriminator")


def gan_config(gan, *, shape, n_classes, value_range):
    """The construction arguments saved with a GAN (config.json) and used to rebuild it: the network
    params of gan (a genlab.params.Gan) and the data's shape, classes and value range."""
    if gan.arch not in GAN_ARCHS:
        raise GenlabError(f"gan.arch must be one of {', '.join(GAN_ARCHS)}, got {gan.arch!r}")
    shape = [int(s) for s in shape]
    if gan.arch == "dcgan" and (shape[0] % 4 or shape[1] % 4):
        raise GenlabError(f"gan.arch dcgan needs image sides divisible by 4, got {shape}: use gan.arch mlp")
    return {"arch": gan.arch, "latent_dim": int(gan.latent_dim), "conditional": bool(gan.conditional),
            "hidden": int(gan.hidden), "filters": int(gan.filters), "shape": shape,
            "n_classes": int(n_classes), "value_range": [float(v) for v in value_range]}


class GAN:
    """A generator/discriminator pair built from `config` (see gan_config)."""

    family = "gan"

    def __init__(self, config):
        self.config = dict(config)
        self.generator = build_generator(self.config)
        self.discriminator = build_discriminator(self.config)
        self._gen_fn = None

    @property
    def latent_dim(self):
        return self.config["latent_dim"]

    @property
    def conditional(self):
        return self.config["conditional"]

    @property
    def n_classes(self):
        return self.config["n_classes"]

    def networks(self):
        """Name -> keras model, in a fixed order (used for weights files and checkpoints)."""
        return {"generator": self.generator, "discriminator": self.discriminator}

    def g_inputs(self, z, labels):
        return [z, labels] if self.conditional else z

    def d_inputs(self, x, labels):
        return [x, labels] if self.conditional else x

    def check_labels(self, labels, n):
        """labels -> int32 (n,) array; a clear error for an unconditional model or a bad class."""
        if not self.conditional:
            raise GenlabError("this GAN is unconditional (gan.conditional: false): it cannot generate a "
                              "chosen class; train it with gan.conditional: true")
        labels = np.asarray(labels)
        if labels.ndim == 0:
            labels = np.full(n, labels)
        if labels.shape != (n,) or not np.issubdtype(labels.dtype, np.integer):
            raise GenlabError(f"labels must be {n} integer class ids, got an array of shape {labels.shape}")
        if labels.min() < 0 or labels.max() >= self.n_classes:
            raise GenlabError(f"labels must be class ids in 0..{self.n_classes - 1}, "
                              f"got {labels.min()}..{labels.max()}")
        return labels.astype(np.int32)

    def generate(self, n, seed, labels=None, batch_size=1000, return_labels=False):
        """n images in the data range (float32 (n, H, W, C)), from z ~ N(0, I) drawn with `seed`.

        labels: None (a conditional GAN then draws classes uniformly with the same seed), one class
        id for all, or n class ids. return_labels=True also returns the int32 labels used (or None).
        """
        rng = np.random.default_rng(seed)
        z = rng.standard_normal((n, self.latent_dim)).astype(np.float32)
        if self.conditional:
            labels = (rng.integers(0, self.n_classes, n).astype(np.int32) if labels is None
                      else self.check_labels(labels, n))
        elif labels is not None:
            self.check_labels(labels, n)
        lo, hi = self.config["value_range"]
        images = ((self._tanh_images(z, labels, batch_size) + 1.0) * 0.5 * (hi - lo) + lo).astype(np.float32)
        return (images, labels if self.conditional else None) if return_labels else images

    def decode(self, z, labels=None, batch_size=1000):
        """Given codes z (N, latent_dim) (and N class ids for a conditional GAN) -> images in [0, 1],
        float32 (N, H, W, C) (for figures: what generate gives for those codes, mapped to [0, 1])."""
        z = np.asarray(z, np.float32)
        if self.conditional and labels is None:
            raise GenlabError("this GAN is conditional: give a class id for every code")
        if labels is not None:
            labels = self.check_labels(labels, len(z))
        return np.clip((self._tanh_images(z, labels, batch_size) + 1.0) * 0.5, 0.0, 1.0).astype(np.float32)

    def _tanh_images(self, z, labels, batch_size):
        """The generator's output in [-1, 1] for z (float32) and int32 labels (conditional), in
        batches through one compiled function."""
        if self._gen_fn is None:
            self._gen_fn = tf.function(lambda *a: self.generator(list(a) if len(a) > 1 else a[0], training=False),
                                       reduce_retracing=True)
        chunks = []
        for i in range(0, len(z), batch_size):
            args = (z[i:i + batch_size],) + ((labels[i:i + batch_size],) if self.conditional else ())
            chunks.append(self._gen_fn(*args).numpy())
        return np.concatenate(chunks) if chunks else np.zeros((0, *self.config["shape"]), np.float32)


def _bce_logits(labels_value, logits):
    return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(
        labels=tf.fill(tf.shape(logits), labels_value), logits=logits))


def grad_loss(opt, loss, replicas):
    """The loss to differentiate: divided by the number of replicas (the optimizer sums the
    replicas' gradients, so the update is that of the global batch mean) and scaled by the
    optimizer's loss scale (fp16 LossScaleOptimizer; the identity otherwise). Call inside the tape."""
    return opt.scale_loss(loss / replicas if replicas > 1 else loss)


def gan_losses(real_logits, fake_logits, fake_logits_g, loss):
    """(d_loss, g_loss) from discriminator logits. loss "ns": the recipe's BCE discriminator loss
    (BCE(D(x), 1) + BCE(D(G(z)), 0)) / 2 and the non-saturating generator loss BCE(D(G(z)), 1);
    "hinge" (Lim & Ye 2017, as in SN-GAN/BigGAN): mean relu(1 - D(x)) + mean relu(1 + D(G(z))) and
    -mean D(G(z))."""
    if loss == "hinge":
        d_loss = tf.reduce_mean(tf.nn.relu(1.0 - real_logits)) + tf.reduce_mean(tf.nn.relu(1.0 + fake_logits))
        return d_loss, None if fake_logits_g is None else -tf.reduce_mean(fake_logits_g)
    if loss != "ns":
        raise GenlabError(f"gan.loss must be one of {', '.join(GAN_LOSSES)}, got {loss!r}")
    return (0.5 * (_bce_logits(1.0, real_logits) + _bce_logits(0.0, fake_logits)),
            None if fake_logits_g is None else _bce_logits(1.0, fake_logits_g))


def gan_step(model, opt_d, opt_g, real, real_labels, z, fake_labels, replicas=1, *, loss):
    """One GAN iteration (graph code): a discriminator update, then a generator update, with one
    generator forward pass.

    real: (B, H, W, C) in [-1, 1]; z: (B, latent_dim); labels int32 (B,) (ignored if unconditional).
    The generator makes the fakes once; the discriminator takes one Adam step on d_loss over the real
    and fake halves (loss "ns": (BCE(D(x), 1) + BCE(D(G(z)), 0)) / 2, the recipe's d_loss as one update
    instead of two; see gan_losses for "hinge"); the generator then takes one step on its loss (ns: the
    non-saturating BCE(D(G(z)), 1)) of the same fakes through the updated discriminator, as the recipe
    does with the same z (and PyTorch's DCGAN example with the same fakes). Returns dict d_loss, g_loss,
    d_real = mean sigmoid D(x), d_fake = mean sigmoid D(G(z)).
    Under mixed precision the networks compute in float16/bfloat16; logits and losses are float32.
    replicas: this is one replica's share of the global batch (see grad_loss).
    """
    g, d = model.generator, model.discriminator
    batch = tf.shape(real)[0]
    with tf.GradientTape() as g_tape:
        fake = g(model.g_inputs(z, fake_labels), training=True)
        with g_tape.stop_recording():  # the discriminator's step is not part of the generator's gradient
            with tf.GradientTape() as tape:
                logits = d(model.d_inputs(tf.concat([tf.cast(real, fake.dtype), fake], 0),
                                          tf.concat([real_labels, fake_labels], 0)), training=True)
                logits = tf.cast(logits, tf.float32)
                real_logits, fake_logits = logits[:batch], logits[batch:]
                d_loss, _ = gan_losses(real_logits, fake_logits, None, loss)
                scaled = grad_loss(opt_d, d_loss, replicas)
            opt_d.apply_gradients(zip(tape.gradient(scaled, d.trainable_variables), d.trainable_variables))
        fake_logits_g = d(model.d_inputs(fake, fake_labels), training=True)
        _, g_loss = gan_losses(real_logits, fake_logits, tf.cast(fake_logits_g, tf.float32), loss)
        scaled = grad_loss(opt_g, g_loss, replicas)
    opt_g.apply_gradients(zip(g_tape.gradient(scaled, g.trainable_variables), g.trainable_variables))
    return {"d_loss": d_loss, "g_loss": g_loss,
            "d_real": tf.reduce_mean(tf.sigmoid(real_logits)),
            "d_fake": tf.reduce_mean(tf.sigmoid(fake_logits))}
