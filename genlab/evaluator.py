"""The evaluator: a small CNN classifier trained on real training images only.

Its penultimate-layer features and its class probabilities are the yardstick for every
generative model (genlab.metrics, genlab.scoring). It is saved self-describingly as
  evaluator.keras  the whole Keras model (architecture + weights; Keras's own serialization)
  evaluator.json   construction arguments, input shape/range, dataset, accuracies, history
so sample/evaluate never restate the architecture.

Architecture (build_evaluator): for each entry of `filters` a 3x3 conv (same padding, no bias)
+ batch norm (momentum 0.9: usable statistics even after short runs) + ReLU + 2x2 max-pool;
then dropout, Dense(feature_dim, ReLU) named "features", dropout, Dense(n_classes) logits.
Inputs are images in the processed range (e.g. [-1, 1]). No XLA: on CPU it made training 4-5x slower.
"""

import json
import time
import weakref
from pathlib import Path

import numpy as np

from genlab.errors import GenlabError

FORMAT = "genlab-evaluator/1"
MODEL_FILE = "evaluator.keras"
INFO_FILE = "evaluator.json"
FEATURES_LAYER = "features"

# (features, logits) inference functions, one per live model; built on first use.
_INFER = weakref.WeakKeyDictionary()


def build_evaluator(input_shape, n_classes, *, filters, feature_dim, dropout):
    """Return the (uncompiled) evaluator keras.Model mapping images to class logits."""
    import keras

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
                    epochs, warmup_epochs, batch_size, lr, seed, log=print):
    """Train the evaluator on (x, y); return (model, info) with the weights of the best epoch.

    Adam; the learning rate rises linearly from 0 to `lr` over the first warmup_epochs, then
    follows a cosine decay to 0 at the last step. Each epoch is a seeded permutation
    of the training images in full batches (the remainder is dropped). The epoch with the best
    accuracy on (x_val, y_val) is kept (the last epoch if there are no validation images).
    Deterministic for a given seed on one machine (same TF build and thread count).
    """
    import keras
    import tensorflow as tf

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

    keras.utils.set_random_seed(seed)
    model = build_evaluator(x.shape[1:], n_classes, filters=filters, feature_dim=feature_dim,
                            dropout=dropout)
    # linear warm-up from 0 to lr (fewer ReLU features die early), then cosine decay to 0 at the end
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0 if warmup_epochs else lr, decay_steps=(epochs - warmup_epochs) * steps_per_epoch,
        warmup_target=lr if warmup_epochs else None, warmup_steps=warmup_epochs * steps_per_epoch)
    optimizer = keras.optimizers.Adam(schedule)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    loss_mean = keras.metrics.Mean()
    images, labels = tf.constant(x), tf.constant(y)  # whole training set on the device once

    @tf.function
    def train_step(idx):  # idx: (batch_size,) int32 indices into the training set
        xb, yb = tf.gather(images, idx), tf.gather(labels, idx)
        with tf.GradientTape() as tape:
            loss = loss_fn(yb, model(xb, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        loss_mean.update_state(loss)

    rng = np.random.default_rng(seed)
    history, best_acc, best_weights, best_epoch = [], -1.0, None, 0
    start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        t0 = time.perf_counter()
        loss_mean.reset_state()
        order = rng.permutation(len(x))[: steps_per_epoch * batch_size]
        for idx in order.reshape(steps_per_epoch, batch_size).astype(np.int32):
            train_step(tf.constant(idx))
        loss = float(loss_mean.result())
        if not np.isfinite(loss):
            raise GenlabError(f"evaluator training diverged (loss {loss} at epoch {epoch}): "
                              "lower evaluator.lr")
        val_acc = accuracy(model, x_val, y_val) if len(x_val) else float("nan")
        history.append({"epoch": epoch, "loss": loss, "val_accuracy": val_acc,
                        "seconds": time.perf_counter() - t0})
        log(f"evaluator epoch {epoch}/{epochs}: loss {loss:.4f}, val accuracy {val_acc:.4f}, "
            f"{history[-1]['seconds']:.1f} s")
        if not len(x_val) or val_acc > best_acc:
            best_acc, best_epoch = val_acc, epoch
            best_weights = [v.numpy() for v in model.weights]
    for v, w in zip(model.weights, best_weights):
        v.assign(w)
    info = {
        "build": {"input_shape": list(x.shape[1:]), "n_classes": int(n_classes),
                  "filters": list(filters), "feature_dim": int(feature_dim), "dropout": float(dropout)},
        "train": {"epochs": epochs, "warmup_epochs": warmup_epochs, "batch_size": batch_size, "lr": lr,
                  "seed": seed, "n_train": len(x), "n_val": len(x_val), "best_epoch": best_epoch,
                  "seconds": time.perf_counter() - start},
        "val_accuracy": best_acc if len(x_val) else None,
        "history": history,
    }
    return model, info


def _infer_fn(model):
    """A compiled function images -> (features, logits) for `model`, cached per model."""
    fn = _INFER.get(model)
    if fn is None:
        import keras
        import tensorflow as tf

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
    from genlab.io import write_json

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
    import keras

    try:
        return keras.saving.load_model(path, compile=False)
    except Exception as e:  # Keras raises many types (ValueError, OSError, zipfile errors)
        raise GenlabError(f"{path} cannot be loaded ({e.__class__.__name__}): "
                          "run `dvc repro -f train_evaluator`") from None


def gate_for(gates, dataset):
    """The accuracy gate for `dataset` from a mapping {dataset name: minimum test accuracy}."""
    if not isinstance(gates, dict) or dataset not in gates:
        raise GenlabError(f"evaluate.min_evaluator_accuracy has no gate for dataset {dataset!r}: "
                          f"add `{dataset}: <minimum test accuracy>` under it in params.yaml")
    gate = gates[dataset]
    if isinstance(gate, bool) or not isinstance(gate, (int, float)) or not 0 <= gate <= 1:
        raise GenlabError(f"evaluate.min_evaluator_accuracy.{dataset} must be a number in [0, 1], "
                          f"got {gate!r}")
    return float(gate)


def check_gate(accuracy, gate, dataset):
    """Refuse to score with an evaluator whose test accuracy is below the gate."""
    if accuracy is None or not np.isfinite(accuracy) or accuracy < gate:
        shown = "unknown" if accuracy is None else f"{accuracy:.4f}"
        raise GenlabError(
            f"evaluator test accuracy {shown} on {dataset} is below the gate {gate:.4f}: "
            "scores from a weak evaluator are not comparable; train a better one "
            "(e.g. more evaluator.epochs, then `dvc repro train_evaluator`)")


def check_evaluator(info, gates, dataset):
    """Refuse an evaluator trained on another dataset or below its gate (info: load_evaluator_info)."""
    if info.get("dataset") != dataset:
        raise GenlabError(f"the evaluator was trained on {info.get('dataset')!r} but the data is {dataset!r}: "
                          "run `dvc repro train_evaluator`")
    check_gate(info.get("test_accuracy"), gate_for(gates, dataset), dataset)
