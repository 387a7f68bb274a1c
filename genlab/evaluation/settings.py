"""The evaluate.* numbers scoring needs, validated without importing TensorFlow (check_params reads
them through stages/evaluate.py read_settings and must stay quick)."""

from dataclasses import dataclass

from genlab import config
from genlab.errors import GenlabError


@dataclass(frozen=True)
class ScoreSettings:
    """The numbers score_images needs (the evaluate: section of params.yaml)."""
    kid_subset_size: int
    kid_subsets: int
    pr_k: int
    coverage_min_share: float
    two_sample_l2: float
    two_sample_max_iter: int
    pixel_detector_epochs: int
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
        pixel_detector_epochs=g(params, "evaluate.pixel_detector_epochs", int, lo=1),
        seed=g(params, "evaluate.seed", int, lo=0),
    )


def check_gates(gates):
    """The evaluate.min_evaluator_accuracy mapping {dataset name: minimum test accuracy} with every
    value checked to be a number in [0, 1] (the evaluate stage's read_settings calls this)."""
    for dataset, gate in gates.items():
        if isinstance(gate, bool) or not isinstance(gate, (int, float)) or not 0 <= gate <= 1:
            raise GenlabError(f"evaluate.min_evaluator_accuracy.{dataset} must be a number in [0, 1], got {gate!r}")
    return {dataset: float(gate) for dataset, gate in gates.items()}
