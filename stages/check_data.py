"""Stage check_data: check every param whose limit depends on the data (its size, shape, class count)
against data/processed/meta.json, all at once, before any training, sampling or scoring runs.

It runs right after normalize and before every long stage (train_gan, train_vae, train_evaluator,
sample and evaluate depend on its output), whenever the data or one of these params changes. So a batch
larger than the training split or than the memory, `evaluate.n_samples` beyond the test split, a KID
subset larger than the scored set or a `sample.attribute` class the data lack stops `dvc repro` with one
line naming every problem before DVC deletes a model, samples or checkpoints. Its output never changes
while the params fit, so it makes nothing downstream re-run.
"""

import argparse

from genlab import limits, stage
from genlab.limits import require
from genlab.params import Evaluate, read_all


def read_settings(params):
    """The params whose limits depend on the data, exactly those dvc.yaml lists for check_data
    ({section: genlab.params object of those keys}), each checked on its own; and the checks between
    them that need no data (sample.n >= evaluate.n_samples, KID subset and pr_k <= evaluate.n_samples,
    cas.n <= sample.n for a conditional GAN)."""
    keys = limits.declared_params("check_data")
    s = dict(zip(keys, read_all(params, *keys.items())))
    sample, ev = s["sample"], s["evaluate"]
    require(limits.samples_hold_scored(sample.n, ev.n_samples),
            limits.kid_subset_fits(ev.kid_subset_size, ev.n_samples),
            limits.pr_k_fits(ev.pr_k, ev.n_samples),
            limits.samples_hold_cas(sample.n, s["cas"].n) if s["gan"].conditional else None)
    return s


def _memory_problems(s, shape, n_train, n_classes, available):
    """Training memory of each model vs the memory available (genlab.training.budget)."""
    from genlab.training import budget
    pixels = shape[0] * shape[1] * shape[2]
    train, ev = s["train"], s["evaluator"]
    resident = n_train if train.data_in_memory else 0
    models = {
        "train_gan": ("train.batch_size", train.batch_size,
                      budget.gan_counts(shape, s["gan"], n_classes=n_classes), resident),
        "train_vae": ("train.batch_size", train.batch_size, budget.vae_counts(shape, s["vae"]), resident),
        "train_evaluator": ("evaluator.batch_size", ev.batch_size,
                            budget.evaluator_counts(shape, filters=ev.filters, n_classes=n_classes,
                                                    feature_dim=ev.feature_dim), n_train),
    }
    problems = []
    for name, (key, batch, (act, params), images) in models.items():
        need = budget.training_memory(batch, act, params, images, pixels)
        if available is not None and need > available:
            problems.append(f"{name} needs about {budget.human(need)} of memory with {key} {batch} but "
                            f"{budget.human(available)} is available: lower {key}")
    return problems


def check(s, meta, available=None):
    """Every data-dependent limit of settings s against the processed data's meta; one GenlabError
    naming every problem (what, the data's size, the param that decides)."""
    counts, n_classes, shape = meta["counts"], int(meta["n_classes"]), list(meta["shape"])
    n_train, n_test, n_val = counts["train"], counts["test"], counts.get("val", 0)
    train, ev, sample = s["train"], s["evaluate"], s["sample"]
    scored = min(ev.n_samples, n_test)
    require(limits.batch_fits("train.batch_size", train.batch_size, n_train),
            limits.batch_fits("evaluator.batch_size", s["evaluator"].batch_size, n_train),
            limits.scored_fit_test(ev.n_samples, n_test),
            limits.floor_fits_train(ev.n_samples, n_train),
            limits.kid_subset_fits(ev.kid_subset_size, scored),
            limits.pr_k_fits(ev.pr_k, scored),
            limits.curve_n_fits(ev.curve_n, n_val, train.snapshot_every, Evaluate.bounds("curve_n")[0]),
            limits.cas_fits_train(s["cas"].n, n_train) if s["gan"].conditional else None,
            limits.attribute_classes(sample.attribute, n_classes),
            *_memory_problems(s, shape, n_train, n_classes, available))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="normalize's output folder (its meta.json)")
    ap.add_argument("--out", required=True, help="written when every limit holds (data/data-checked.txt)")
    args = ap.parse_args()
    s = read_settings(stage.read_params())

    from genlab.data.processed import load_meta
    from genlab.io import atomic_file
    from genlab.training.budget import available_memory

    check(s, load_meta(args.data), available=available_memory())
    with atomic_file(args.out, "w") as f:
        f.write("every param that depends on the data fits data/processed\n")
    print(f"check_data: the params fit the data ({args.data})")


if __name__ == "__main__":
    stage.run(main)
