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

from genlab import cli, config
from genlab.errors import GenlabError


def read_settings(params):
    """The params whose limits depend on the data, each checked on its own; and the checks between
    them that need no data (sample.n >= evaluate.n_samples, KID subset and pr_k <= evaluate.n_samples)."""
    g = config.get
    s = {"train_batch": g(params, "train.batch_size", int, lo=1),
         "data_in_memory": g(params, "train.data_in_memory", bool),
         "gan": {"arch": g(params, "gan.arch", str, choices=("mlp", "dcgan")),
                 "conditional": g(params, "gan.conditional", bool),
                 "latent_dim": g(params, "gan.latent_dim", int, lo=1),
                 "hidden": g(params, "gan.hidden", int, lo=1),
                 "filters": g(params, "gan.filters", int, lo=1)},
         "vae": {"arch": g(params, "vae.arch", str, choices=("mlp", "conv")),
                 "latent_dim": g(params, "vae.latent_dim", int, lo=1),
                 "hidden": g(params, "vae.hidden", int, lo=2),
                 "filters": g(params, "vae.filters", int, lo=1)},
         "evaluator": {"batch_size": g(params, "evaluator.batch_size", int, lo=1),
                       "filters": g(params, "evaluator.filters", list),
                       "feature_dim": g(params, "evaluator.feature_dim", int, lo=1)},
         "sample_n": g(params, "sample.n", int, lo=1),
         "attribute": g(params, "sample.attribute", list),
         "n_samples": g(params, "evaluate.n_samples", int, lo=2),
         "kid_subset_size": g(params, "evaluate.kid_subset_size", int, lo=2),
         "pr_k": g(params, "evaluate.pr_k", int, lo=1)}
    problems = []
    n = s["n_samples"]
    if s["sample_n"] < n:
        problems.append(f"sample.n ({s['sample_n']}) is smaller than evaluate.n_samples ({n}): "
                        "set sample.n >= evaluate.n_samples")
    if s["kid_subset_size"] > n:
        problems.append(f"evaluate.kid_subset_size ({s['kid_subset_size']}) is larger than evaluate.n_samples "
                        f"({n}), the images KID draws its subsets from: lower evaluate.kid_subset_size")
    if s["pr_k"] >= n:
        problems.append(f"evaluate.pr_k ({s['pr_k']}) must be smaller than evaluate.n_samples ({n}): lower it")
    if problems:
        raise GenlabError("; ".join(problems))
    return s


def _memory_problems(s, shape, n_train, n_classes, available):
    """Training memory of each model vs the memory available (genlab.training.budget)."""
    from genlab.training import budget
    pixels = shape[0] * shape[1] * shape[2]
    resident = n_train if s["data_in_memory"] else 0
    ev_filters = [f for f in s["evaluator"]["filters"] if isinstance(f, int)]
    models = {
        "train_gan": ("train.batch_size", s["train_batch"],
                      budget.gan_counts(shape, n_classes=n_classes, **s["gan"]), resident),
        "train_vae": ("train.batch_size", s["train_batch"], budget.vae_counts(shape, **s["vae"]), resident),
        "train_evaluator": ("evaluator.batch_size", s["evaluator"]["batch_size"],
                            budget.evaluator_counts(shape, filters=ev_filters, n_classes=n_classes,
                                                    feature_dim=s["evaluator"]["feature_dim"]), n_train),
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
    if s["train_batch"] > n_train:
        problems.append(f"train.batch_size ({s['train_batch']}) is larger than the training split "
                        f"({n_train} images): lower train.batch_size to at most {n_train}")
    if s["evaluator"]["batch_size"] > n_train:
        problems.append(f"evaluator.batch_size ({s['evaluator']['batch_size']}) is larger than the training split "
                        f"({n_train} images): lower evaluator.batch_size to at most {n_train}")
    n = s["n_samples"]
    if n > n_test:
        problems.append(f"evaluate.n_samples ({n}) is larger than the test split ({n_test} images): "
                        f"lower evaluate.n_samples to at most {n_test}")
    if n > n_train:
        problems.append(f"evaluate.n_samples ({n}) is larger than the training split ({n_train} images), "
                        f"which the real-vs-real floor draws from: lower evaluate.n_samples to at most {n_train}")
    kid_pool = min(n, n_test)
    if s["kid_subset_size"] > kid_pool:
        problems.append(f"evaluate.kid_subset_size ({s['kid_subset_size']}) is larger than the {kid_pool} images "
                        f"scored: lower evaluate.kid_subset_size to at most {kid_pool}")
    if s["pr_k"] >= kid_pool:
        problems.append(f"evaluate.pr_k ({s['pr_k']}) must be smaller than the {kid_pool} images scored: lower it")
    edit = s["attribute"]
    bad = [k for k in edit if isinstance(k, int) and not isinstance(k, bool) and not 0 <= k < n_classes]
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
