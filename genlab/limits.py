"""The limits a param must fit that depend on the data or on another param: one function per rule.

Each rule returns None when the values fit, else the problem in one phrase that names the param and
the fix. stages/check_data.py calls every rule at once, right after normalize, so a misfit stops
`dvc repro` before any long stage; the stage or library function that relies on a rule calls the
same function through `require`, so a stage run by hand says the same thing.
"""

from pathlib import Path

import yaml

from genlab.errors import GenlabError

DVC_YAML = Path(__file__).resolve().parents[1] / "dvc.yaml"   # the project's, beside genlab/


def declared_params(stage=None, dvc_yaml=DVC_YAML):
    """The param keys dvc.yaml lists: for one stage ({section: (key, ...)} in dvc.yaml's order), or for
    every stage (a set of dotted keys). dvc.yaml is the one list: check_data checks exactly the keys DVC
    re-runs it for, and tests/test_dvc_yaml.py checks each stage reads exactly the keys listed for it."""
    try:
        stages = yaml.safe_load(Path(dvc_yaml).read_text()).get("stages", {})
    except (OSError, yaml.YAMLError, AttributeError) as e:
        raise GenlabError(f"cannot read the stages' params from {dvc_yaml} ({type(e).__name__}): "
                          "restore it with `git checkout dvc.yaml`") from None
    keys = [p for name, d in stages.items() if stage in (None, name) and isinstance(d, dict)
            for p in d.get("params", []) if isinstance(p, str)]
    if stage is None:
        return set(keys)
    sections = {}
    for key in keys:
        section, _, field = key.partition(".")
        sections.setdefault(section, []).append(field)
    return {section: tuple(fields) for section, fields in sections.items()}


def require(*problems):
    """Raise one GenlabError naming every problem that is not None (in order, without repeats)."""
    found = [p for p in dict.fromkeys(problems) if p]
    if found:
        raise GenlabError("; ".join(found))


def batch_fits(key, batch_size, n_train):
    """A batch (train.batch_size, evaluator.batch_size) is drawn from the training split."""
    if batch_size > n_train:
        return (f"{key} ({batch_size}) is larger than the training split ({n_train} images): "
                f"lower {key} to at most {n_train}")
    return None


def scored_fit_test(n_samples, n_test):
    """evaluate.n_samples test images are scored."""
    if n_samples > n_test:
        return (f"evaluate.n_samples ({n_samples}) is larger than the test split ({n_test} images): "
                f"lower evaluate.n_samples to at most {n_test}")
    return None


def floor_fits_train(n_samples, n_train):
    """The real-vs-real floor scores evaluate.n_samples training images."""
    if n_samples > n_train:
        return (f"evaluate.n_samples ({n_samples}) is larger than the training split ({n_train} images), "
                f"which the real-vs-real floor draws from: lower evaluate.n_samples to at most {n_train}")
    return None


def kid_subset_fits(kid_subset_size, scored):
    """KID draws its subsets from the `scored` images."""
    if kid_subset_size > scored:
        return (f"evaluate.kid_subset_size ({kid_subset_size}) is larger than the {scored} images scored: "
                f"lower evaluate.kid_subset_size to at most {scored}")
    return None


def pr_k_fits(pr_k, scored):
    """Precision/recall look for pr_k neighbours among the `scored` images."""
    if pr_k >= scored:
        return f"evaluate.pr_k ({pr_k}) must be smaller than the {scored} images scored: lower it"
    return None


def curve_n_fits(curve_n, n_val, snapshot_every, min_curve_n):
    """The quality curves score evaluate.curve_n validation images (when there are snapshots)."""
    if snapshot_every <= 0 or curve_n <= n_val:
        return None
    if n_val < min_curve_n:
        return (f"evaluate.curve_n ({curve_n}) is larger than the validation split ({n_val} images) the quality "
                f"curves are scored against, which is below the smallest curve ({min_curve_n}): raise "
                "normalize.val_fraction (or set train.snapshot_every: 0)")
    return (f"evaluate.curve_n ({curve_n}) is larger than the validation split ({n_val} images) the quality curves "
            f"are scored against: lower evaluate.curve_n to at most {n_val} (or set train.snapshot_every: 0)")


def cas_fits_train(cas_n, n_train):
    """The classification accuracy score's floor trains on cas.n training images."""
    if cas_n > n_train:
        return (f"cas.n ({cas_n}) is larger than the training split ({n_train} images), which the "
                f"classification accuracy score's floor draws from: lower cas.n to at most {n_train}")
    return None


def samples_hold_scored(sample_n, n_samples):
    """evaluate scores the first evaluate.n_samples of the sample.n generated images."""
    if sample_n < n_samples:
        return (f"sample.n ({sample_n}) is smaller than evaluate.n_samples ({n_samples}): "
                "set sample.n >= evaluate.n_samples")
    return None


def samples_hold_cas(sample_n, cas_n):
    """The classification accuracy score trains on the first cas.n of the sample.n generated images."""
    if cas_n > sample_n:
        return (f"cas.n ({cas_n}) is larger than sample.n ({sample_n}), the generated images the classification "
                "accuracy score trains on: set sample.n >= cas.n or lower cas.n")
    return None


def attribute_classes(attribute, n_classes):
    """sample.attribute names two classes of the data."""
    bad = [k for k in attribute if not 0 <= k < n_classes]
    if bad:
        return (f"sample.attribute {attribute!r} names class {bad[0]} but the data have {n_classes} classes "
                f"(0..{n_classes - 1}): set sample.attribute to two class ids in 0..{n_classes - 1}")
    return None
