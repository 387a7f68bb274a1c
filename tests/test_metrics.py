"""Known-answer tests of the evaluation metrics, mostly on real Fashion-MNIST images.

Features come from an evaluator trained briefly (2 epochs on 4,000 real training images):
weak as a classifier, but its features separate clean from degraded images, which is all
these tests need. The evaluator's own accuracy gate is tested in test_evaluator.py.
"""

import dataclasses
import json
import math

import numpy as np
import pytest
import scipy.linalg
from scipy.ndimage import gaussian_filter

from genlab.errors import GenlabError
from genlab.evaluation.detect import memorization, pixel_two_sample_accuracy, two_sample_accuracy
from genlab.evaluation.elbo import binarize, vae_bounds
from genlab.evaluation.evaluator import features, features_and_proba
from genlab.evaluation.metrics import (
    class_histogram,
    classes_covered,
    classifier_score,
    frechet_distance,
    frechet_distance_from_stats,
    kid,
    kl_to_uniform,
    knn_sq_dists,
    precision_recall,
)
from genlab.evaluation.scoring import score_floor, score_images, score_models
from genlab.params import Evaluate, read

KID = dict(subset_size=250, n_subsets=50, seed=0)
NOISE_LEVELS = [0.0, 0.1, 0.2, 0.4, 0.8]   # std of added Gaussian noise, images in [-1, 1]
BLUR_LEVELS = [0.0, 0.5, 1.0, 1.5, 2.5]    # Gaussian blur sigma in pixels


@pytest.fixture(scope="module")
def evaluator(small_evaluator):
    return small_evaluator


@pytest.fixture(scope="module")
def test_feats(evaluator, fmnist_small):
    return features(evaluator, fmnist_small["test"][0])


def noisy(x, std, seed=0):
    return np.clip(x + std * np.random.default_rng(seed).standard_normal(x.shape), -1, 1).astype(np.float32)


def blurred(x, sigma):
    return gaussian_filter(x, sigma=(0, sigma, sigma, 0)) if sigma else x


def fd_reference(a, b):
    """The textbook formula, written plainly in float64 with scipy's general matrix square root."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    mu1, mu2 = a.mean(axis=0), b.mean(axis=0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


# ---- Fréchet distance and KID -----------------------------------------------------------------

def test_fd_matches_plain_reference_on_real_features(evaluator, fmnist_small, test_feats):
    x = fmnist_small["test"][0]
    a, b = test_feats[:500], features(evaluator, noisy(x[500:], 0.2))
    # units dead (always 0) in either set make the covariances singular, where sqrtm is inaccurate
    live = (a.std(axis=0) > 0) & (b.std(axis=0) > 0)
    assert live.sum() >= 10
    a, b = a[:, live], b[:, live]
    assert frechet_distance(a, b) == pytest.approx(fd_reference(a, b), rel=1e-6)


def test_fd_matches_reference_and_closed_form_on_gaussians():
    rng = np.random.default_rng(1)
    a = rng.standard_normal((2000, 16)) @ rng.standard_normal((16, 16))
    b = rng.standard_normal((1500, 16)) @ rng.standard_normal((16, 16)) + 0.5
    assert frechet_distance(a, b) == pytest.approx(fd_reference(a, b), rel=1e-9)
    # diagonal covariances: FD = |mu1 - mu2|^2 + sum (sqrt(v1) - sqrt(v2))^2
    mu1, mu2 = np.zeros(3), np.array([1.0, 2.0, 0.0])
    v1, v2 = np.array([1.0, 4.0, 9.0]), np.array([4.0, 4.0, 1.0])
    expected = 5.0 + (1 - 2) ** 2 + 0 + (3 - 1) ** 2
    assert frechet_distance_from_stats(mu1, np.diag(v1), mu2, np.diag(v2)) == pytest.approx(expected, rel=1e-12)


def test_identical_sets_score_zero(test_feats):
    assert frechet_distance(test_feats, test_feats) == pytest.approx(0.0, abs=1e-6)
    kid_same, _ = kid(test_feats, test_feats, **KID)
    kid_far, _ = kid(test_feats[:500], test_feats[500:] + 1.0, **KID)
    assert abs(kid_same) < 0.01 * kid_far


@pytest.mark.parametrize("degrade, levels", [(noisy, NOISE_LEVELS), (blurred, BLUR_LEVELS)], ids=["noise", "blur"])
def test_fd_and_kid_grow_with_degradation(evaluator, fmnist_raw, degrade, levels):
    x = fmnist_raw["x_test"][:4000].astype(np.float32)[..., None] / 127.5 - 1.0
    ref = features(evaluator, x[:2000])
    fds, kids = [], []
    for level in levels:  # level 0: real vs real (disjoint test images)
        f = features(evaluator, degrade(x[2000:], level))
        fds.append(frechet_distance(f, ref))
        kids.append(kid(f, ref, subset_size=1000, n_subsets=20, seed=0)[0])
    assert all(a < b for a, b in zip(fds, fds[1:])), fds
    assert all(a < b for a, b in zip(kids, kids[1:])), kids


def test_kid_is_seeded_and_refuses_oversized_subsets(test_feats):
    assert kid(test_feats, test_feats[::-1], **KID) == kid(test_feats, test_feats[::-1], **KID)
    with pytest.raises(GenlabError, match="subset size 2000"):
        kid(test_feats, test_feats, subset_size=2000, n_subsets=2, seed=0)


# ---- precision / recall ------------------------------------------------------------------------

def test_precision_recall_subset_and_superset(test_feats):
    subset = test_feats[:300]
    precision, recall = precision_recall(test_feats, subset, k=3)   # subset as generated
    assert precision == 1.0
    assert 0.0 < recall < 1.0
    precision, recall = precision_recall(subset, test_feats, k=3)   # superset as generated
    assert recall == 1.0


def test_noise_recalls_nothing(evaluator, test_feats):
    noise = np.random.default_rng(0).uniform(-1, 1, (1000, 28, 28, 1)).astype(np.float32)
    _, recall = precision_recall(test_feats, features(evaluator, noise), k=3)
    assert recall < 0.01
    # (precision of noise is not near 0 with a weak evaluator: a few real outliers have k-NN balls
    # wide enough to hold the tight cluster of noise features, the metric's known weakness)


def test_knn_blocks_agree_with_brute_force():
    rng = np.random.default_rng(0)
    q, r = rng.standard_normal((300, 5)), rng.standard_normal((9000, 5))  # > one reference block
    brute = np.sort(((q[:, None, :] - r[None, :, :]) ** 2).sum(-1), axis=1)[:, :4]
    np.testing.assert_allclose(knn_sq_dists(q, r, 4, batch_size=64), brute, rtol=1e-9, atol=1e-9)


# ---- class histogram, coverage, classifier score ------------------------------------------------

def one_hot(labels, n=10):
    return np.eye(n)[labels]


def test_kl_to_uniform_known_answers(evaluator, fmnist_small):
    assert kl_to_uniform(class_histogram(one_hot(np.full(500, 3)))) == pytest.approx(math.log(10), rel=1e-12)
    assert kl_to_uniform(class_histogram(one_hot(np.arange(1000) % 10))) == pytest.approx(0.0, abs=1e-12)
    _, proba = features_and_proba(evaluator, fmnist_small["test"][0])  # balanced real images, weak evaluator
    assert kl_to_uniform(class_histogram(proba)) < 0.1


def test_classes_covered_threshold():
    assert classes_covered(class_histogram(one_hot(np.full(500, 3))), min_share=0.1) == 1
    assert classes_covered(class_histogram(one_hot(np.arange(1000) % 10)), min_share=0.1) == 10
    # 1000 images: classes 0..8 get 10 each (1% = exactly 0.1 of the uniform 10% share), class 9 the rest
    labels = np.concatenate([np.repeat(np.arange(9), 10), np.full(910, 9)])
    hist = class_histogram(one_hot(labels))
    assert classes_covered(hist, min_share=0.1) == 10    # 10/1000 >= 0.1 * (1/10): covered
    assert classes_covered(hist, min_share=0.11) == 1    # only class 9
    labels[0] = 9                                        # class 0 down to 9 images (0.9%)
    hist = class_histogram(one_hot(labels))
    assert classes_covered(hist, min_share=0.1) == 9
    assert classes_covered(hist, min_share=0.0) == 10


def test_classifier_score_known_answers(evaluator, fmnist_small):
    assert classifier_score(one_hot(np.arange(1000) % 10)) == pytest.approx(10.0, rel=1e-12)
    assert classifier_score(np.full((100, 10), 0.1)) == pytest.approx(1.0, rel=1e-12)
    assert classifier_score(one_hot(np.full(100, 4))) == pytest.approx(1.0, rel=1e-12)
    _, proba = features_and_proba(evaluator, fmnist_small["test"][0])
    assert 4.0 < classifier_score(proba) < 10.0
    with pytest.raises(GenlabError, match="summing to 1"):
        classifier_score(np.full((3, 10), 0.5))


# ---- two-sample test and memorization ----------------------------------------------------------

@pytest.fixture(scope="module")
def full_test_feats(evaluator, fmnist_raw):
    x = fmnist_raw["x_test"].astype(np.float32)[..., None] / 127.5 - 1.0
    return features(evaluator, x)


def test_two_sample_test_on_real_halves_is_near_chance(full_test_feats):
    perm = np.random.default_rng(0).permutation(len(full_test_feats))
    a, b = full_test_feats[perm[:5000]], full_test_feats[perm[5000:]]
    acc = two_sample_accuracy(a, b, l2=1e-3, max_iter=500, seed=0)
    assert abs(acc - 0.5) < 0.05
    assert acc == two_sample_accuracy(a, b, l2=1e-3, max_iter=500, seed=0)


def test_two_sample_test_without_evidence_is_exactly_chance():
    same = np.ones((100, 8))  # nothing to learn: every logit is 0, ties count one half
    assert two_sample_accuracy(same, same, l2=1e-3, max_iter=50, seed=0) == 0.5


def test_two_sample_test_detects_noise(evaluator, full_test_feats):
    noise = np.random.default_rng(1).uniform(-1, 1, (5000, 28, 28, 1)).astype(np.float32)
    acc = two_sample_accuracy(full_test_feats[:5000], features(evaluator, noise), l2=1e-3, max_iter=500, seed=0)
    assert acc > 0.99


def test_pixel_detector_real_halves_near_chance_and_seeded(fmnist_raw):
    x = fmnist_raw["x_test"].astype(np.float32)[..., None] / 127.5 - 1.0
    a, b = x[:2000], x[2000:4000]
    acc = pixel_two_sample_accuracy(a, b, epochs=3, seed=0)
    assert abs(acc - 0.5) < 0.05
    assert acc == pixel_two_sample_accuracy(a, b, epochs=3, seed=0)


@pytest.mark.slow   # trains three pixel detectors
def test_pixel_detector_detects_noise_and_blur(fmnist_raw):
    """Real test images against other real test images with pixel noise (std 0.3 in [-1, 1]) or a
    Gaussian blur (sigma 1 pixel): the pixel CNN, trained 3 passes over 1,000 + 1,000 images, tells
    them apart (measured 0.855 and 0.884); the real-vs-real test above stays at chance."""
    x = fmnist_raw["x_test"].astype(np.float32)[..., None] / 127.5 - 1.0
    noisy = np.clip(x[2000:4000] + np.random.default_rng(0).normal(0, 0.3, x[:2000].shape), -1, 1).astype(np.float32)
    assert pixel_two_sample_accuracy(x[:2000], noisy, epochs=3, seed=0) > 0.75
    assert pixel_two_sample_accuracy(x[:2000], blurred(x[2000:4000], 1.0), epochs=3, seed=0) > 0.75
    with pytest.raises(GenlabError, match="at least 4 images of one shape"):
        pixel_two_sample_accuracy(x[:10], x[:10, :14], epochs=1, seed=0)


def test_memorization_copies_vs_heldout(fmnist_small):
    train, test = fmnist_small["train"][0], fmnist_small["test"][0]
    copies = memorization(train[:500], test[:500], train)
    assert copies["nn_ratio"] < 0.01
    assert copies["nn_median_heldout"] > 1.0  # images in [-1, 1]: real neighbours are far apart
    unseen = memorization(test[500:], test[:500], train)
    assert 0.8 < unseen["nn_ratio"] < 1.25


# ---- VAE bounds ----------------------------------------------------------------------------------

def tiny_vae(latent_dim=4, pixels=784, seed=0):
    """A randomly initialised VAE-like pair: one tanh hidden layer each, numpy only."""
    rng = np.random.default_rng(seed)
    w1, w2 = rng.normal(0, 0.05, (pixels, 32)), rng.normal(0, 0.3, (32, 2 * latent_dim))
    w3, w4 = rng.normal(0, 0.5, (latent_dim, 32)), rng.normal(0, 0.3, (32, pixels))

    def encode(x01):
        h = np.tanh(x01.reshape(len(x01), -1) @ w1) @ w2
        return h[:, :latent_dim], h[:, latent_dim:] - 1.0

    def decode_logits(z):
        return (np.tanh(z @ w3) @ w4).reshape(len(z), 28, 28, 1)

    return encode, decode_logits


def test_iw_bound_is_at_least_elbo_and_finite(fmnist_small):
    x01 = (fmnist_small["test"][0][:200] + 1.0) / 2.0
    encode, decode_logits = tiny_vae()
    b = vae_bounds(encode, decode_logits, x01, k=16, threshold=0.5, seed=0, batch_size=256)
    assert math.isfinite(b["elbo"]) and math.isfinite(b["iw_bound"])
    assert b["iw_bound"] >= b["elbo"]
    assert b["elbo"] < 0
    one = vae_bounds(encode, decode_logits, x01, k=1, threshold=0.5, seed=0)
    assert one["iw_bound"] == pytest.approx(one["elbo"], abs=1e-9)   # k = 1: the bounds coincide
    assert b == vae_bounds(encode, decode_logits, x01, k=16, threshold=0.5, seed=0, batch_size=256)


def test_elbo_known_answer_with_prior_posterior_and_fair_coins():
    """q(z|x) = p(z) and logits 0: every log w is exactly 784 * log(1/2)."""
    x01 = np.random.default_rng(0).uniform(0, 1, (10, 28, 28, 1))
    encode = lambda x: (np.zeros((len(x), 3)), np.zeros((len(x), 3)))  # noqa: E731
    decode_logits = lambda z: np.zeros((len(z), 784))  # noqa: E731
    b = vae_bounds(encode, decode_logits, x01, k=8, threshold=0.5, seed=0)
    assert b["elbo"] == pytest.approx(-784 * math.log(2), rel=1e-6)   # per-pixel terms in float32
    assert b["iw_bound"] == pytest.approx(-784 * math.log(2), rel=1e-6)


def test_binarization_rule_and_refusals():
    np.testing.assert_array_equal(binarize(np.array([0.0, 0.5, 0.50001, 1.0]), 0.5), [0, 0, 1, 1])
    encode, decode_logits = tiny_vae()
    with pytest.raises(GenlabError, match=r"in \[0, 1\]"):
        vae_bounds(encode, decode_logits, np.full((2, 28, 28, 1), -1.0), k=2, threshold=0.5, seed=0)
    with pytest.raises(GenlabError, match="plain autoencoder"):
        vae_bounds(lambda x: (np.zeros((len(x), 4)), None), decode_logits, np.zeros((2, 28, 28, 1)),
                   k=2, threshold=0.5, seed=0)


# ---- the full metric dict -----------------------------------------------------------------------

SETTINGS = Evaluate(kid_subset_size=200, kid_subsets=20, pr_k=3, coverage_min_share=0.1,
                    two_sample_l2=1e-3, two_sample_max_iter=300, pixel_detector_epochs=2, seed=0)


def test_score_images_dict_with_floor(evaluator, fmnist_small):
    train, test = fmnist_small["train"][0], fmnist_small["test"][0]
    result = score_images(evaluator, noisy(test[500:], 0.4), test[:500], train,
                          value_range=(-1.0, 1.0), settings=SETTINGS)
    assert result["n"] == 500
    gen, floor = result["generated"], result["floor"]
    assert set(floor) < set(gen) and {"nn_ratio", "nn_median_generated", "nn_median_heldout"} <= set(gen)
    for d in (gen, floor):
        for key, value in d.items():
            assert type(value) in (float, int) and math.isfinite(value), key
    assert floor["fd"] < gen["fd"] and floor["kid"] < gen["kid"]
    assert abs(floor["detector_accuracy"] - 0.5) < 0.1 < gen["detector_accuracy"] - 0.5
    assert abs(floor["pixel_detector_accuracy"] - 0.5) < 0.1 < gen["pixel_detector_accuracy"] - 0.5
    assert floor["classes_covered"] == 10 and floor["precision"] > 0.5


@pytest.mark.slow   # scores two models
def test_score_models_shares_the_real_side(evaluator, fmnist_small):
    train, test = fmnist_small["train"][0], fmnist_small["test"][0]
    a, b = noisy(test[500:], 0.4), blurred(test[500:], 1.5)
    kw = dict(value_range=(-1.0, 1.0), settings=SETTINGS)
    both = score_models(evaluator, {"a": a, "b": b}, test[:500], train, **kw)
    assert set(both) == {"n", "a", "b", "floor"}
    single = score_images(evaluator, b, test[:500], train, **kw)
    assert both["b"] == single["generated"] and both["floor"] == single["floor"]


@pytest.mark.slow   # scores twice at full slice size
def test_a_floor_computed_once_gives_the_same_scores(evaluator, fmnist_small):
    """The floor stage's score_floor, handed to score_models, gives the scores of score_models alone."""
    train, test = fmnist_small["train"][0], fmnist_small["test"][0]
    kw = dict(value_range=(-1.0, 1.0), settings=SETTINGS)
    gen = {"a": noisy(test[500:], 0.4)}
    floor = score_floor(evaluator, test[:500], train, **kw)
    assert set(floor) == {"n", "floor", "nn_median_heldout"} and floor["n"] == 500
    alone = score_models(evaluator, gen, test[:500], train, **kw)
    assert score_models(evaluator, gen, test[:500], train, floor=floor, **kw) == alone
    with pytest.raises(GenlabError, match="the floor was computed for 400 test images, not 500"):
        score_models(evaluator, gen, test[:500], train, floor=score_floor(evaluator, test[:400], train, **kw), **kw)


def test_a_floor_file_of_other_inputs_or_unreadable_is_refused(evaluator, fmnist_small, tmp_path):
    from genlab.evaluation import floor as floor_file
    from genlab.params import Cas
    (x, y), test = fmnist_small["train"], fmnist_small["test"]
    cas = Cas(n=100, epochs=1, batch_size=10, lr=0.01, seed=0)
    key = floor_file.key(evaluator, test, (x, y), SETTINGS, cas)
    (tmp_path / "floor.json").write_text(json.dumps(floor_file.seal({"key": key, "n": 1000})))
    assert floor_file.load(tmp_path / "floor.json", key)["n"] == 1000
    others = [floor_file.key(evaluator, test, (x[1:], y[1:]), SETTINGS, cas),
              floor_file.key(evaluator, test, (x, y), dataclasses.replace(SETTINGS, seed=1), cas),
              floor_file.key(evaluator, test, (x, y), SETTINGS, dataclasses.replace(cas, n=200))]
    weight = evaluator.weights[-1]
    saved = weight.numpy()
    weight.assign(saved + 1e-3)                   # another evaluator
    try:
        others.append(floor_file.key(evaluator, test, (x, y), SETTINGS, cas))
    finally:
        weight.assign(saved)
    # the same weights saved again (a retrained evaluator: another save date and training time) keep the key
    import keras
    evaluator.save(tmp_path / "again.keras")
    assert floor_file.key(keras.saving.load_model(tmp_path / "again.keras", compile=False), test, (x, y), SETTINGS,
                          cas) == key
    for other in others:
        with pytest.raises(GenlabError, match=r"was computed from other data, another evaluator or other "
                                              r"evaluate/cas settings: run `dvc repro floor`"):
            floor_file.load(tmp_path / "floor.json", other)
    (tmp_path / "floor.json").write_text("{")
    with pytest.raises(GenlabError, match=r"cannot be read \(JSONDecodeError\): run `dvc repro floor`"):
        floor_file.load(tmp_path / "floor.json", key)


def test_a_floor_file_edited_by_hand_is_refused(evaluator, fmnist_small, tmp_path):
    """Issue 26 item 3: metrics/floor.json is committed and evaluate may be run by hand: a number edited
    in it (valid JSON, the key still right) does not match the file's check, and load refuses it in one
    line naming the file and the fix; the file as the stage wrote it (indented, NaN as null) loads."""
    from genlab.evaluation import floor as floor_file
    from genlab.io import write_json
    path = tmp_path / "metrics" / "floor.json"
    path.parent.mkdir()
    floor = {"key": "k" * 64, "floor": {"fd": 0.3312, "kid": float("nan"), "coverage": (10, 10)},
             "nn_median_heldout": 7.25}
    write_json(path, floor_file.seal(floor))
    assert floor_file.load(path, "k" * 64)["floor"] == {"fd": 0.3312, "kid": None, "coverage": [10, 10]}
    text = path.read_text()
    for edit in (text.replace("0.3312", "0.1312"), text.replace('"kid": null', '"kid": 0.001'),
                 text.replace("7.25", "7.5"), json.dumps({k: v for k, v in json.loads(text).items() if k != "check"})):
        path.write_text(edit)
        with pytest.raises(GenlabError) as e:
            floor_file.load(path, "k" * 64)
        assert str(e.value) == (f"{path} was changed after the floor stage wrote it (its contents do not match "
                                f"their check): run `dvc repro floor` to compute it again, or restore it with "
                                f"`git checkout -- {path}`")
    # a real floor, as the floor stage writes it: it loads as written, and any number edited is refused
    train, test = fmnist_small["train"][0], fmnist_small["test"][0]
    real = {"key": "r" * 64, **score_floor(evaluator, test[:400], train, value_range=(-1.0, 1.0), settings=SETTINGS)}
    write_json(path, floor_file.seal(real))
    loaded = floor_file.load(path, "r" * 64)
    assert loaded["floor"] == json.loads(json.dumps(real["floor"])) and loaded["n"] == 400
    for metric, value in real["floor"].items():
        edited = json.loads(path.read_text())
        edited["floor"][metric] = value + 1
        path.write_text(json.dumps(edited, indent=2))
        with pytest.raises(GenlabError, match="was changed after the floor stage wrote it"):
            floor_file.load(path, "r" * 64)


def test_score_images_refusals(evaluator, fmnist_small):
    train, test = fmnist_small["train"][0], fmnist_small["test"][0]
    kw = dict(value_range=(-1.0, 1.0), settings=SETTINGS)
    with pytest.raises(GenlabError, match="same number"):
        score_images(evaluator, test[:400], test[:500], train, **kw)
    bad = test[:500].copy()
    bad[3, 0, 0, 0] = np.nan
    with pytest.raises(GenlabError, match="NaN"):
        score_images(evaluator, bad, test[:500], train, **kw)
    with pytest.raises(GenlabError, match=r"map them to the processed data's range"):
        score_images(evaluator, (test[:500] + 1) * 127.5, test[:500], train, **kw)


def test_read_settings_validates_every_value():
    params = {"evaluate": {"kid_subset_size": 1000, "kid_subsets": 100, "pr_k": 3, "coverage_min_share": 0.1,
                           "two_sample_l2": 0.001, "two_sample_max_iter": 500, "pixel_detector_epochs": 5,
                           "seed": 0}}
    keys = tuple(params["evaluate"])       # the scoring settings only: the other evaluate.* keys stay None
    assert read(params, "evaluate", keys).pr_k == 3 and read(params, "evaluate", keys).iw_k is None
    params["evaluate"]["pr_k"] = "three"
    with pytest.raises(GenlabError, match="evaluate.pr_k must be a positive integer, got 'three'"):
        read(params, "evaluate", keys)
