"""The evaluator: a small CNN classifier trained on real training images only.

Its penultimate-layer features and its class probabilities are the yardstick for every
generative model (genlab.evaluation.metrics, genlab.evaluation.scoring). It is saved self-describingly as
  evaluator.keras  the whole Keras model (architecture + weights; Keras's own serialization)
  evaluator.json   construction arguments, input shape/range, dataset, accuracies, history
so sample/evaluate never restate the architecture.

Architecture (build_evaluator): for each entry of `filters` a 3x3 conv (same padding, no bias)
+ batch norm (momentum 0.9: usable statistics even after short runs) + ReLU + 2x2 max-pool;
then dropout, Dense(feature_dim, ReLU) named "features", dropout, Dense(n_classes) logits.
Inputs are images in the processed range (e.g. [-1, 1]). No XLA: on CPU it made training 4-5x slower.

Training (train_evaluator) runs Keras `fit` with `keras.callbacks.BackupAndRestore`: the training
state is backed up at every epoch end, and an interrupted run resumes after its last finished epoch.
"""

import json
import shutil
import time
import weakref
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from genlab import identity
from genlab.errors import GenlabError
from genlab.io import ensure_space, write_json

FORMAT = "genlab-evaluator/1"
MODEL_FILE = "evaluator.keras"
INFO_FILE = "evaluator.json"
STEPS_PER_CALL = 32  # training steps per compiled call (Ctrl-C is handled between calls)
FEATURES_LAYER = "features"

# (features, logits) inference functions, one per live model; built on first use.
_INFER = weakref.WeakKeyDictionary()


def build_evaluator(input_shape, n_classes, *, filters, feature_dim, dropout):
    """Return the (uncompiled) evaluator keras.Model mapping images to class logits."""
    inputs = keras.Input(tuple(input_shape), name="images")
    h = inputs
    for i, f in enumerate(filters):
        h = keras.layers.Conv2D(f, 3, padding="same", use_bias=False, name=f"conv{i}")(h)
        h = keras.layers.BatchNormalization(momentum=0.9, name=f"bn{i}")(h)
        h = keras.layers.ReLU(name=f"relu{i}")(h)
        h = keras.layers.MaxPooling2D(name=f"pool{i}")(h)
    h = keras.layers.Flatten(name="flatten")(h)
    h = keras.layers.Dropout(dropout, name="dropout0")(h)
    h = keras.layers.Dense(feature_dim, activation="relu", name=FEATURES_LAYER)(h)
    h = keras.layers.Dropout(dropout, name="dropout1")(h)
    logits = keras.layers.Dense(n_classes, name="logits")(h)
    return keras.Model(inputs, logits, name="evaluator")


def _check_xy(x, y, n_classes, what):
    if x.ndim != 4:
        raise GenlabError(f"{what} images must have shape (N, H, W, C), got {x.shape}")
    if len(x) != len(y):
        raise GenlabError(f"{what}: {len(x)} images but {len(y)} labels")
    if len(y) and (y.min() < 0 or y.max() >= n_classes):
        raise GenlabError(f"{what} labels must lie in 0..{n_classes - 1}, got {y.min()}..{y.max()}")


def train_evaluator(x, y, x_val, y_val, *, n_classes, filters, feature_dim, dropout,
                    epochs, warmup_epochs, batch_size, lr, seed, backup_dir=None, log=print):
    """Train the evaluator on (x, y); return (model, info) with the weights of the best epoch.

    Adam; the learning rate rises linearly from 0 to `lr` over the first warmup_epochs, then
    follows a cosine decay to 0 at the last step. Epoch e visits a permutation of the training
    images keyed by (seed, e) in full batches (the remainder is dropped), and its dropout masks are
    keyed by e too. The epoch with the best accuracy on (x_val, y_val) is kept (the last epoch if
    there are no validation images). Deterministic for a given seed on one machine.

    backup_dir: Keras `BackupAndRestore` folder. The whole training state (weights, batch-norm
    statistics, optimizer moments and step, best weights so far, history) is backed up at every
    epoch end; a later call with the same arguments resumes after the last finished epoch and gives
    bit-identical weights. A backup of other arguments or data is discarded, a corrupt one falls
    back to the previous epoch's (`double_checkpoint`) or starts over, with a warning on `log`.
    """

    x = np.asarray(x, dtype=np.float32)
    y = np.asarray(y, dtype=np.int32)
    x_val = np.asarray(x_val, dtype=np.float32)
    y_val = np.asarray(y_val, dtype=np.int32)
    _check_xy(x, y, n_classes, "training")
    _check_xy(x_val, y_val, n_classes, "validation")
    if not 0 <= warmup_epochs < epochs:
        raise GenlabError(f"evaluator warm-up of {warmup_epochs} epochs must be shorter than the {epochs} "
                          "training epochs: lower evaluator.warmup_epochs or raise evaluator.epochs")
    steps_per_epoch = len(x) // batch_size
    if steps_per_epoch < 1:
        raise GenlabError(f"evaluator batch size {batch_size} exceeds the {len(x)} training images: "
                          "lower evaluator.batch_size")
    build = dict(n_classes=n_classes, filters=list(filters), feature_dim=feature_dim, dropout=dropout)
    run = dict(epochs=epochs, warmup_epochs=warmup_epochs, batch_size=batch_size, lr=lr, seed=seed)

    def make():
        keras.utils.set_random_seed(seed)
        net = build_evaluator(x.shape[1:], n_classes, filters=filters, feature_dim=feature_dim, dropout=dropout)
        return _EpochTrainer.create(net, x, y, steps_per_epoch=steps_per_epoch, **run)

    start_epoch = 0
    callbacks = []
    if backup_dir is not None:
        fp = _run_fingerprint(build, run, x, y, x_val, y_val)
        start_epoch = _usable_backup(make(), backup_dir, fp, steps_per_epoch, epochs, log)
        callbacks = [keras.callbacks.BackupAndRestore(str(backup_dir), double_checkpoint=True,
                                                      delete_checkpoint=False)]
        if start_epoch:
            log(f"train_evaluator: resuming from epoch {start_epoch} of {epochs} ({backup_dir})")
    trainer = make()
    start = time.perf_counter()
    # the epoch callback goes first: it refuses a diverged epoch before BackupAndRestore saves it
    trainer.fit(np.zeros(steps_per_epoch, np.float32), batch_size=1, epochs=epochs, shuffle=False, verbose=0,
                callbacks=[_EpochEnd(trainer, x_val, y_val, epochs, log, backup_dir)] + callbacks)
    model, history, best_epoch, best_acc = trainer.result()
    info = {
        "build": {"input_shape": list(x.shape[1:]), "n_classes": int(n_classes),
                  "filters": list(filters), "feature_dim": int(feature_dim), "dropout": float(dropout)},
        "train": {**run, "n_train": len(x), "n_val": len(x_val), "best_epoch": best_epoch,
                  "resumed_from_epoch": start_epoch, "seconds": time.perf_counter() - start},
        "val_accuracy": best_acc if len(x_val) else None,
        "history": history,
    }
    return model, info


def _run_fingerprint(build, run, *arrays):
    """The identity of an evaluator training run (genlab.identity): its arguments, its data, the code
    of this module and of what it imports, and the environment."""
    return identity.digest({"build": build, "run": run, "data": identity.array_digest(*arrays),
                            "code": identity.code_digest(__name__), "environment": identity.environment()})


_WEIGHTS, _META = "latest.weights.h5", "training_metadata.json"   # BackupAndRestore's file names
_FINGERPRINT = "fingerprint.json"


def _usable_backup(scratch, backup_dir, fp, steps_per_epoch, epochs, log):
    """Check the BackupAndRestore files in backup_dir by loading them into `scratch` (a trainer of
    this run); return the epoch a resumed fit starts at (0: nothing usable, the folder is reset).

    The current pair (weights, metadata) is used if it loads and is consistent (the optimizer's
    step count is epoch * steps_per_epoch); otherwise the previous epoch's pair (.bkp) is put in
    its place. Keras writes these files in place, so a kill during a write leaves one of them torn
    or the two out of step: both are detected here."""
    d = Path(backup_dir)
    stored = d / _FINGERPRINT
    if (d / _WEIGHTS).exists() or (d / f"{_WEIGHTS}.bkp").exists():
        try:
            same = json.loads(stored.read_text()).get("fingerprint") == fp
        except (OSError, ValueError, AttributeError):
            same = False
        if not same:
            log(f"note: ignoring the evaluator checkpoint in {d}: made with other params, data or code; "
                "starting this run over")
        else:
            weights, meta = d / _WEIGHTS, d / _META
            for previous in (False, True):
                if previous and not (d / f"{_WEIGHTS}.bkp").exists():
                    break
                try:
                    if previous:  # as Keras does: the previous pair takes the place of the current one
                        for name in (_WEIGHTS, _META):
                            shutil.copyfile(d / f"{name}.bkp", d / name)
                    epoch = int(json.loads(meta.read_text())["epoch"])
                    scratch.load_weights(weights)
                    done = int(scratch.optimizer.iterations.numpy())
                    if done != epoch * steps_per_epoch or not 0 < epoch <= epochs:
                        raise ValueError(f"holds step {done}, its metadata says epoch {epoch}")
                except Exception as e:  # h5py, json and Keras raise many types for a torn file
                    which = "the previous epoch's" if previous else "the last"
                    log(f"warning: {which} evaluator checkpoint in {d} is unusable ({type(e).__name__}: "
                        f"{str(e)[:120]}){'' if previous else '; trying the previous one'}")
                    continue
                return epoch
            log(f"warning: no usable evaluator checkpoint in {d}; starting this run over")
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    write_json(stored, {"fingerprint": fp})
    return 0


class _EpochTrainer(keras.Model):
    """The evaluator wrapped for `fit`: its train_step draws batch `i` of epoch `e` from a permutation
    keyed by (seed, e), with `e, i` taken from the optimizer's step count (saved with the weights), so
    a run resumed by BackupAndRestore sees exactly the batches an uninterrupted one would. Besides the
    network and the optimizer, its saved state holds the best weights so far and the history."""

    @classmethod
    def create(cls, net, x, y, *, steps_per_epoch, epochs, warmup_epochs, batch_size, lr, seed):
        trainer = cls(net, x, y, steps_per_epoch, epochs, batch_size, seed)
        # linear warm-up from 0 to lr (fewer ReLU features die early), then cosine decay to 0 at the end
        schedule = keras.optimizers.schedules.CosineDecay(
            0.0 if warmup_epochs else lr, decay_steps=(epochs - warmup_epochs) * steps_per_epoch,
            warmup_target=lr if warmup_epochs else None, warmup_steps=warmup_epochs * steps_per_epoch)
        # several steps per compiled call (fewer Python round trips); epoch ends stay exact
        trainer.compile(optimizer=keras.optimizers.Adam(schedule), jit_compile=False,
                        steps_per_execution=min(STEPS_PER_CALL, steps_per_epoch))
        trainer(x[:1])
        trainer.optimizer.build(trainer.trainable_variables)
        return trainer

    def __init__(self, net, x, y, steps_per_epoch, epochs, batch_size, seed):
        super().__init__(name="evaluator_trainer")
        self.net = net
        self.seed, self.steps_per_epoch, self.batch_size = seed, steps_per_epoch, batch_size
        self._data = {"x": tf.constant(x), "y": tf.constant(y),  # on the device once; not saved
                      "order": tf.Variable(tf.zeros(len(x), tf.int32), trainable=False)}
        self.loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        self.loss_mean = keras.metrics.Mean(name="loss")
        self.best = [keras.Variable(v.value, trainable=False, name=f"best_{i}") for i, v in enumerate(net.weights)]
        self.best_epoch = keras.Variable(0, dtype="int32", trainable=False, name="best_epoch")
        self.best_acc = keras.Variable(-1.0, dtype="float32", trainable=False, name="best_acc")
        # per epoch: loss, validation accuracy, seconds
        self.history_table = keras.Variable(np.zeros((epochs, 3), np.float32), trainable=False, name="history")

    def call(self, images, training=False):
        return self.net(images, training=training)

    @property
    def metrics(self):
        return [self.loss_mean]

    def start_epoch(self, epoch):
        """Set the epoch's permutation and dropout masks (both keyed by (seed, epoch))."""
        order = np.random.default_rng([self.seed, epoch]).permutation(len(self._data["order"].numpy()))
        self._data["order"].assign(order.astype(np.int32))
        for i, layer in enumerate(self.net.layers):
            gen = getattr(layer, "seed_generator", None)
            if gen is not None:
                gen.state.assign(np.array([self.seed * 7919 + i, epoch << 20])
                                 .astype(keras.backend.standardize_dtype(gen.state.dtype)))

    def train_step(self, data):
        pos = tf.cast(self.optimizer.iterations % self.steps_per_epoch, tf.int32)
        idx = self._data["order"][pos * self.batch_size:(pos + 1) * self.batch_size]
        xb, yb = tf.gather(self._data["x"], idx), tf.gather(self._data["y"], idx)
        with tf.GradientTape() as tape:
            loss = self.loss_fn(yb, self.net(xb, training=True))
        grads = tape.gradient(loss, self.net.trainable_variables)
        self.optimizer.apply_gradients(zip(grads, self.net.trainable_variables))
        self.loss_mean.update_state(loss)
        return {"loss": self.loss_mean.result()}

    def record(self, epoch, loss, val_acc, seconds, keep):
        """Store epoch's row of the history; with keep, its weights become the best ones."""
        table = self.history_table.numpy()
        table[epoch] = (loss, val_acc, seconds)
        self.history_table.assign(table)
        if keep:
            for b, v in zip(self.best, self.net.weights):
                b.assign(v.value)
            self.best_epoch.assign(epoch + 1)
            self.best_acc.assign(val_acc)

    def result(self):
        """(net with the best weights, history, best epoch, best validation accuracy)."""
        for v, b in zip(self.net.weights, self.best):
            v.assign(b.value)
        history = [{"epoch": e + 1, "loss": float(row[0]), "val_accuracy": float(row[1]), "seconds": float(row[2])}
                   for e, row in enumerate(self.history_table.numpy())]
        return self.net, history, int(self.best_epoch.numpy()), float(self.best_acc.numpy())


class _EpochEnd(keras.callbacks.Callback):
    """Per epoch: set its data order, then check the loss, measure validation accuracy, keep the best,
    and check there is room for the backup."""
    def __init__(self, trainer, x_val, y_val, epochs, log, backup_dir):
        super().__init__()
        self.trainer, self.x_val, self.y_val, self.epochs, self.log = trainer, x_val, y_val, epochs, log
        self.backup_dir = backup_dir
        self.t0 = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self.trainer.start_epoch(epoch)
        self.t0 = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        loss = float(self.trainer.loss_mean.result())
        if not np.isfinite(loss):
            raise GenlabError(f"evaluator training diverged (loss {loss} at epoch {epoch + 1}): "
                              "lower evaluator.lr")
        net, has_val = self.trainer.net, len(self.x_val) > 0
        val_acc = accuracy(net, self.x_val, self.y_val) if has_val else float("nan")
        seconds = time.perf_counter() - self.t0
        keep = not has_val or val_acc > float(self.trainer.best_acc.numpy())
        self.trainer.record(epoch, loss, val_acc, seconds, keep)
        if self.backup_dir is not None:  # before BackupAndRestore writes its HDF5 file
            ensure_space(self.backup_dir, sum(v.numpy().nbytes for v in self.trainer.variables),
                         "the evaluator checkpoint")
        self.log(f"evaluator epoch {epoch + 1}/{self.epochs}: loss {loss:.4f}, val accuracy {val_acc:.4f}, "
                 f"{seconds:.1f} s")


def _infer_fn(model):
    """A compiled function images -> (features, logits) for `model`, cached per model."""
    fn = _INFER.get(model)
    if fn is None:
        heads = keras.Model(model.inputs, [model.get_layer(FEATURES_LAYER).output, model.outputs[0]])
        spec = tf.TensorSpec((None,) + tuple(model.inputs[0].shape[1:]), tf.float32)
        fn = tf.function(lambda xb: heads(xb, training=False), input_signature=[spec])
        _INFER[model] = fn
    return fn


def _as_images(model, x):
    """x as float32 (N, H, W, C) for `model`; flat (N, H*W*C) or (N, H, W) input is reshaped."""
    shape = tuple(model.inputs[0].shape[1:])
    x = np.asarray(x, dtype=np.float32)
    if x.ndim < 2 or int(np.prod(x.shape[1:])) != int(np.prod(shape)):
        raise GenlabError(f"the evaluator takes images of shape (N, {', '.join(map(str, shape))}), "
                          f"got {x.shape}: pass images in the processed layout")
    return x.reshape((len(x),) + shape)


def _run(model, x, batch_size):
    x = _as_images(model, x)
    fn = _infer_fn(model)
    feats, logits = [], []
    for i in range(0, len(x), batch_size):
        f, lg = fn(x[i:i + batch_size])
        feats.append(f.numpy())
        logits.append(lg.numpy())
    if not feats:  # no images: empty arrays of the right widths
        return (np.zeros((0, model.get_layer(FEATURES_LAYER).units), np.float32),
                np.zeros((0, model.outputs[0].shape[-1]), np.float32))
    return np.concatenate(feats), np.concatenate(logits)


def _softmax(logits):
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def features_and_proba(model, x, batch_size=1000):
    """One pass: (penultimate features float32 (N, d), class probabilities float64 (N, C))."""
    feats, logits = _run(model, x, batch_size)
    return feats, _softmax(logits.astype(np.float64))


def features(model, x, batch_size=1000):
    """Penultimate-layer ("features") activations, float32 (N, feature_dim)."""
    return _run(model, x, batch_size)[0]


def predict_proba(model, x, batch_size=1000):
    """Class probabilities p(y|x), float64 (N, n_classes), rows summing to 1."""
    return features_and_proba(model, x, batch_size)[1]


def accuracy(model, x, y, batch_size=1000):
    """Fraction of images whose most probable class is the label."""
    if len(x) == 0:
        raise GenlabError("cannot measure the evaluator's accuracy on 0 images")
    logits = _run(model, x, batch_size)[1]
    return float(np.mean(logits.argmax(axis=1) == np.asarray(y)))


def save_evaluator(model, directory, info):
    """Write evaluator.keras and evaluator.json (info + format tag) into `directory`."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model.save(directory / MODEL_FILE)
    write_json(directory / INFO_FILE, {"format": FORMAT, **info})


def load_evaluator_info(directory):
    """The evaluator.json dict saved with the evaluator (dataset, input_range, test_accuracy, ...)."""
    path = Path(directory) / INFO_FILE
    if not path.exists():
        raise GenlabError(f"{path} not found: run `dvc repro train_evaluator` first")
    try:
        info = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise GenlabError(f"{path} is not valid JSON ({e}): run `dvc repro -f train_evaluator`") from None
    if not isinstance(info, dict) or info.get("format") != FORMAT:
        raise GenlabError(f"{path} is not a {FORMAT} description: run `dvc repro -f train_evaluator`")
    return info


def load_evaluator(directory):
    """The evaluator keras.Model saved by save_evaluator (its description: load_evaluator_info)."""
    load_evaluator_info(directory)
    path = Path(directory) / MODEL_FILE
    if not path.exists():
        raise GenlabError(f"{path} not found: run `dvc repro train_evaluator` first")

    try:
        return keras.saving.load_model(path, compile=False)
    except Exception as e:  # Keras raises many types (ValueError, OSError, zipfile errors)
        raise GenlabError(f"{path} cannot be loaded ({e.__class__.__name__}): "
                          "run `dvc repro -f train_evaluator`") from None


def gate_for(gates, dataset):
    """The accuracy gate for `dataset` from gates checked by genlab.params.check_gates."""
    if dataset not in gates:
        raise GenlabError(f"evaluate.min_evaluator_accuracy has no gate for dataset {dataset!r}: "
                          f"add `{dataset}: <minimum test accuracy>` under it in params.yaml")
    return gates[dataset]


def check_gate(accuracy, gate, dataset):
    """Refuse to score with an evaluator whose test accuracy is below the gate."""
    if accuracy is None or not np.isfinite(accuracy) or accuracy < gate:
        shown = "unknown" if accuracy is None else f"{accuracy:.4f}"
        raise GenlabError(
            f"evaluator test accuracy {shown} on {dataset} is below the gate {gate:.4f}: "
            "scores from a weak evaluator are not comparable; train a better one "
            "(e.g. more evaluator.epochs, then `dvc repro train_evaluator`)")


def check_evaluator(info, gates, dataset):
    """Refuse an evaluator trained on another dataset or below its gate (info: load_evaluator_info;
    gates: checked by genlab.params.check_gates)."""
    if info.get("dataset") != dataset:
        raise GenlabError(f"the evaluator was trained on {info.get('dataset')!r} but the data is {dataset!r}: "
                          "run `dvc repro train_evaluator`")
    check_gate(info.get("test_accuracy"), gate_for(gates, dataset), dataset)
