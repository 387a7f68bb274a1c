"""The evaluate.* numbers scoring needs, validated without importing TensorFlow (check_params reads
them through stages/evaluate.py read_settings and must stay quick)."""

from dataclasses import dataclass

from genlab import config


@dataclass(frozen=True)
class ScoreSettings:
    """The numbers score_images needs (the evaluate: section of params.yaml)."""
    kid_subset_size: int
    kid_subsets: int
    pr_k: int
    coverage_min_share: float
    two_sample_l2: float
    two_sample_max_iter: int
    seed: int


def read_settings(params):
    """ScoreSettings from a params dict, every value validated (keys evaluate.*)."""
    g = config.get
    return ScoreSettings(
        kid_subset_size=g(params, "evaluate.kid_subset_size", int, lo=2),
        kid_subsets=g(params, "evaluate.kid_subsets", int, lo=1),
        pr_k=g(params, "evaluate.pr_k", int, lo=1),
        coverage_min_share=g(params, "evaluate.coverage_min_share", float, lo=0.0, hi=1.0),
        two_sample_l2=g(params, "evaluate.two_sample_l2", float, lo=0.0),
        two_sample_max_iter=g(params, "evaluate.two_sample_max_iter", int, lo=1),
        seed=g(params, "evaluate.seed", int, lo=0),
    )
