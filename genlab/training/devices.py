"""Where and how training runs: tf.distribute strategy, mixed precision, XLA, streamed batches.

`Placement(settings, arch)` turns the `train.strategy`, `train.mixed_precision` and `train.xla`
params into what genlab.training.loop needs:
  strategy       tf.distribute strategy (the default one for "default": the plain single-device
                 path), `replicas` = number of replicas in sync, `chief` = this process writes files
  scope()        a context in which the model, optimizers and training state are created: the
                 strategy's scope plus the Keras mixed-precision policy (restored on exit)
  jit_compile    whether the compiled loop uses XLA
  notes          one-line notes for the user (e.g. mixed precision ignored on a CPU)
The global batch (train.batch_size) is split over the replicas: replica r trains on rows
[r*b, (r+1)*b) of the batch, b = batch_size / replicas, drawn from the same stateless RNG as the
single-device run, so the global batch is the same whatever the strategy.

Environment (not params: they say where to run, not what): TF_CONFIG (the cluster, for
multi_worker); GENLAB_CPU_DEVICES=N splits the CPU into N logical devices, so that `mirrored`
can be tried (and tested) on a machine without GPUs.

`host_batches` is the streaming input (train.data_in_memory: false): a tf.data pipeline that draws
the same batch indices as the in-memory path and reads those rows from memory-mapped .npy arrays.
"""

import contextlib
import json
import os

import keras
import numpy as np
import tensorflow as tf

from genlab.errors import GenlabError
from genlab.params import PRECISIONS, STRATEGIES


def _cpu_devices_from_env():
    """Apply GENLAB_CPU_DEVICES=N (N logical CPU devices); must run before TensorFlow initializes."""
    n = os.environ.get("GENLAB_CPU_DEVICES", "")
    if not n:
        return
    if not n.isdigit() or int(n) < 1:
        raise GenlabError(f"GENLAB_CPU_DEVICES must be a positive integer, got {n!r}: unset it or fix it")
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        if len(tf.config.get_logical_device_configuration(cpu) or []) != int(n):
            tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * int(n))
    except RuntimeError:
        raise GenlabError("GENLAB_CPU_DEVICES was set after TensorFlow started: set it in the environment "
                          "before the stage runs") from None


def make_strategy(name):
    """The tf.distribute strategy for train.strategy `name` (see the module docstring)."""
    if name not in STRATEGIES:
        raise GenlabError(f"train.strategy must be one of {', '.join(STRATEGIES)}, got {name!r}")
    _cpu_devices_from_env()
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
        return tf.distribute.MirroredStrategy(devices)
    if "TF_CONFIG" not in os.environ:
        raise GenlabError("train.strategy multi_worker needs the cluster in the TF_CONFIG environment variable "
                          "(see docs/scaling.md, Devices and distributed training), or use train.strategy mirrored")
    try:
        json.loads(os.environ["TF_CONFIG"])
    except ValueError:
        raise GenlabError("TF_CONFIG is not valid JSON: fix the environment variable") from None
    return tf.distribute.MultiWorkerMirroredStrategy()


def is_chief(strategy):
    """True for the process that writes checkpoints, logs and the model (worker 0, or the chief)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    if resolver.task_type == "chief":
        return True
    return (resolver.task_type == "worker" and resolver.task_id == 0
            and "chief" not in resolver.cluster_spec().as_dict())


def use_xla(arch, jit_compile="auto"):
    """Whether to XLA-compile the training loop. "auto": always for MLPs (measured 1.3x faster on
    CPU); for convolutional nets only on a GPU (XLA's CPU convolutions measured 13x slower)."""
    if jit_compile != "auto":
        return bool(jit_compile)
    return arch == "mlp" or has_gpu()


def has_gpu():
    return bool(tf.config.list_physical_devices("GPU"))


@contextlib.contextmanager
def mixed_precision(name, force=False):
    """Set the Keras mixed-precision policy for `name` (none | bf16 | fp16) inside the block, and
    restore the previous one after. On a CPU the policy is not set unless force=True (tests)."""
    policy = PRECISIONS[name]
    if policy is None or not (force or has_gpu()):
        yield False
        return
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        yield True
    finally:
        keras.config.set_dtype_policy(previous)


class Placement:
    """Strategy, precision and XLA decisions for one training run (see the module docstring)."""

    def __init__(self, settings, arch, force_mixed_precision=False):
        self.kind = settings.strategy
        distributed = self.kind != "default"
        if distributed and str(settings.xla).lower() == "true":
            raise GenlabError(f"train.xla true is not supported with train.strategy {self.kind} (XLA cannot "
                              "compile one step over variables on several devices): use train.xla auto or false")
        self.strategy = make_strategy(settings.strategy)
        self.replicas = int(self.strategy.num_replicas_in_sync)
        self.chief = is_chief(self.strategy)
        if settings.batch_size % self.replicas:
            raise GenlabError(f"train.batch_size {settings.batch_size} cannot be split over {self.replicas} "
                              f"replicas: use a multiple of {self.replicas}")
        self.notes = []
        if self.replicas > 1:
            self.notes.append(f"note: train.strategy {self.kind}: {self.replicas} replicas, "
                              f"{settings.batch_size // self.replicas} images each per iteration")
        self.precision = settings.mixed_precision
        self._force = force_mixed_precision
        if self.precision != "none" and not (force_mixed_precision or has_gpu()):
            self.notes.append(f"note: train.mixed_precision {self.precision} is ignored on a CPU (no GPU found); "
                              "training in float32")
            self.precision = "none"
        self.loss_scale = self.precision == "fp16"
        xla = {"true": True, "false": False}.get(str(settings.xla).lower(), "auto")
        self.jit_compile = use_xla(arch, xla) and not distributed

    @contextlib.contextmanager
    def scope(self):
        with self.strategy.scope(), mixed_precision(self.precision, force=self._force):
            yield

    def optimizer(self, inner):
        """The optimizer to use: `inner`, wrapped in a LossScaleOptimizer for fp16."""
        return keras.optimizers.LossScaleOptimizer(inner) if self.loss_scale else inner


def host_batches(draw_indices, arrays, transforms, seed, start, stop, batch_size):
    """tf.data: for iteration s in [start, stop), the rows draw_indices(key(seed, s), batch_size) of
    each memory-mapped array, passed through its transform (numpy, elementwise, same as in memory).

    arrays: name -> numpy array or memmap (N, ...); transforms: name -> f(rows) -> float32/int32 rows.
    Yields dicts name -> tensor (batch_size, ...), prefetched on the host."""
    names = sorted(arrays)
    dtypes = [tf.as_dtype(transforms[k](arrays[k][:1]).dtype) for k in names]
    shapes = [(batch_size, *arrays[k].shape[1:]) for k in names]

    def read(idx):
        idx = np.asarray(idx)
        return [np.ascontiguousarray(transforms[k](arrays[k][idx])) for k in names]

    def to_batch(step):
        idx = draw_indices(tf.stack([tf.constant(seed, tf.int64), step]), batch_size)
        rows = tf.numpy_function(read, [idx], dtypes, stateful=False)
        return {k: tf.ensure_shape(r, s) for k, r, s in zip(names, rows, shapes)}

    ds = tf.data.Dataset.range(start, stop).map(to_batch, num_parallel_calls=2, deterministic=True)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    return ds.with_options(options).prefetch(4)


def sync_batch_norm(model):
    """Make every BatchNormalization layer of the model's networks use the statistics of the global
    batch (all-reduced over replicas), as a single device would, instead of its replica's share.
    Only for training under a strategy with several replicas (it changes the single-device numerics)."""
    for net in model.networks().values():
        for layer in net._flatten_layers():
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.synchronized = True
