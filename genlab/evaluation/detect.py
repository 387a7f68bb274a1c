"""How detectable and how copied the generated images are.

  two_sample_accuracy  a real-vs-generated classifier test on evaluator features (0.5 is best)
  pixel_two_sample_accuracy  the same test with a small CNN on raw pixels (sees what features miss)
  memorization         nearest-training-image distances of generated vs held-out real images
"""

import numpy as np

from genlab.errors import GenlabError
from genlab.evaluation.metrics import as_features, knn_sq_dists


def two_sample_accuracy(real, fake, *, l2, max_iter, seed):
    """Held-out balanced accuracy of a real-vs-generated detector on feature sets (N, d).

    Each set is shuffled (seeded) and split in halves; a logistic regression on standardised
    features (scikit-learn's StandardScaler + LogisticRegression, L-BFGS, mean log loss + l2/2 |w|^2 with
    the bias unpenalised) is fitted on the first halves and scored on the second: the mean of its
    accuracy on held-out real and on held-out generated rows. 0.5 = indistinguishable, 1.0 = always
    detected. (It replaced a hand-written L-BFGS fit: the same accuracy to 1e-4 on the default run's
    samples, 0.6-0.7 s instead of 0.9-1.0 s; benchmarks/bench_library.py.)
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    real, fake = as_features(real, "real features", 4), as_features(fake, "generated features", 4)
    if real.shape[1] != fake.shape[1]:
        raise GenlabError("real and generated features differ in width: use one evaluator for both")
    rng = np.random.default_rng(seed)
    real, fake = real[rng.permutation(len(real))], fake[rng.permutation(len(fake))]
    hr, hf = len(real) // 2, len(fake) // 2
    x_fit = np.concatenate([real[:hr], fake[:hf]]).astype(np.float64)
    y_fit = np.concatenate([np.zeros(hr), np.ones(hf)])
    # sklearn minimises C * sum(log loss) + |w|^2 / 2: C = 1 / (l2 * n) is the mean-loss objective above
    detector = make_pipeline(StandardScaler(), LogisticRegression(C=1.0 / (l2 * len(x_fit)), max_iter=max_iter))
    detector.fit(x_fit, y_fit)
    real_ok = _share_correct(-detector.decision_function(real[hr:].astype(np.float64)))
    fake_ok = _share_correct(detector.decision_function(fake[hf:].astype(np.float64)))
    return float(0.5 * (real_ok + fake_ok))


def _share_correct(margin):
    """Share of positive margins, a tie (margin 0, no evidence either way) counting one half."""
    return (margin > 0).mean() + 0.5 * (margin == 0).mean()


def _flat_images(x, what):
    x = np.asarray(x, dtype=np.float32)
    x = x.reshape(len(x), -1)
    if len(x) == 0 or not np.isfinite(x).all():
        raise GenlabError(f"{what} must be a non-empty set of finite images")
    return x


def nearest_train_distances(images, train, *, batch_size=1024):
    """Euclidean pixel distance from each image to its nearest training image, float64 (N,)."""
    x, train = _flat_images(images, "images"), _flat_images(train, "training images")
    if x.shape[1] != train.shape[1]:
        raise GenlabError(f"image sizes differ ({x.shape[1]} vs {train.shape[1]} training pixels): "
                          "compare images of one dataset")
    return np.sqrt(knn_sq_dists(x, train, 1, batch_size=batch_size)[:, 0])


def memorization_summary(d_generated, heldout_median):
    """The median nearest-training distance of generated images, the held-out images' median (computed
    once, by the floor stage), and their ratio."""
    med_gen, med_real = float(np.median(d_generated)), float(heldout_median)
    if med_real <= 0.0:
        raise GenlabError("held-out images have median distance 0 to the training set: "
                          "the test split overlaps the training split; rebuild the data")
    return {"nn_median_generated": med_gen, "nn_median_heldout": med_real, "nn_ratio": med_gen / med_real}


def memorization(generated, heldout, train, *, batch_size=1024):
    """Pixel-space distance from each image to its nearest training image, generated vs held-out.

    Returns both medians (nn_median_generated, nn_median_heldout) and nn_ratio = their quotient:
    about 1 when generated images are as novel as unseen real ones, near 0 for copies.
    Distances are Euclidean on the flattened images as given (float32 blocks).
    """
    return memorization_summary(nearest_train_distances(generated, train, batch_size=batch_size),
                                np.median(nearest_train_distances(heldout, train, batch_size=batch_size)))


def pixel_two_sample_accuracy(real, fake, *, epochs, seed, batch_size=128):
    """Held-out balanced accuracy of a small convolutional real-vs-generated detector on raw pixels.

    Like two_sample_accuracy, but on the images themselves rather than the evaluator's features, so
    it also sees what those features ignore (texture, noise, stroke detail): each set (N, H, W, C),
    in one value range, is shuffled (seeded) and split in halves; the network (3x3 conv 32 stride 2,
    LeakyReLU, 3x3 conv 64 stride 2, LeakyReLU, dense logit on the flattened maps; Adam 1e-3) is
    trained `epochs` passes on the first halves and scored on the second. 0.5 = indistinguishable.
    Seeded and deterministic on one machine.
    """
    import tensorflow as tf

    from genlab.training.loop import TrainSettings, reused_task, run_steps

    real, fake = np.asarray(real, np.float32), np.asarray(fake, np.float32)
    if real.ndim != 4 or real.shape[1:] != fake.shape[1:] or min(len(real), len(fake)) < 4:
        raise GenlabError("the pixel detector needs two sets of at least 4 images of one shape (N, H, W, C)")
    if epochs < 1:
        raise GenlabError(f"the pixel detector needs at least 1 epoch, got {epochs}")
    rng = np.random.default_rng(seed)
    real, fake = real[rng.permutation(len(real))], fake[rng.permutation(len(fake))]
    hr, hf = len(real) // 2, len(fake) // 2
    x_fit = np.concatenate([real[:hr], fake[:hf]])
    y_fit = np.concatenate([np.zeros(hr), np.ones(hf)]).astype(np.float32)
    order = rng.permutation(len(x_fit))
    x_fit, y_fit = x_fit[order], y_fit[order]
    task = reused_task(PixelDetectorTask, x_fit.shape[1:], len(x_fit), epochs, batch_size).start(x_fit, y_fit, seed)
    steps = task.steps
    run_steps(task, TrainSettings(iterations=steps, batch_size=batch_size, seed=seed, log_every=steps,
                                  ckpt_every=steps))
    net = task.model

    def margins(x):
        return np.concatenate([net(tf.constant(x[i:i + 1000]), training=False).numpy()[:, 0]
                               for i in range(0, len(x), 1000)])
    return float(0.5 * (_share_correct(-margins(real[hr:])) + _share_correct(margins(fake[hf:]))))


class PixelDetectorTask:
    """The pixel detector's training as a task of the shared engine (genlab.training.loop.run_steps), one
    per sizes in a process (genlab.training.loop.reused_task; `start` loads each training), its data
    resident: epoch e visits a permutation keyed by (seed, e) in batches of batch_size, the last one of
    each epoch smaller; one Adam step (1e-3) on the logistic loss per batch. (It streamed its batches
    through tf.data until the trainings were reused: a new input pipeline, traced and torn down for each
    of evaluate's ~20 detectors, cost ~0.4 s a training; the resident batches are the same images.)"""

    name = "pixel detector"
    metric_names = ("loss",)
    hint = "check the images for NaN/Inf"
    in_memory = True

    def __init__(self, input_shape, n, epochs, batch_size):
        import keras

        from genlab.training.loop import device_data
        self.input_shape, self.n, self.epochs, self.batch_size = input_shape, n, epochs, batch_size
        self.per_epoch = -(-n // batch_size)
        self.steps = epochs * self.per_epoch
        self.model, self.opt = self._fresh()
        self.loss_fn = keras.losses.BinaryCrossentropy(from_logits=True)
        self.x = device_data(np.zeros((n, *input_shape), np.float32))
        self.y = device_data(np.zeros(n, np.float32))
        self.order = device_data(np.zeros(epochs * n, np.int64))

    def _fresh(self):
        import keras
        layers = keras.layers
        model = keras.Sequential([keras.Input(self.input_shape),
                                  layers.Conv2D(32, 3, strides=2, padding="same"), layers.LeakyReLU(0.2),
                                  layers.Conv2D(64, 3, strides=2, padding="same"), layers.LeakyReLU(0.2),
                                  layers.Flatten(), layers.Dense(1)])
        opt = keras.optimizers.Adam(1e-3)
        opt.build(model.trainable_variables)
        return model, opt

    def start(self, x, y, seed):
        """Load a training on (x, y) from `seed`: its initial weights, a fresh optimizer, its epochs' orders."""
        from genlab.training.loop import restart
        order = np.concatenate([np.random.default_rng([seed, e]).permutation(len(x)) for e in range(self.epochs)])
        return restart(self, seed, [self.x, self.y, self.order], [x, y, order])

    def variables(self):
        return [*self.model.variables, *self.opt.variables]

    def draw(self, key, batch_size):
        """The indices of iteration key[1]: batch j of epoch e, i.e. rows j*B .. min((j+1)*B, n) of its order."""
        import tensorflow as tf
        epoch, j = key[1] // self.per_epoch, key[1] % self.per_epoch
        size = tf.minimum(tf.constant(batch_size, tf.int64), self.n - j * batch_size)
        return {"idx": tf.slice(self.order, tf.reshape(epoch * self.n + j * batch_size, [1]), tf.reshape(size, [1]))}

    def gather(self, idx):
        import tensorflow as tf
        return {"x": tf.gather(self.x, idx), "y": tf.gather(self.y, idx)}

    def update(self, batch, draws, replicas):
        import tensorflow as tf
        net = self.model
        with tf.GradientTape() as tape:
            loss = self.loss_fn(batch["y"][:, None], net(batch["x"], training=True))
        self.opt.apply_gradients(zip(tape.gradient(loss, net.trainable_variables), net.trainable_variables))
        return {"loss": loss}

    def after_update(self, step):
        pass
