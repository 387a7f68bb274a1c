"""The evaluator: a small CNN classifier trained on real training images only.

Its penultimate-layer features and its class probabilities are the yardstick for every
generative model (genlab.evaluation.metrics, genlab.evaluation.scoring). It is saved self-describingly as
  evaluator.weights.h5  the weights (Keras's HDF5 weights file)
  evaluator.json   the Keras architecture (model.to_json()), construction arguments, input shape/range,
                   dataset, accuracies, history
so sample/evaluate never restate the architecture. Both files are byte-identical for identical runs
(a whole-model .keras archive is not: it carries its save time), so an evaluator retrained to the same
weights does not make DVC re-run what depends on it.

Architecture (build_evaluator): for each entry of `filters` a 3x3 conv (same padding, no bias)
+ batch norm (momentum 0.9: usable statistics even after short runs) + ReLU + 2x2 max-pool;
then dropout, Dense(feature_dim, ReLU) named "features", dropout, Dense(n_classes) logits.
Inputs are images in the processed range (e.g. [-1, 1]). No XLA: on CPU it made training 4-5x slower.

Training (train_evaluator) runs through the project's one training engine (genlab.training.loop),
checkpointed at every epoch end: an interrupted run resumes and ends bit-identical.
"""

import json
import time
import weakref
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from genlab import identity
from genlab.errors import GenlabError
from genlab.io import write_json
from genlab.limits import batch_fits, require
from genlab.training.loop import TrainSettings, fit, set_determinism

FORMAT = "genlab-evaluator/2"
MODEL_FILE = "evaluator.weights.h5"
INFO_FILE = "evaluator.json"
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


def train_evaluator(x, y, x_val, y_val, evaluator, *, n_classes, ckpt_dir=None, out=None):
    """Train the evaluator on (x, y) with the checked evaluator.* params (genlab.params.Evaluator);
    return (model, info) with the weights of the best epoch.

    Adam; the learning rate rises linearly from 0 to `lr` over the first warmup_epochs, then
    follows a cosine decay to 0 at the last step. Epoch e visits a permutation of the training
    images keyed by (seed, e) in full batches (the remainder is dropped), and its dropout masks are
    keyed by e too. The epoch with the best accuracy on (x_val, y_val) is kept (the last epoch if
    there are no validation images). Deterministic for a given seed on one machine.

    It trains through the shared engine (genlab.training.loop.fit, the GAN's and VAE's): with
    ckpt_dir, the whole state (weights, batch-norm statistics, optimizer, dropout RNG, best weights
    so far, history) is checkpointed at every epoch end and on Ctrl-C/SIGTERM, and a later call with
    the same arguments resumes from it with bit-identical results; a checkpoint of other arguments,
    data or code is discarded, a corrupt one falls back to the previous one. out: progress lines.
    """
    x, y = np.asarray(x, dtype=np.float32), np.asarray(y, dtype=np.int32)
    x_val, y_val = np.asarray(x_val, dtype=np.float32), np.asarray(y_val, dtype=np.int32)
    _check_xy(x, y, n_classes, "training")
    _check_xy(x_val, y_val, n_classes, "validation")
    e = evaluator
    require(batch_fits("evaluator.batch_size", e.batch_size, len(x)))   # warmup < epochs: Evaluator.check
    epochs, batch_size, seed = e.epochs, e.batch_size, e.seed
    steps_per_epoch = len(x) // batch_size
    build = dict(n_classes=n_classes, filters=list(e.filters), feature_dim=e.feature_dim, dropout=e.dropout)
    run = dict(epochs=epochs, warmup_epochs=e.warmup_epochs, batch_size=batch_size, lr=e.lr, seed=seed)
    task = EvaluatorTask(x, y, x_val, y_val, e, n_classes=n_classes)
    settings = TrainSettings(iterations=epochs * steps_per_epoch, batch_size=batch_size, seed=seed,
                             log_every=steps_per_epoch, ckpt_every=steps_per_epoch)
    fingerprint = _run_fingerprint(build, run, x, y, x_val, y_val)
    fit(task, settings, ckpt_dir=ckpt_dir, live_dir=None, run_fingerprint=fingerprint, jit_compile=False, out=out,
        store=False)
    model, history, best_epoch, best_acc = task.result()
    info = {
        "build": {"input_shape": list(x.shape[1:]), **build, "n_classes": int(n_classes),
                  "feature_dim": int(e.feature_dim), "dropout": float(e.dropout)},
        "train": {**run, "n_train": len(x), "n_val": len(x_val), "best_epoch": best_epoch},
        "val_accuracy": best_acc if len(x_val) else None,
        "history": history,
    }
    return model, info


def _run_fingerprint(build, run, *arrays):
    """The identity of an evaluator training run (genlab.identity): its arguments, its data, the code
    of this module and of what it imports, and the environment."""
    return identity.digest({"build": build, "run": run, "data": identity.array_digest(*arrays),
                            "code": identity.code_digest(__name__), "environment": identity.environment()})


class EvaluatorTask:
    """The evaluator's training as a task of the shared engine (genlab.training.loop): iteration i
    of epoch e = i // steps_per_epoch takes batch i % steps_per_epoch of the epoch's permutation;
    at an epoch's first batch the dropout layers' RNG states are set from (seed, e). At each epoch end
    (the engine's log, every steps_per_epoch iterations) `extra_metrics` measures validation accuracy
    and keeps the best weights and the epoch's history row, all of which are variables of the state,
    so a checkpoint carries them to a resumed run."""

    name = "train_evaluator"
    metric_names = ("loss",)
    hint = "lower evaluator.lr"
    in_memory = True

    def __init__(self, x, y, x_val, y_val, evaluator, *, n_classes):
        e = evaluator
        epochs, warmup_epochs, batch_size, lr, seed = e.epochs, e.warmup_epochs, e.batch_size, e.lr, e.seed
        self.spe, self.seed, self.x_val, self.y_val = len(x) // batch_size, seed, x_val, y_val
        set_determinism(seed)
        self.model = net = build_evaluator(x.shape[1:], n_classes, filters=list(e.filters), feature_dim=e.feature_dim,
                                           dropout=e.dropout)
        # linear warm-up from 0 to lr (fewer ReLU features die early), then cosine decay to 0 at the end
        schedule = keras.optimizers.schedules.CosineDecay(
            0.0 if warmup_epochs else lr, decay_steps=(epochs - warmup_epochs) * self.spe,
            warmup_target=lr if warmup_epochs else None, warmup_steps=warmup_epochs * self.spe)
        self.opt = keras.optimizers.Adam(schedule)
        self.opt.build(net.trainable_variables)
        self.x, self.y = tf.constant(x), tf.constant(y)
        self.orders = tf.constant(np.stack([
            np.random.default_rng([seed, e]).permutation(len(x))[:self.spe * batch_size].reshape(self.spe, batch_size)
            for e in range(epochs)]).astype(np.int32))            # (epochs, steps_per_epoch, batch_size)
        self.dropout_rng = [(i, layer.seed_generator.state) for i, layer in enumerate(net.layers)
                            if getattr(layer, "seed_generator", None) is not None]
        self.best = [tf.Variable(v.value, trainable=False, name=f"best_{i}") for i, v in enumerate(net.weights)]
        self.best_epoch = tf.Variable(0, dtype=tf.int32, trainable=False, name="best_epoch")
        self.best_acc = tf.Variable(-1.0, dtype=tf.float32, trainable=False, name="best_acc")
        # per epoch: loss, validation accuracy, seconds
        self.history = tf.Variable(np.zeros((epochs, 3), np.float32), trainable=False, name="history")
        self.loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        self._t0 = time.perf_counter()

    def variables(self):
        return [*self.model.variables, *self.opt.variables, *self.best, self.best_epoch, self.best_acc, self.history]

    def draw(self, key, batch_size):
        step = tf.cast(key[1], tf.int32)
        epoch, pos = step // self.spe, step % self.spe
        return {"idx": self.orders[epoch, pos], "epoch": epoch, "pos": pos}

    def gather(self, idx):
        return {"x": tf.gather(self.x, idx), "y": tf.gather(self.y, idx)}

    def update(self, batch, draws, replicas):
        for i, state in self.dropout_rng:   # the epoch's dropout masks, keyed by (seed, epoch)
            keyed = tf.cast(tf.stack([self.seed * 7919 + i, draws["epoch"] * (1 << 20)]), state.dtype)
            state.assign(tf.where(draws["pos"] == 0, keyed, state.value))
        net = self.model
        with tf.GradientTape() as tape:
            loss = self.loss_fn(batch["y"], net(batch["x"], training=True))
        self.opt.apply_gradients(zip(tape.gradient(loss, net.trainable_variables), net.trainable_variables))
        return {"loss": loss}

    def after_update(self, step):
        pass

    def extra_metrics(self, step, means):
        """At an epoch end: validation accuracy; the epoch's history row; its weights if they are the best."""
        epoch = step // self.spe - 1
        has_val = len(self.x_val) > 0
        val_acc = accuracy(self.model, self.x_val, self.y_val) if has_val else float("nan")
        table = self.history.numpy()
        table[epoch] = (means["loss"], val_acc, time.perf_counter() - self._t0)
        self.history.assign(table)
        self._t0 = time.perf_counter()
        if not has_val or val_acc > float(self.best_acc.numpy()):
            for b, v in zip(self.best, self.model.weights):
                b.assign(v.value)
            self.best_epoch.assign(epoch + 1)
            self.best_acc.assign(val_acc)
        return {"val_accuracy": val_acc} if has_val else {}

    def finish(self):
        pass

    def result(self):
        """(net with the best weights, history, best epoch, best validation accuracy)."""
        for v, b in zip(self.model.weights, self.best):
            v.assign(b.value())
        # (no wall times: they would make the saved evaluator differ byte-wise between identical runs)
        history = [{"epoch": e + 1, "loss": float(row[0]), "val_accuracy": float(row[1])}
                   for e, row in enumerate(self.history.numpy())]
        return self.model, history, int(self.best_epoch.numpy()), float(self.best_acc.numpy())


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
    """Write evaluator.weights.h5 and evaluator.json (format tag, architecture, info) into `directory`."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model.save_weights(directory / MODEL_FILE)
    write_json(directory / INFO_FILE, {"format": FORMAT, "architecture": json.loads(model.to_json()), **info})


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
    info = load_evaluator_info(directory)
    path = Path(directory) / MODEL_FILE
    if not path.exists():
        raise GenlabError(f"{path} not found: run `dvc repro train_evaluator` first")

    try:
        model = keras.models.model_from_json(json.dumps(info["architecture"]))
        model.load_weights(path)
        return model
    except Exception as e:  # Keras and h5py raise many types (ValueError, OSError, KeyError)
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
