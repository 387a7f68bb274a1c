"""Training of the GAN (library side of the train_gan stage).

`train_gan` builds the GAN from the stage's params, puts the training images on the device (in
the generator's tanh range [-1, 1]), runs genlab.training.loop.fit with `GanTask`'s step (random batch
indices, noise and fake labels from stateless RNG keyed by (seed, iteration)), and writes the model
folder atomically only when training has finished without divergence.

The gan.* params travel as one checked genlab.params.Gan (`gan`): gan_config takes the network's,
GanTask the optimisers' and the rest, and the run's fingerprint covers them all. Options: `gan.loss`
"hinge" (params.yaml's choice, made with benchmarks/bench_quality.py) or "ns" (the recipe's
non-saturating BCE); `gan.d_lr` (a discriminator learning rate of its own, two time-scale update;
0 = the generator's `lr`); `gan.ema` (decay of an exponential moving average of the generator's
weights, Yazici et al. 2019; the averaged generator is what the grids show and what is saved; 0 = off).
"""

import sys

import keras
import numpy as np
import tensorflow as tf

from genlab.data import processed
from genlab.data.mosaic import tile_uint8
from genlab.models import gan as gan_model
from genlab.models.gan import GAN, gan_config, gan_step
from genlab.training import devices
from genlab.training.loop import RNG_ALG, TrainSettings, device_data, train

EMA_WARMUP = 10.0  # effective decay min(ema, (1 + t) / (EMA_WARMUP + t)): early averages forget the init


class GanTask:
    """GAN model + two Adam optimizers + the data (resident on the device, or streamed from a
    memory-mapped array when in_memory is False), and the per-iteration step (graph code).
    gan: the genlab.params.Gan (lr, beta_1, beta_2, d_lr, loss, ema are used here).
    optimizer: wraps each Adam (genlab.training.devices.Placement.optimizer: loss scaling for fp16)."""

    name = "train_gan"
    metric_names = ("d_loss", "g_loss", "d_real", "d_fake")
    hint = "lower gan.lr, or check the training data for NaN/Inf"

    def __init__(self, model, x, y, gan, seed, in_memory=True, optimizer=None):
        self.model, self.gan, self.seed, self.in_memory, self.n = model, gan, seed, in_memory, len(x)
        self.loss, self.ema = gan.loss, float(gan.ema)
        lo, hi = model.config["value_range"]
        self._to_tanh = lambda rows: ((rows - lo) / (hi - lo) * 2.0 - 1.0).astype(np.float32)  # -> [-1, 1]
        if in_memory:
            self.x = device_data(self._to_tanh(x))          # (N, H, W, C) in [-1, 1]
            self.y = device_data(np.asarray(y, np.int32))
        else:
            self.x_host, self.y_host = x, y
        wrap = optimizer or (lambda opt: opt)
        adam = {"beta_1": gan.beta_1, "beta_2": gan.beta_2}
        self.opt_d = wrap(keras.optimizers.Adam(learning_rate=gan.d_lr or gan.lr, **adam))
        self.opt_g = wrap(keras.optimizers.Adam(learning_rate=gan.lr, **adam))
        self.opt_d.build(model.discriminator.trainable_variables)
        self.opt_g.build(model.generator.trainable_variables)
        # EMA copies of every generator variable (weights and BatchNorm statistics)
        self.ema_vars = ([tf.Variable(v.value, trainable=False, name=f"ema_{i}") for i, v in
                          enumerate(model.generator.variables)] if self.ema else [])

    def variables(self):
        m = self.model
        return (m.generator.variables + m.discriminator.variables + self.opt_d.variables + self.opt_g.variables
                + self.ema_vars)

    def draw(self, key, batch_size):
        """key: int64 (2,) = (seed, iteration). Batch indices (with replacement, like the recipe),
        noise and fake labels of the global batch."""
        seeds = tf.random.experimental.stateless_split(key, 3, alg=RNG_ALG)
        return {"idx": tf.random.stateless_uniform([batch_size], seeds[0], 0, self.n, dtype=tf.int32, alg=RNG_ALG),
                "z": tf.random.stateless_normal([batch_size, self.model.latent_dim], seeds[1], alg=RNG_ALG),
                "fake_labels": tf.random.stateless_uniform([batch_size], seeds[2], 0, self.model.n_classes,
                                                           dtype=tf.int32, alg=RNG_ALG)}

    def gather(self, idx):
        return {"x": tf.gather(self.x, idx), "y": tf.gather(self.y, idx)}

    def host_batches(self, seed, start, stop, batch_size):
        return devices.host_batches(lambda key, b: self.draw(key, b)["idx"], {"x": self.x_host, "y": self.y_host},
                                    {"x": self._to_tanh, "y": lambda rows: np.asarray(rows, np.int32)},
                                    seed, start, stop, batch_size)

    def update(self, batch, draws, replicas):
        return gan_step(self.model, self.opt_d, self.opt_g, batch["x"], batch["y"], draws["z"],
                        draws["fake_labels"], replicas, loss=self.loss)

    def after_update(self, step):
        """Graph code after each iteration's update (step = the iteration just done, from 0; outside
        any replica context): with gan.ema, move the averaged generator weights toward the new ones."""
        if not self.ema:
            return
        t = tf.cast(step, tf.float32)
        decay = tf.minimum(self.ema, (1.0 + t) / (EMA_WARMUP + t))
        for e, v in zip(self.ema_vars, self.model.generator.variables):
            e.assign(decay * e + (1.0 - decay) * tf.cast(v.value, e.dtype))

    def _use_ema(self):
        """Copy the averaged weights into the generator; returns the raw weights (to restore)."""
        raw = [v.numpy() for v in self.model.generator.variables]
        for v, e in zip(self.model.generator.variables, self.ema_vars):
            v.assign(e)
        return raw

    def extra_metrics(self, step, means):
        return {}

    def snapshot(self):
        """The generator's variables as sampled: the averaged ones with gan.ema (quality curves)."""
        return [np.asarray(v.numpy()) for v in (self.ema_vars or self.model.generator.variables)]

    def log_images(self, live, step):
        """A fixed-noise grid: 8x8 samples, or for a conditional GAN one row of 8 per class (from the
        averaged generator when gan.ema is on)."""
        m = self.model
        raw = self._use_ema() if self.ema else None
        labels = np.repeat(np.arange(m.n_classes), 8) if m.conditional else None
        x = m.generate(8 * m.n_classes if m.conditional else 64, self.seed, labels=labels)
        if raw is not None:
            for v, value in zip(m.generator.variables, raw):
                v.assign(value)
        live.log_image(f"samples/{step}.png", tile_uint8(processed.to_unit(x, m.config["value_range"]), 8))

    def finish(self):
        """With gan.ema: the averaged generator becomes the model's generator (what is saved). Done
        again after a resume at the end, it copies the same averages: the result is the same."""
        if self.ema:
            self._use_ema()


def gan_task(dataset, gan, *, seed, placement=None, in_memory=True):
    """A GanTask for dataset["train"] with a GAN built from gan (a genlab.params.Gan; also used by
    benchmarks). Call it inside placement.scope() when a placement (genlab.training.devices.Placement)
    is given."""
    meta = dataset["meta"]
    cfg = gan_config(gan, shape=meta["shape"], n_classes=meta["n_classes"], value_range=meta["range"])
    x, y = dataset["train"]
    model = GAN(cfg)
    if placement is not None and placement.replicas > 1:
        devices.sync_batch_norm(model)
    return GanTask(model, x, y, gan, seed, in_memory=in_memory,
                   optimizer=placement.optimizer if placement is not None else None)


def train_gan(dataset, model_dir, ckpt_dir, live_dir, *, gan, settings: TrainSettings, jit_compile=None,
              on_log=None, out=None):
    """Train a GAN on dataset["train"], save it to model_dir, return it.

    dataset: {"meta": meta, "train": (x, y)} (genlab.training.loop.load_training_data), x in meta["range"]
    (a memory-mapped x with settings.data_in_memory False). gan (a genlab.params.Gan) and settings are
    the stage's params, and every gan.* value is part of the run's fingerprint, so a checkpoint made
    with other values is not resumed (settings.iterations aside: a longer run continues a finished
    shorter one, genlab.training.loop). settings.strategy, mixed_precision and xla decide where and how
    it runs (genlab.training.devices); jit_compile ("auto", True, False) overrides xla.
    """
    return train(lambda placement: gan_task(dataset, gan, seed=settings.seed, placement=placement,
                                            in_memory=settings.data_in_memory),
                 stage="train_gan", args=gan.asdict(), arch=gan.arch, settings=settings, dataset=dataset,
                 splits=["train"], modules=[gan_model, sys.modules[__name__]], model_dir=model_dir,
                 ckpt_dir=ckpt_dir, live_dir=live_dir, jit_compile=jit_compile, on_log=on_log, out=out)
