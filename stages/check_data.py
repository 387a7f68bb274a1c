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

from genlab import cli
from genlab.errors import GenlabError
from genlab.params import read_all

# The keys whose limits depend on the data (exactly the params dvc.yaml lists for check_data).
KEYS = {"train": ("batch_size", "data_in_memory", "snapshot_every"),
        "gan": ("arch", "conditional", "latent_dim", "hidden", "filters"),
        "vae": ("arch", "latent_dim", "hidden", "filters"),
        "evaluator": ("batch_size", "filters", "feature_dim"),
        "sample": ("n", "attribute"),
        "evaluate": ("n_samples", "kid_subset_size", "pr_k", "curve_n"),
        "cas": ("n",)}


def read_settings(params):
    """The params whose limits depend on the data ({section: genlab.params object of KEYS[section]}),
    each checked on its own; and the checks between them that need no data (sample.n >=
    evaluate.n_samples, KID subset and pr_k <= evaluate.n_samples, cas.n <= sample.n for a conditional GAN)."""
    s = dict(zip(KEYS, read_all(params, *KEYS.items())))
    sample, ev = s["sample"], s["evaluate"]
    problems = []
    n = ev.n_samples
    if sample.n < n:
        problems.append(f"sample.n ({sample.n}) is smaller than evaluate.n_samples ({n}): "
                        "set sample.n >= evaluate.n_samples")
    if ev.kid_subset_size > n:
        problems.append(f"evaluate.kid_subset_size ({ev.kid_subset_size}) is larger than evaluate.n_samples "
                        f"({n}), the images KID draws its subsets from: lower evaluate.kid_subset_size")
    if ev.pr_k >= n:
        problems.append(f"evaluate.pr_k ({ev.pr_k}) must be smaller than evaluate.n_samples ({n}): lower it")
    if s["gan"].conditional and s["cas"].n > sample.n:
        problems.append(f"cas.n ({s['cas'].n}) is larger than sample.n ({sample.n}), the generated images the "
                        "classification accuracy score trains on: set sample.n >= cas.n or lower cas.n")
    if problems:
        raise GenlabError("; ".join(problems))
    return s


def _memory_problems(s, shape, n_train, n_classes, available):
    """Training memory of each model vs the memory available (genlab.training.budget)."""
    from genlab.training import budget
    pixels = shape[0] * shape[1] * shape[2]
    train, ev = s["train"], s["evaluator"]
    resident = n_train if train.data_in_memory else 0
    models = {
        "train_gan": ("train.batch_size", train.batch_size,
                      budget.gan_counts(shape, n_classes=n_classes, **s["gan"].asdict()), resident),
        "train_vae": ("train.batch_size", train.batch_size, budget.vae_counts(shape, **s["vae"].asdict()), resident),
        "train_evaluator": ("evaluator.batch_size", ev.batch_size,
                            budget.evaluator_counts(shape, filters=ev.filters, n_classes=n_classes,
                                                    feature_dim=ev.feature_dim), n_train),
    }
    problems = []
    for stage, (key, batch, (act, params), images) in models.items():
        need = budget.training_memory(batch, act, params, images, pixels)
        if available is not None and need > available:
            problems.append(f"{stage} needs about {budget.human(need)} of memory with {key} {batch} but "
                            f"{budget.human(available)} is available: lower {key}")
    return problems


def check(s, meta, available=None):
    """Every data-dependent limit of settings s against the processed data's meta; one GenlabError
    naming every problem (what, the data's size, the param that decides)."""
    counts, n_classes, shape = meta["counts"], int(meta["n_classes"]), list(meta["shape"])
    n_train, n_test = counts["train"], counts["test"]
    problems = []
    train, ev, sample, kid = s["train"], s["evaluator"], s["sample"], s["evaluate"].kid_subset_size
    if train.batch_size > n_train:
        problems.append(f"train.batch_size ({train.batch_size}) is larger than the training split "
                        f"({n_train} images): lower train.batch_size to at most {n_train}")
    if ev.batch_size > n_train:
        problems.append(f"evaluator.batch_size ({ev.batch_size}) is larger than the training split "
                        f"({n_train} images): lower evaluator.batch_size to at most {n_train}")
    n, pr_k = s["evaluate"].n_samples, s["evaluate"].pr_k
    if n > n_test:
        problems.append(f"evaluate.n_samples ({n}) is larger than the test split ({n_test} images): "
                        f"lower evaluate.n_samples to at most {n_test}")
    if n > n_train:
        problems.append(f"evaluate.n_samples ({n}) is larger than the training split ({n_train} images), "
                        f"which the real-vs-real floor draws from: lower evaluate.n_samples to at most {n_train}")
    kid_pool = min(n, n_test)
    if kid > kid_pool:
        problems.append(f"evaluate.kid_subset_size ({kid}) is larger than the {kid_pool} images "
                        f"scored: lower evaluate.kid_subset_size to at most {kid_pool}")
    if pr_k >= kid_pool:
        problems.append(f"evaluate.pr_k ({pr_k}) must be smaller than the {kid_pool} images scored: lower it")
    curve_n, n_val = s["evaluate"].curve_n, counts.get("val", 0)
    if train.snapshot_every > 0 and curve_n > n_val:
        problems.append(f"evaluate.curve_n ({curve_n}) is larger than the validation split ({n_val} images) the "
                        f"quality curves are scored against: lower evaluate.curve_n to at most {n_val} (or set "
                        "train.snapshot_every: 0)")
    if s["gan"].conditional and s["cas"].n > n_train:
        problems.append(f"cas.n ({s['cas'].n}) is larger than the training split ({n_train} images), which the "
                        f"classification accuracy score's floor draws from: lower cas.n to at most {n_train}")
    edit = sample.attribute
    bad = [k for k in edit if not 0 <= k < n_classes]
    if bad:
        problems.append(f"sample.attribute {edit!r} names class {bad[0]} but the data have {n_classes} classes "
                        f"(0..{n_classes - 1}): set sample.attribute to two class ids in 0..{n_classes - 1}")
    problems += _memory_problems(s, shape, n_train, n_classes, available)
    if problems:
        raise GenlabError("; ".join(dict.fromkeys(problems)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="normalize's output folder (its meta.json)")
    ap.add_argument("--out", required=True, help="written when every limit holds (data/data-checked.txt)")
    args = ap.parse_args()
    s = read_settings(cli.read_params())

    from genlab.data.processed import load_meta
    from genlab.io import atomic_file
    from genlab.training.budget import available_memory

    check(s, load_meta(args.data), available=available_memory())
    with atomic_file(args.out, "w") as f:
        f.write("every param that depends on the data fits data/processed\n")
    print(f"check_data: the params fit the data ({args.data})")


if __name__ == "__main__":
    cli.run(main)
