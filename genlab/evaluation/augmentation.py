"""The augmentation study: does adding generated images to a small real training set help a classifier?

For each real subset size (a share of the training split, class-balanced, drawn with a seed) and
each seed: the conditional GAN is trained ONLY on that subset (genlab.training.gan.train_gan, the
default gan.* params, the study's iteration count), then the CAS classifier (genlab.evaluation.cas)
is trained (a) on the real subset alone and (b) on the subset plus n_generated class-balanced generated
images, both for the same number of updates from the same seed, and both are scored on the real test
split (only scored: nothing is selected on it). The seed keys the subset, the GAN, its samples and
the classifier, so one seed is one independent repetition.

Rule (`RULE`): augmentation helped when the mean difference (b) - (a) over the seeds exceeds twice the
combined standard error sqrt(se_a² + se_b²) (se = sample std / sqrt(seeds)); it hurt when the
difference is below minus that; otherwise the difference is within the noise.
"""

import math
import tempfile
from pathlib import Path

import numpy as np

from genlab.errors import GenlabError
from genlab.evaluation import cas

RULE = ("Rule: augmentation helped when the mean difference (real + generated minus real only) exceeds "
        "2 × the combined standard error sqrt(se_a² + se_b²), se = sample std / sqrt(number of seeds); "
        "it hurt when the difference is below minus that; otherwise it is within the noise.")


def balanced_subset(y, fraction, n_classes, seed):
    """Sorted indices of a class-balanced draw of round(fraction * len(y)) // n_classes images per class."""
    y = np.asarray(y)
    per_class = int(round(fraction * len(y))) // n_classes
    if per_class < 1:
        raise GenlabError(f"a real subset of {fraction:g} of {len(y)} training images holds less than one image "
                          f"per class ({n_classes} classes): raise the fraction")
    rng = np.random.default_rng([seed, int(round(fraction * 1e6))])
    picks = []
    for k in range(n_classes):
        members = np.flatnonzero(y == k)
        if len(members) < per_class:
            raise GenlabError(f"class {k} has {len(members)} training images, fewer than the {per_class} a "
                              f"balanced subset of {fraction:g} needs: lower the fraction")
        picks.append(rng.choice(members, per_class, replace=False))
    return np.sort(np.concatenate(picks))


def summarize(fraction, n_real, n_generated, real_only, augmented):
    """The row of one subset size: accuracies per seed, their means, stds, the difference and the verdict."""
    a, b = np.asarray(real_only, float), np.asarray(augmented, float)
    k = len(a)
    se = lambda v: float(np.std(v, ddof=1) / math.sqrt(k)) if k > 1 else float("inf")  # noqa: E731
    noise = 2.0 * math.sqrt(se(a) ** 2 + se(b) ** 2)
    diff = float(b.mean() - a.mean())
    verdict = "yes" if diff > noise else ("no, it hurt" if diff < -noise else "no (within the noise)")
    pct = f"{100 * fraction:g} %"
    answer = {"yes": f"{pct} of the training split ({n_real} real images): augmentation helped, "
                     f"{diff:+.4f} accuracy, beyond the noise ({noise:.4f}).",
              "no, it hurt": f"{pct} ({n_real} real images): augmentation hurt, {diff:+.4f} accuracy, "
                             f"beyond the noise ({noise:.4f}).",
              }.get(verdict, f"{pct} ({n_real} real images): no difference beyond the noise "
                             f"({diff:+.4f} accuracy vs noise {noise:.4f}).")
    return {"fraction": fraction, "n_real": int(n_real), "n_generated": int(n_generated), "seeds": k,
            "real_only": [float(v) for v in a], "augmented": [float(v) for v in b],
            "real_only_mean": float(a.mean()), "real_only_std": float(np.std(a, ddof=1)) if k > 1 else 0.0,
            "augmented_mean": float(b.mean()), "augmented_std": float(np.std(b, ddof=1)) if k > 1 else 0.0,
            "difference": diff, "noise": noise if math.isfinite(noise) else 0.0, "verdict": verdict,
            "answer": answer}


def run_study(dataset, test, *, fractions, seeds, gan_iterations, n_generated, classifier_steps, gan, train,
              classifier, work_dir=None, log=print):
    """The study's rows (see summarize), one per fraction.

    dataset: {"meta": meta, "train": (x, y)} (genlab.training.loop.load_training_data); test: (x, y), the
    real test split. gan: the genlab.params.Gan of genlab.training.gan.train_gan; train: a
    genlab.training.loop.TrainSettings whose iterations and seed are replaced by gan_iterations and each
    seed; classifier: {"batch_size", "lr"} of the CAS classifier (the cas.* params).
    work_dir: where the GANs' model, checkpoint and dvclive folders go (a temporary folder by default)."""
    from dataclasses import replace

    from genlab.training.gan import train_gan

    meta = dataset["meta"]
    n_classes = meta["n_classes"]
    x_train, y_train = dataset["train"]
    x_test, y_test = test
    if not gan.conditional:
        raise GenlabError("the augmentation study needs a conditional GAN (labelled samples): set gan.conditional: "
                          "true")
    labels = (np.arange(n_generated) % n_classes).astype(np.int32)
    rows = []
    with tempfile.TemporaryDirectory(prefix="genlab-augmentation-", dir=work_dir) as tmp:
        for fraction in fractions:
            real_only, augmented, n_real = [], [], 0
            for seed in seeds:
                idx = balanced_subset(y_train, fraction, n_classes, seed)
                x_sub, y_sub = np.asarray(x_train[idx], np.float32), np.asarray(y_train[idx], np.int32)
                n_real = len(idx)
                run = Path(tmp) / f"{fraction:g}-{seed}"
                model = train_gan({"meta": meta, "train": (x_sub, y_sub)}, run / "model", run / "checkpoints",
                                  run / "live", gan=gan, settings=replace(train, iterations=gan_iterations, seed=seed))
                x_gen = model.generate(n_generated, seed, labels=labels)
                args = dict(n_classes=n_classes, steps=classifier_steps, batch_size=classifier["batch_size"],
                            lr=classifier["lr"], seed=seed)
                real_only.append(cas.score(x_sub, y_sub, x_test, y_test, **args))
                augmented.append(cas.score(np.concatenate([x_sub, x_gen]), np.concatenate([y_sub, labels]),
                                           x_test, y_test, **args))
                log(f"augmentation: {100 * fraction:g} % ({n_real} real), seed {seed}: real only "
                    f"{real_only[-1]:.4f}, real + {n_generated} generated {augmented[-1]:.4f}")
            rows.append(summarize(fraction, n_real, n_generated, real_only, augmented))
            log(f"augmentation: {rows[-1]['answer']}")
    return rows
