"""Sample-quality metrics on evaluator features and class probabilities (plain numpy/scipy).

Feature sets are arrays (N, d); everything is computed in float64 and vectorized, with large
distance matrices built in row/column blocks so memory stays bounded (about batch_size * 8192
doubles per block). Functions return plain Python floats.
  frechet_distance       Fréchet distance between Gaussian fits (lower is better)
  kid                    kernel inception distance: unbiased MMD^2, cubic kernel (lower is better)
  precision_recall       improved precision/recall, Kynkäänniemi et al. 2019 (higher is better)
  class_histogram, kl_to_uniform, classes_covered, classifier_score   class balance/diversity
Nearest-neighbour helpers (knn_sq_dists, within_radius) are shared with genlab.evaluation.detect.
"""

import numpy as np
from scipy.special import xlogy

from genlab.errors import GenlabError

_REF_BLOCK = 8192  # reference points per distance block


def as_features(f, what="features", min_rows=1):
    """f as a finite float64 (N, d) array; a GenlabError names what is wrong."""
    f = np.asarray(f, dtype=np.float64)
    if f.ndim != 2:
        raise GenlabError(f"{what} must be a 2-D array (N, d), got shape {f.shape}")
    if len(f) < min_rows:
        raise GenlabError(f"{what} needs at least {min_rows} rows, got {len(f)}")
    if not np.isfinite(f).all():
        raise GenlabError(f"{what} contain NaN or Inf: the images they come from are not finite "
                          "(did the model diverge?)")
    return f


def _same_width(a, b):
    if a.shape[1] != b.shape[1]:
        raise GenlabError(f"feature sets differ in width ({a.shape[1]} vs {b.shape[1]}): "
                          "compute both with the same evaluator")


# ---- Fréchet distance ------------------------------------------------------------------------

def gaussian_stats(f):
    """Mean (d,) and covariance (d, d) of features (N, d), float64."""
    f = as_features(f, min_rows=2)
    return f.mean(axis=0), np.cov(f, rowvar=False)


def _psd_sqrt(s):
    """Symmetric square root of a symmetric positive semi-definite matrix (round-off clipped)."""
    w, v = np.linalg.eigh(s)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def frechet_distance_from_stats(mu1, sigma1, mu2, sigma2):
    """||mu1 - mu2||^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2)).

    S1 S2 has the same eigenvalues as A S2 A with A = S1^(1/2), which is symmetric PSD, so the
    trace of the square root is the sum of square roots of eigvalsh(A S2 A): no complex
    arithmetic, no imaginary round-off to discard. Tiny negative results are clipped to 0.
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    s1, s2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    a = _psd_sqrt(s1)
    m = a @ s2 @ a
    tr_covmean = np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0.0, None)).sum()
    diff = mu1 - mu2
    fd = diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * tr_covmean
    return max(float(fd), 0.0)


def frechet_distance(f1, f2):
    """Fréchet distance between Gaussian fits of two feature sets (N1, d) and (N2, d)."""
    f1, f2 = as_features(f1, "features 1", 2), as_features(f2, "features 2", 2)
    _same_width(f1, f2)
    return frechet_distance_from_stats(*gaussian_stats(f1), *gaussian_stats(f2))


# ---- KID -------------------------------------------------------------------------------------

def _poly_kernel(a, b):
    """k(a, b) = (a.b/d + 1)^3 for all row pairs, (len(a), len(b)); in place (x**3 is 10x slower)."""
    k = a @ b.T
    k /= a.shape[1]
    k += 1.0
    cube = np.multiply(k, k)
    cube *= k
    return cube


def _mmd2_unbiased(x, y):
    """Unbiased MMD^2 of equal-size samples x, y (m, d) with the cubic polynomial kernel."""
    m = len(x)
    kxx, kyy, kxy = _poly_kernel(x, x), _poly_kernel(y, y), _poly_kernel(x, y)
    off = m * (m - 1)
    return ((kxx.sum() - np.trace(kxx)) / off + (kyy.sum() - np.trace(kyy)) / off
            - 2.0 * kxy.mean())


def kid(f1, f2, *, subset_size, n_subsets, seed):
    """Kernel inception distance: (mean, std) of unbiased MMD^2 over random subsets.

    Each of n_subsets draws subset_size rows of each set without replacement (seeded);
    std is the spread over subsets (ddof=0). Can be slightly negative when the sets match.
    """
    f1, f2 = as_features(f1, "features 1"), as_features(f2, "features 2")
    _same_width(f1, f2)
    if subset_size < 2 or subset_size > min(len(f1), len(f2)):
        raise GenlabError(f"KID subset size {subset_size} must be in [2, {min(len(f1), len(f2))}] "
                          "(the smaller set's size): lower the subset size or compare more images")
    if n_subsets < 1:
        raise GenlabError(f"KID needs at least 1 subset, got {n_subsets}")
    rng = np.random.default_rng(seed)
    vals = np.empty(n_subsets)
    for i in range(n_subsets):  # a loop over subsets; each subset is one vectorized step
        x = f1[rng.choice(len(f1), subset_size, replace=False)]
        y = f2[rng.choice(len(f2), subset_size, replace=False)]
        vals[i] = _mmd2_unbiased(x, y)
    return float(vals.mean()), float(vals.std())


# ---- nearest neighbours and improved precision/recall ---------------------------------------

def _partial_sq_dists(a, b, b_sq):
    """|b_j|^2 - 2 a_i.b_j for all pairs (len(a), len(b)): the squared distance minus |a_i|^2,
    which is constant along a row, so it is added only to the few entries a caller keeps."""
    d = a @ b.T
    d *= -2.0
    d += b_sq[None, :]
    return d


def knn_sq_dists(query, ref, k, *, batch_size=1024):
    """The k smallest squared distances from each query row to the rows of ref, sorted (nq, k).

    Blocked over queries and references; a query that is itself in ref finds itself at 0
    (up to round-off: results are clipped at 0).
    """
    if not 1 <= k <= len(ref):
        raise GenlabError(f"k = {k} nearest neighbours need 1 <= k <= {len(ref)} reference points")
    q_sq, r_sq = np.einsum("ij,ij->i", query, query), np.einsum("ij,ij->i", ref, ref)
    out = np.empty((len(query), k), dtype=np.float64)
    for i in range(0, len(query), batch_size):
        q = slice(i, i + batch_size)
        best = None
        for j in range(0, len(ref), _REF_BLOCK):
            d = _partial_sq_dists(query[q], ref[j:j + _REF_BLOCK], r_sq[j:j + _REF_BLOCK])
            if k == 1:
                d = d.min(axis=1, keepdims=True)
            else:
                kk = min(k, d.shape[1])
                d = np.partition(d, kk - 1, axis=1)[:, :kk]
            if best is not None:
                d = np.concatenate([best, d], axis=1)
                d = np.partition(d, k - 1, axis=1)[:, :k] if d.shape[1] > k else d
            best = d
        out[q] = np.maximum(np.sort(best, axis=1) + q_sq[q, None], 0.0)
    return out


def knn_radii(f, k, *, batch_size=1024):
    """Distance from each row of f to its k-th nearest other row of f (self excluded)."""
    return np.sqrt(knn_sq_dists(f, f, k + 1, batch_size=batch_size)[:, k])


def within_radius(query, ref, radii, *, batch_size=1024):
    """Boolean (nq,): is each query row within radii[j] of some ref row j (a k-NN ball)?"""
    q_sq, r_sq = np.einsum("ij,ij->i", query, query), np.einsum("ij,ij->i", ref, ref)
    r2 = np.asarray(radii, np.float64) ** 2
    hit = np.zeros(len(query), dtype=bool)
    for i in range(0, len(query), batch_size):
        q = slice(i, i + batch_size)
        for j in range(0, len(ref), _REF_BLOCK):
            r = slice(j, j + _REF_BLOCK)
            # |q|^2 + |r|^2 - 2 q.r <= radius^2  <=>  |r|^2 - 2 q.r - radius^2 <= -|q|^2
            d = _partial_sq_dists(query[q], ref[r], r_sq[r] - r2[r])
            hit[q] |= (d <= -q_sq[q, None]).any(axis=1)
    return hit


def precision_recall(real, fake, *, k, batch_size=1024):
    """Improved precision and recall (Kynkäänniemi et al. 2019) of fake features against real.

    The real manifold is the union of balls around real points with radius the distance to their
    k-th nearest real neighbour; precision is the fraction of fake points inside it. Recall swaps
    the roles (fraction of real points inside the fake manifold). Returns (precision, recall).
    """
    real, fake = as_features(real, "real features", k + 1), as_features(fake, "generated features", k + 1)
    _same_width(real, fake)
    r_real = knn_radii(real, k, batch_size=batch_size)
    r_fake = knn_radii(fake, k, batch_size=batch_size)
    precision = within_radius(fake, real, r_real, batch_size=batch_size).mean()
    recall = within_radius(real, fake, r_fake, batch_size=batch_size).mean()
    return float(precision), float(recall)


# ---- class histogram, coverage, classifier score --------------------------------------------

def _as_proba(p):
    p = np.asarray(p, dtype=np.float64)
    if p.ndim != 2 or len(p) == 0:
        raise GenlabError(f"class probabilities must be a non-empty (N, n_classes) array, got {p.shape}")
    if not np.isfinite(p).all() or (p < 0).any() or not np.allclose(p.sum(axis=1), 1.0, atol=1e-4):
        raise GenlabError("class probabilities must be finite, non-negative rows summing to 1: "
                          "pass the evaluator's predict_proba output")
    return p


def class_histogram(proba):
    """Fraction of images whose most probable class is each class, (n_classes,) summing to 1."""
    p = _as_proba(proba)
    return np.bincount(p.argmax(axis=1), minlength=p.shape[1]) / len(p)


def kl_to_uniform(hist):
    """KL(hist || uniform) in nats: 0 for a balanced histogram, log(n_classes) for one class."""
    h = np.asarray(hist, dtype=np.float64)
    return float(xlogy(h, h * len(h)).sum())


def classes_covered(hist, *, min_share):
    """Number of classes receiving at least min_share of their uniform share, i.e. >= min_share / n_classes.

    min_share = 0.1 with 10 classes: a class is covered when >= 1% of the images fall in it.
    """
    h = np.asarray(hist, dtype=np.float64)
    return int((h >= min_share / len(h) * (1.0 - 1e-9)).sum())  # exactly at the threshold counts


def classifier_score(proba):
    """exp(E_x KL(p(y|x) || p(y))) with p(y) the mean prediction: the MNIST analogue of the
    Inception score; from 1 (all predictions alike) to n_classes (confident and balanced)."""
    p = _as_proba(proba)
    py = p.mean(axis=0)
    kl = (xlogy(p, p) - xlogy(p, py[None, :])).sum(axis=1)
    return float(np.exp(kl.mean()))
