"""Time every evaluation metric at the protocol's size (N = 10,000 per side) on real Fashion-MNIST.

    .venv/bin/python benchmarks/bench_metrics.py [--data ../shared/data/fashion-mnist] [--n 10000]
                                                 [--evaluator models/evaluator] [--epochs 1]

"Generated" images are N training images with Gaussian noise (std 0.2, images in [-1, 1]),
compared with the first N test images; memorization searches all 60,000 training images.
Features come from --evaluator if given, else from an evaluator trained here for --epochs on
10,000 training images (its accuracy does not matter for timing). The VAE bounds use a small
random float32 numpy VAE (latent 16, one hidden layer of 256) with --iw-samples samples per image.
Prints one row per metric: wall-clock seconds and the value.
"""

import argparse
import io
import os
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from genlab.data.readers import read_idx
from genlab.evaluation.detect import memorization, two_sample_accuracy
from genlab.evaluation.elbo import vae_bounds
from genlab.evaluation.evaluator import features_and_proba, load_evaluator, train_evaluator
from genlab.evaluation.metrics import (
    class_histogram,
    classes_covered,
    classifier_score,
    frechet_distance,
    kid,
    kl_to_uniform,
    precision_recall,
)
from genlab.evaluation.scoring import score_images
from genlab.params import Evaluate, Evaluator

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "fashion-mnist"


def load(data_dir):
    d = Path(data_dir)
    def scale(x):
        return x.astype(np.float32)[..., None] / 127.5 - 1.0
    return (scale(read_idx(d / "train-images-idx3-ubyte.gz")),
            read_idx(d / "train-labels-idx1-ubyte.gz").astype(np.int32),
            scale(read_idx(d / "t10k-images-idx3-ubyte.gz")))


def random_vae(latent_dim=16, hidden=256, pixels=784, seed=0):
    rng = np.random.default_rng(seed)
    shapes = [(0.03, (pixels, hidden)), (0.1, (hidden, 2 * latent_dim)), (0.3, (latent_dim, hidden)),
              (0.1, (hidden, pixels))]
    w1, w2, w3, w4 = (rng.normal(0, s, shape).astype(np.float32) for s, shape in shapes)

    def encode(x01):
        h = np.tanh(x01.reshape(len(x01), -1) @ w1) @ w2
        return h[:, :latent_dim], h[:, latent_dim:] - 1.0

    def decode_logits(z):
        return np.tanh(z @ w3) @ w4

    return encode, decode_logits


def timed(rows, name, fn):
    t = time.perf_counter()
    value = fn()
    rows.append((name, time.perf_counter() - t, value))
    return value


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(DEFAULT_DATA), help="folder with the Fashion-MNIST *.gz files")
    ap.add_argument("--n", type=int, default=10000, help="images per side")
    ap.add_argument("--evaluator", help="a saved evaluator folder (default: train a quick one)")
    ap.add_argument("--epochs", type=int, default=1, help="epochs of the quick evaluator after 1 warm-up epoch")
    ap.add_argument("--iw-samples", type=int, default=64, help="k of the importance-weighted bound")
    args = ap.parse_args()

    x_train, y_train, x_test = load(args.data)
    n = args.n
    rows = []
    if args.evaluator:
        model = load_evaluator(args.evaluator)
    else:
        model, _ = timed(rows, f"(train quick evaluator, 1+{args.epochs} epochs on 10k)", lambda: train_evaluator(
            x_train[:10000], y_train[:10000], x_train[10000:11000], y_train[10000:11000], Evaluator.of(
                filters=[16, 32], feature_dim=128, dropout=0.3, epochs=args.epochs + 1, warmup_epochs=1,
                batch_size=128, lr=0.003, seed=0), n_classes=10, out=io.StringIO()))
    rng = np.random.default_rng(0)
    gen = np.clip(x_train[-n:] + 0.2 * rng.standard_normal((n, 28, 28, 1)), -1, 1).astype(np.float32)
    real = x_test[:n]

    f_gen, p_gen = timed(rows, f"evaluator features+proba ({n} images)", lambda: features_and_proba(model, gen))
    f_real, _ = features_and_proba(model, real)
    timed(rows, "Fréchet distance", lambda: frechet_distance(f_gen, f_real))
    timed(rows, "KID (100 subsets of 1000)", lambda: kid(f_gen, f_real, subset_size=1000, n_subsets=100, seed=0))
    timed(rows, "precision/recall (k=3)", lambda: precision_recall(f_real, f_gen, k=3))
    timed(rows, "class KL / covered / classifier score", lambda: (
        kl_to_uniform(class_histogram(p_gen)), classes_covered(class_histogram(p_gen), min_share=0.1),
        classifier_score(p_gen)))
    timed(rows, "two-sample detector accuracy", lambda: two_sample_accuracy(f_real, f_gen, l2=1e-3, max_iter=500,
                                                                            seed=0))
    timed(rows, f"memorization (pixels, vs {len(x_train)} train)", lambda: memorization(gen, real, x_train))
    encode, decode_logits = random_vae()
    timed(rows, f"VAE ELBO + IW bound (k={args.iw_samples})", lambda: vae_bounds(
        encode, decode_logits, (real + 1) / 2, k=args.iw_samples, threshold=0.5, seed=0))
    settings = Evaluate(kid_subset_size=1000, kid_subsets=100, pr_k=3, coverage_min_share=0.1,
                        two_sample_l2=1e-3, two_sample_max_iter=500, pixel_detector_epochs=5,
                        seed=0)
    timed(rows, "score_images (all + floor, incl. features)", lambda: score_images(
        model, gen, real, x_train, value_range=(-1.0, 1.0), settings=settings)["generated"]["fd"])

    print(f"\nN = {n} per side, feature width {f_gen.shape[1]}, {os.cpu_count()} CPUs\n")
    print(f"| {'metric':<48} | {'seconds':>8} | value")
    print(f"|{'-' * 50}|{'-' * 10}|------")
    for name, sec, value in rows:
        if isinstance(value, tuple) and len(value) == 2 and not isinstance(value[0], (float, int)):
            value = "-"
        elif isinstance(value, dict):
            value = ", ".join(f"{k}={v:.4g}" for k, v in value.items())
        elif isinstance(value, tuple):
            value = ", ".join(f"{v:.4g}" for v in value)
        elif isinstance(value, float):
            value = f"{value:.4g}"
        print(f"| {name:<48} | {sec:8.2f} | {value}")


if __name__ == "__main__":
    main()
