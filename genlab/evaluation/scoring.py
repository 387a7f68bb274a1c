"""The full metric dict for generated images, with its real-vs-real floor.

score_images(evaluator, generated, test, train, ...) returns
  {"n": N,
   "generated": metrics of the N generated images against the N real test images,
   "floor":     the same metrics for N training images (seeded draw) against the same test images}
with every value a plain finite number (int for the counts n and classes_covered, float otherwise).
score_models(evaluator, {name: images, ...}, test, train, ...) scores several models at once
({"n": N, name: metrics, ..., "floor": ...}), computing the real side only once.
score_floor(evaluator, test, train, ...) is that real side alone (the floor stage's): it depends on
the data, the evaluator and the settings only, so score_models(..., floor=) takes it ready-made.
The floor is what a perfect model would score at this N.
Memorization is reported for generated images only: its ratio is already normalised by held-out
real images (the floor of the ratio is 1 by construction).
"""

import math

import numpy as np

from genlab.errors import GenlabError
from genlab.evaluation.detect import (
    memorization_summary,
    nearest_train_distances,
    pixel_two_sample_accuracy,
    two_sample_accuracy,
)
from genlab.evaluation.evaluator import features_and_proba
from genlab.evaluation.metrics import (
    class_histogram,
    classes_covered,
    classifier_score,
    frechet_distance,
    kid,
    kl_to_uniform,
    precision_recall,
)
from genlab.limits import floor_fits_train, require


def _check_images(x, what, value_range):
    x = np.asarray(x, dtype=np.float32)
    if len(x) == 0:
        raise GenlabError(f"{what}: no images to score")
    if not np.isfinite(x).all():
        raise GenlabError(f"{what} contain NaN or Inf: the model diverged; retrain it")
    lo, hi = value_range
    tol = 1e-3 * (hi - lo)
    if x.min() < lo - tol or x.max() > hi + tol:
        raise GenlabError(f"{what} span [{x.min():.3g}, {x.max():.3g}] but the evaluator takes images "
                          f"in [{lo}, {hi}]: map them to the processed data's range first")
    return x


def _sample_metrics(f_fake, p_fake, f_real, s, x_fake, x_real):
    """Metrics of one image set (features, probabilities; the images for the pixel detector)
    against the real test features and images."""
    kid_mean, kid_std = kid(f_fake, f_real, subset_size=s.kid_subset_size,
                            n_subsets=s.kid_subsets, seed=s.seed)
    precision, recall = precision_recall(f_real, f_fake, k=s.pr_k)
    hist = class_histogram(p_fake)
    return {
        "fd": frechet_distance(f_fake, f_real),
        "kid": kid_mean,
        "kid_std": kid_std,
        "precision": precision,
        "recall": recall,
        "kl_uniform": kl_to_uniform(hist),
        "classes_covered": classes_covered(hist, min_share=s.coverage_min_share),
        "classifier_score": classifier_score(p_fake),
        "detector_accuracy": two_sample_accuracy(f_real, f_fake, l2=s.two_sample_l2,
                                                   max_iter=s.two_sample_max_iter, seed=s.seed),
        "pixel_detector_accuracy": pixel_two_sample_accuracy(x_real, x_fake, epochs=s.pixel_detector_epochs,
                                                             seed=s.seed),
    }


def _check_real(test, train, value_range):
    test = _check_images(test, "test images", value_range)
    train = _check_images(train, "training images", value_range)
    require(floor_fits_train(len(test), len(train)))
    return test, train


def score_floor(evaluator, test, train, *, value_range, settings):
    """The real-vs-real floor at N = len(test): {"n": N, "floor": the metrics of N training images (a
    draw keyed by settings.seed) against the test images, "nn_median_heldout": the median pixel distance
    of the test images to their nearest training image (the memorization ratio's denominator)}."""
    s = settings
    test, train = _check_real(test, train, value_range)
    n = len(test)
    floor_idx = np.sort(np.random.default_rng(s.seed).choice(len(train), n, replace=False))
    f_test, _ = features_and_proba(evaluator, test)
    f_floor, p_floor = features_and_proba(evaluator, train[floor_idx])
    result = {"n": n, "floor": _sample_metrics(f_floor, p_floor, f_test, s, train[floor_idx], test),
              "nn_median_heldout": float(np.median(nearest_train_distances(test, train)))}
    _check_finite({"floor": result["floor"]})
    return result


def _check_finite(result):
    bad = [f"{part}.{k}" for part, d in result.items() if isinstance(d, dict)
           for k, v in d.items() if not math.isfinite(v)]
    if bad:
        raise GenlabError(f"metrics {', '.join(bad)} are not finite: report this as a bug with the images")


def score_models(evaluator, generated, test, train, *, value_range, settings, floor=None):
    """Score several generated sets against one test set, sharing the real-side work.

    generated: {name: images}. Returns {"n": N, name: metrics for each name, "floor": floor metrics}.
    Images (N, H, W, C) in the evaluator's value_range; every set holds N images like test;
    train holds at least N. settings: a genlab.params.Evaluate (kid_subset_size, kid_subsets, pr_k,
    coverage_min_share, two_sample_l2, two_sample_max_iter, seed are used). floor: score_floor's result
    for the same evaluator, images and settings (the floor stage's), else it is computed here.
    """
    s = settings
    test, train = _check_real(test, train, value_range)
    n = len(test)
    gens = {name: _check_images(x, f"generated images of {name}", value_range) for name, x in generated.items()}
    for name, x in gens.items():
        if len(x) != n:
            raise GenlabError(f"{name}: {len(x)} generated images vs {n} test images: compare the same "
                              "number on both sides (sample as many images as are scored)")
    if floor is None:
        floor = score_floor(evaluator, test, train, value_range=value_range, settings=s)
    elif floor["n"] != n:
        raise GenlabError(f"the floor was computed for {floor['n']} test images, not {n}: compute it again")
    f_test, _ = features_and_proba(evaluator, test)
    result = {"n": n}
    for name, x in gens.items():
        f_gen, p_gen = features_and_proba(evaluator, x)
        result[name] = _sample_metrics(f_gen, p_gen, f_test, s, x, test)
        result[name].update(memorization_summary(nearest_train_distances(x, train), floor["nn_median_heldout"]))
    _check_finite(result)
    result["floor"] = dict(floor["floor"])
    return result


def score_images(evaluator, generated, test, train, *, value_range, settings):
    """The metric dict of one generated set (see module docstring): score_models for one model.

    generated and test must hold the same number N of images; train must hold at least N.
    """
    return score_models(evaluator, {"generated": generated}, test, train, value_range=value_range,
                        settings=settings)
