"""Classification accuracy score (CAS; Ravuri & Vinyals 2019): is the generated data useful?

A classifier of one fixed small architecture is trained only on labelled images (a conditional
model's images with the labels it was asked for) and scored by its accuracy on real test images.
Beside it the floor: the same classifier, same seed and number of updates, trained on as many real
training images. A model whose images show the wrong class for their label scores near chance
(0.1 with ten classes); one as useful as real data scores at the floor. The augmentation study
(genlab.evaluation.augmentation) trains the same classifier on a real subset with and without
generated images.

Architecture (fixed, not a param, so scores stay comparable): 3x3 conv 16 + ReLU + 2x2 max-pool,
3x3 conv 32 + ReLU + 2x2 max-pool, Dense 64 ReLU, Dense n_classes logits. It is not the
evaluator (the yardstick never sees generated images in training). Adam at a fixed learning rate
for a fixed number of updates, no validation and no early stopping: nothing is selected, the
test images are only scored. Update i takes batch i of a permutation keyed by (seed, epoch);
weights start from `seed`; with TensorFlow's deterministic ops the score is a function of the seed.
Shapes: images (N, H, W, C) float32 in the processed range; labels (N,) int.
"""

import keras
import numpy as np
import tensorflow as tf

from genlab import limits
from genlab.errors import GenlabError
from genlab.limits import require
from genlab.training.loop import (
    TrainSettings,
    device_data,
    restart,
    reused_task,
    run_steps,
)

PREDICT_BATCH = 1000
STEPS_PER_CALL = 500  # updates per compiled call (Ctrl-C is handled between calls)


def build_classifier(input_shape, n_classes):
    """The CAS classifier (uncompiled keras.Model): images -> class logits."""
    inputs = keras.Input(tuple(input_shape), name="images")
    h = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv0")(inputs)
    h = keras.layers.MaxPooling2D(name="pool0")(h)
    h = keras.layers.Conv2D(32, 3, padding="same", activation="relu", name="conv1")(h)
    h = keras.layers.MaxPooling2D(name="pool1")(h)
    h = keras.layers.Flatten(name="flatten")(h)
    h = keras.layers.Dense(64, activation="relu", name="hidden")(h)
    return keras.Model(inputs, keras.layers.Dense(n_classes, name="logits")(h), name="cas_classifier")


def _check(x, y, n_classes, what):
    x = np.asarray(x, np.float32)
    y = np.asarray(y)
    if x.ndim != 4 or len(x) != len(y):
        raise GenlabError(f"{what}: expected images (N, H, W, C) and N labels, got {x.shape} and {y.shape}")
    if not np.isfinite(x).all():
        raise GenlabError(f"{what} contain NaN or Inf: the model diverged; retrain it")
    if len(y) and (not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= n_classes):
        raise GenlabError(f"{what}: labels must be class ids in 0..{n_classes - 1}")
    return x, y.astype(np.int32)


class ClassifierTask:
    """The classifier's training as a task of the shared engine (genlab.training.loop.run_steps), one per
    shape in a process (genlab.training.loop.reused_task; `start` loads each training): iteration i takes
    row i of `order` (full batches of successive permutations keyed by (seed, epoch), the remainder of
    each dropped) and makes one Adam update on the cross-entropy."""

    name = "cas classifier"
    metric_names = ("loss",)
    hint = "lower the classifier's learning rate (cas.lr)"
    in_memory = True

    def __init__(self, input_shape, n, n_classes, steps, batch_size, lr):
        self.input_shape, self.n_classes, self.steps, self.batch_size, self.lr = input_shape, n_classes, steps, \
            batch_size, lr
        self.model, self.opt = self._fresh()
        self.x = device_data(np.zeros((n, *input_shape), np.float32))
        self.y = device_data(np.zeros(n, np.int32))
        self.order = device_data(np.zeros((steps, batch_size), np.int32))
        self.loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    def _fresh(self):
        model = build_classifier(self.input_shape, self.n_classes)
        opt = keras.optimizers.Adam(self.lr)
        opt.build(model.trainable_variables)
        return model, opt

    def start(self, x, y, seed):
        """Load a training on (x, y) from `seed`: its initial weights, a fresh optimizer, its batch order."""
        per_epoch = len(x) // self.batch_size
        epochs = -(-self.steps // per_epoch)
        order = np.concatenate([np.random.default_rng([seed, e]).permutation(len(x))[:per_epoch * self.batch_size]
                                for e in range(epochs)]).reshape(-1, self.batch_size)[:self.steps]
        return restart(self, seed, [self.x, self.y, self.order], [x, y, order.astype(np.int32)])

    def variables(self):
        return [*self.model.variables, *self.opt.variables]

    def draw(self, key, batch_size):
        return {"idx": self.order[key[1]]}

    def gather(self, idx):
        return {"x": tf.gather(self.x, idx), "y": tf.gather(self.y, idx)}

    def update(self, batch, draws, replicas):
        net = self.model
        with tf.GradientTape() as tape:
            loss = self.loss_fn(batch["y"], net(batch["x"], training=True))
        self.opt.apply_gradients(zip(tape.gradient(loss, net.trainable_variables), net.trainable_variables))
        return {"loss": loss}

    def after_update(self, step):
        pass


def train_classifier(x, y, *, n_classes, steps, batch_size, lr, seed):
    """The classifier trained on (x, y) for `steps` Adam updates of batch_size images (full batches of
    successive seeded permutations, the remainder of each dropped). Returns the keras.Model, which the
    next training at the same sizes in this process trains again (read what you need from it first)."""
    x, y = _check(x, y, n_classes, "classifier training images")
    if len(x) // batch_size < 1:
        raise GenlabError(f"the classifier's batch size {batch_size} exceeds its {len(x)} training images: "
                          "lower the batch size or give it more images")
    task = reused_task(ClassifierTask, x.shape[1:], len(x), n_classes, steps, batch_size, lr).start(x, y, seed)
    run_steps(task, TrainSettings(iterations=steps, batch_size=batch_size, seed=seed, log_every=STEPS_PER_CALL,
                                  ckpt_every=steps))
    return task.model


def accuracy(net, x, y):
    """Share of (x, y) the classifier labels correctly."""
    # eager calls: a tf.function per classifier would be traced again for every score (and TensorFlow
    # warns about retracing once a stage scores several, as the quality curves do)
    pred = np.concatenate([tf.argmax(net(tf.constant(x[i:i + PREDICT_BATCH], tf.float32), training=False),
                                     axis=1, output_type=tf.int32).numpy()
                           for i in range(0, len(x), PREDICT_BATCH)])
    return float(np.mean(pred == np.asarray(y)))


def score(x_train, y_train, x_test, y_test, *, n_classes, steps, batch_size, lr, seed):
    """Test accuracy of the classifier trained on (x_train, y_train): the CAS of those images."""
    x_test, y_test = _check(x_test, y_test, n_classes, "real test images")
    net = train_classifier(x_train, y_train, n_classes=n_classes, steps=steps, batch_size=batch_size, lr=lr,
                           seed=seed)
    return accuracy(net, x_test, y_test)


def _args(n_classes, s):
    return dict(n_classes=n_classes, steps=s.steps(), batch_size=s.batch_size, lr=s.lr, seed=s.seed)


def cas_floor(x_train, y_train, x_test, y_test, *, n_classes, settings):
    """The CAS of N = settings.n real training images, a draw keyed by settings.seed (genlab.params.Cas):
    what a model whose images are as useful as real ones scores."""
    s = settings
    require(limits.cas_fits_train(s.n, len(x_train)))
    idx = np.sort(np.random.default_rng(s.seed).choice(len(x_train), s.n, replace=False))
    return score(np.asarray(x_train)[idx], np.asarray(y_train)[idx], x_test, y_test, **_args(n_classes, s))


def cas_scores(labelled, x_train, y_train, x_test, y_test, *, n_classes, settings, floor=None):
    """{"n": N, name: CAS, ..., "floor": CAS of N real training images} for labelled = {name: (images,
    labels asked for)}, each holding at least N = settings.n images (the first N are used). floor: the
    cas_floor already computed for these settings (the floor stage's), else it is computed here."""
    s = settings
    for name, (x, _) in labelled.items():
        problem = limits.samples_hold_cas(len(x), s.n)
        if problem:
            raise GenlabError(f"{name}: {problem}")
    if floor is None:
        floor = cas_floor(x_train, y_train, x_test, y_test, n_classes=n_classes, settings=s)
    result = {"n": s.n}
    for name, (x, y) in labelled.items():
        result[name] = score(x[:s.n], y[:s.n], x_test, y_test, **_args(n_classes, s))
    result["floor"] = floor
    return result
