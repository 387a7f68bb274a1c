"""Seed spread: how much each metric of metrics/evaluate.json moves between training seeds at fixed
params, and whether a measured change is beyond that noise (studies/spread.py measures it; the report
and the CI comment use it). Pure Python: no TensorFlow.

A change between two runs is *beyond seed noise* when |change| > 2 × sqrt(2) × sd, sd being the
metrics' standard deviation over seeds: each of the two runs carries one seed's noise, so their
difference has sd × sqrt(2), and 2 of those is the usual ~95 % line.
"""

import math

RULE = ("A change between two runs is beyond seed noise when |change| > 2 × √2 × sd (sd: the metric's "
        "standard deviation over training seeds; each run carries one seed's noise).")
NOISE_FACTOR = 2 * math.sqrt(2)


def flatten(tree):
    """{"gan": {"fd": 8.8}} -> {"gan.fd": 8.8}: the numeric leaves (bools excluded)."""
    return {k: float(v) for k, v in _leaves(tree).items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def summarize(runs):
    """runs: {seed: metrics dict as in metrics/evaluate.json} (at least 2) -> {"gan.fd": {"mean", "std",
    "min", "max", "n"}} over the keys every run has; std is the sample standard deviation (n - 1)."""
    if len(runs) < 2:
        raise ValueError(f"a spread needs at least two runs, got {len(runs)}")
    flat = [flatten(m) for m in runs.values()]
    keys = [k for k in flat[0] if all(k in f for f in flat[1:])]
    stats = {}
    for key in keys:
        values = [f[key] for f in flat]
        n = len(values)
        mean = sum(values) / n
        std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
        stats[key] = {"mean": mean, "std": std, "min": min(values), "max": max(values), "n": n}
    return stats


def params_differences(a, b, ignore=()):
    """The dotted keys whose values differ between two params trees (either side missing counts),
    except those in ignore."""
    fa, fb = _leaves(a), _leaves(b)
    return sorted(k for k in set(fa) | set(fb) if k not in ignore and fa.get(k, _NONE) != fb.get(k, _NONE))


_NONE = object()


def _leaves(tree, prefix=""):
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value and key != "min_evaluator_accuracy":
            out.update(_leaves(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value
    return out


def verdict(change, std):
    """"beyond noise", "within noise" or "" (no spread for this metric)."""
    if std is None:
        return ""
    if std == 0:
        return "beyond noise" if change != 0 else "within noise"
    return "beyond noise" if abs(change) > NOISE_FACTOR * std else "within noise"


def diff_rows(metrics_diff, stats):
    """dvc metrics diff --json's {"metrics/evaluate.json": {"gan.fd": {"old", "new", "diff"}}} ->
    rows (metric, old, new, change, sd or None, verdict) for the evaluate.json metrics."""
    rows = []
    for path, changes in sorted(metrics_diff.items()):
        if not path.endswith("evaluate.json"):
            continue
        for key, d in sorted(changes.items()):
            old, new = d.get("old"), d.get("new")
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (old, new)):
                continue
            change = new - old
            sd = stats[key]["std"] if key in stats else None
            rows.append((key, old, new, change, sd, verdict(change, sd)))
    return rows
