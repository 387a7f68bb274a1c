"""Training of the VAE / plain autoencoder (library side of the train_vae stage).

`train_vae` builds the model from the stage's params, puts the training images on the device as
[0, 1] Bernoulli targets, runs genlab.training.loop.fit with `VaeTask`'s step (random batch indices and
reparameterization noise from stateless RNG keyed by (seed, iteration)), logs the losses on the
whole validation split at every log interval, and writes the model folder atomically only when
training has finished without divergence. See genlab.models.vae for the likelihood and the loss.
"""

import sys

import keras
import numpy as np
import tensorflow as tf

from genlab.data import processed
from genlab.data.mosaic import tile_uint8
from genlab.models import vae as vae_model
from genlab.models.vae import VAE, vae_config, vae_losses, vae_step
from genlab.training import devices
from genlab.training.loop import RNG_ALG, TrainSettings, device_data, train


class VaeTask:
    """VAE model + Adam + the data (resident on the device, or streamed from a memory-mapped array
    when in_memory is False), the per-iteration step (graph code) and validation losses.
    vae: the genlab.params.Vae (lr, beta, prior, prior_components are used here).
    optimizer: wraps the Adam (genlab.training.devices.Placement.optimizer: loss scaling for fp16)."""

    name = "train_vae"
    hint = "lower vae.lr, or check the training data for NaN/Inf"
    val_batch = 1000

    def __init__(self, model, x, x_val, vae, seed, in_memory=True, optimizer=None):
        self.model, self.vae, self.seed, self.in_memory, self.n = model, vae, seed, in_memory, len(x)
        self.beta = float(vae.beta)
        self.prior, self.prior_components = vae.prior, int(vae.prior_components)
        self.value_range = model.config["value_range"]
        self._to_unit = lambda rows: processed.to_unit(rows, self.value_range)   # (N, H, W, C) in [0, 1]
        self.x_host = x                                                      # in the data range
        if in_memory:
            self.x = device_data(self._to_unit(x))
        self.x_val = x_val
        self.opt = (optimizer or (lambda opt: opt))(keras.optimizers.Adam(learning_rate=vae.lr))
        self.opt.build(model.encoder.trainable_variables + model.decoder.trainable_variables)
        self.metric_names = ("loss", "reconstruction", "kl") if model.variational else ("loss", "reconstruction")
        spec = tf.TensorSpec([None, *model.config["shape"]], tf.float32)
        self._val_fn = tf.function(lambda x, key: vae_losses(model, x, key, self.beta),
                                   input_signature=[spec, tf.TensorSpec([2], tf.int64)])

    def variables(self):
        return self.model.encoder.variables + self.model.decoder.variables + self.opt.variables

    def draw(self, key, batch_size):
        """key: int64 (2,) = (seed, iteration). Batch indices and reparameterization noise."""
        seeds = tf.random.experimental.stateless_split(key, 2, alg=RNG_ALG)
        return {"idx": tf.random.stateless_uniform([batch_size], seeds[0], 0, self.n, dtype=tf.int32, alg=RNG_ALG),
                "eps": tf.random.stateless_normal([batch_size, self.model.latent_dim], seeds[1], alg=RNG_ALG)}

    def gather(self, idx):
        return {"x": tf.gather(self.x, idx)}

    def host_batches(self, seed, start, stop, batch_size):
        return devices.host_batches(lambda key, b: self.draw(key, b)["idx"], {"x": self.x_host},
                                    {"x": self._to_unit}, seed, start, stop, batch_size)

    def update(self, batch, draws, replicas):
        return vae_step(self.model, self.opt, batch["x"], None, self.beta, eps=draws["eps"], replicas=replicas)

    def extra_metrics(self, step, means):
        """Mean losses on the whole validation split, with fixed noise so values compare over time."""
        n = len(self.x_val)
        if n == 0:
            return {}
        sums = dict.fromkeys(self.metric_names, 0.0)
        for i in range(0, n, self.val_batch):
            xb = self._to_unit(self.x_val[i:i + self.val_batch])
            losses = self._val_fn(xb, tf.constant([self.seed, -1 - i], tf.int64))
            for k in sums:
                sums[k] += float(losses[k]) * len(xb)
        return {f"val_{k}": v / n for k, v in sums.items()}

    def log_images(self, live, step):
        """An 8x8 grid of fixed-seed samples (for the AE only once its code Gaussian is fitted)."""
        m = self.model
        if m.variational or m.config.get("code_gaussian"):
            x01 = processed.to_unit(m.generate(64, self.seed), m.config["value_range"])
            live.log_image(f"samples/{step}.png", tile_uint8(x01, 8))

    def after_update(self, step):
        """Nothing to do after a VAE update."""

    def snapshot(self):
        """The decoder's variables (quality curves sample them from the N(0, I) prior)."""
        return [np.asarray(v.numpy()) for v in self.model.decoder.variables]

    def finish(self):
        """Fit what generate() samples from to the training codes: with vae.prior gmm a Gaussian
        mixture (genlab.models.density), else for the AE one Gaussian (a VAE samples N(0, I)).
        Deterministic, so repeating it after a resume at the end gives the same model."""
        if self.model.variational and self.prior != "gmm":
            return
        step = 10 * self.val_batch   # in chunks, so that a memory-mapped split is never copied whole
        codes = np.concatenate([self.model.encode(self._to_unit(self.x_host[i:i + step]))[0]
                                for i in range(0, self.n, step)])
        if self.prior == "gmm":
            self.model.fit_code_gmm(codes, self.prior_components, seed=self.seed)
        else:
            self.model.fit_code_gaussian(codes=codes)


AFTER_TRAINING = ("prior", "prior_components", "temperature")   # vae.* params used only after the last iteration


def train_vae(dataset, model_dir, ckpt_dir, live_dir, *, vae, settings: TrainSettings, jit_compile=None,
              on_log=None, out=None):
    """Train a VAE (or plain AE) on dataset["train"], validating on dataset["val"]; save it to
    model_dir and return it. vae (a genlab.params.Vae) and settings are the stage's params; every
    vae.* value is part of the run's fingerprint (settings.iterations aside: a longer run continues a
    finished shorter one; AFTER_TRAINING aside too: they only decide what is fitted after the last
    iteration, so changing them refits from the finished run's final checkpoint).
    settings.strategy, mixed_precision, xla and data_in_memory decide
    where and how it runs (genlab.training.devices); jit_compile ("auto", True, False) overrides xla."""
    args = {k: v for k, v in vae.asdict().items() if k not in AFTER_TRAINING}
    meta = dataset["meta"]
    cfg = vae_config(vae, shape=meta["shape"], value_range=meta["range"])
    return train(lambda placement: VaeTask(VAE(cfg), dataset["train"][0], dataset["val"][0], vae, settings.seed,
                                           in_memory=settings.data_in_memory, optimizer=placement.optimizer),
                 stage="train_vae", args=args, arch=vae.arch, settings=settings, dataset=dataset,
                 splits=["train", "val"], modules=[vae_model, sys.modules[__name__]], model_dir=model_dir,
                 ckpt_dir=ckpt_dir, live_dir=live_dir, jit_compile=jit_compile, on_log=on_log, out=out)
