"""A Gaussian mixture fitted to a VAE's training codes: what the VAE samples from instead of N(0, I)
(ex-post density estimation, Ghosh et al. 2020, "From variational to deterministic autoencoders").

A VAE's aggregate posterior (the codes of the training images) does not fill its N(0, I) prior:
prior samples land in holes between the classes and decode to blends. Sampling from a density
fitted to the codes after training keeps the decoder and the ELBO as they are and draws codes where
the decoder has seen them. Full-covariance EM in NumPy (float64, seeded k-means++-style start),
deterministic for a given input and seed.
"""

import numpy as np

from genlab.errors import GenlabError

_LOG_2PI = np.log(2.0 * np.pi)


def _log_prob(x, weights, means, chols):
    """log w_k + log N(x | mean_k, L_k L_k^T), shape (N, K)."""
    n, d = x.shape
    k = len(weights)
    inv = np.linalg.inv(chols)                                              # (K, d, d): whitening maps
    # (x - m_k) A_k^T for every k in one product: x @ [A_1^T ... A_K^T] minus each m_k A_k^T
    y = (x @ inv.transpose(0, 2, 1).transpose(1, 0, 2).reshape(d, k * d)).reshape(n, k, d)
    y -= np.einsum("kj,kij->ki", means, inv)[None]
    log_det = np.log(np.diagonal(chols, axis1=1, axis2=2)).sum(axis=1)      # log |L_k|
    return np.log(weights)[None] - 0.5 * (y * y).sum(axis=2) - log_det[None] - 0.5 * d * _LOG_2PI


def _logsumexp(a):
    m = a.max(axis=1, keepdims=True)
    return (m + np.log(np.exp(a - m).sum(axis=1, keepdims=True)))[:, 0]


def fit_gmm(x, k, *, seed, iters=200, tol=1e-5, reg=1e-4):
    """Fit a k-component full-covariance Gaussian mixture to the rows of x (N, d) by EM.

    Returns {"weights": (k,), "means": (k, d), "scale_trils": (k, d, d)} as lists (JSON-ready) and
    the mean log-likelihood per row. reg is added to every covariance's diagonal (relative to the
    data's overall variance), so that no component collapses onto a few points.
    """
    x = np.asarray(x, np.float64)
    if x.ndim != 2 or not np.isfinite(x).all():
        raise GenlabError("the code density needs finite codes shaped (N, latent_dim)")
    n, d = x.shape
    if not 1 <= k <= n:
        raise GenlabError(f"a mixture of {k} components needs between 1 and {n} codes' worth of components")
    rng = np.random.default_rng(seed)
    scale = x.var(axis=0).mean()
    # start: means spread over the data (k-means++ seeding), shared covariance, equal weights
    idx = [int(rng.integers(n))]
    d2 = ((x - x[idx[0]]) ** 2).sum(axis=1)
    for _ in range(1, k):
        idx.append(int(rng.choice(n, p=d2 / d2.sum())) if d2.sum() > 0 else int(rng.integers(n)))
        d2 = np.minimum(d2, ((x - x[idx[-1]]) ** 2).sum(axis=1))
    means = x[idx].copy()
    cov0 = np.cov(x, rowvar=False).reshape(d, d) + reg * scale * np.eye(d)
    chols = np.repeat(np.linalg.cholesky(cov0)[None], k, axis=0)
    weights = np.full(k, 1.0 / k)
    prev = -np.inf
    for _ in range(iters):
        logp = _log_prob(x, weights, means, chols)
        ll = _logsumexp(logp)
        resp = np.exp(logp - ll[:, None])                                   # (N, K)
        nk = resp.sum(axis=0) + 1e-12
        weights = nk / n
        means = (resp.T @ x) / nk[:, None]
        for j in range(k):
            r = x - means[j]
            cov = (resp[:, j, None] * r).T @ r / nk[j] + reg * scale * np.eye(d)
            chols[j] = np.linalg.cholesky(cov)
        if ll.mean() - prev < tol:
            break
        prev = ll.mean()
    ll = float(_logsumexp(_log_prob(x, weights, means, chols)).mean())
    return {"weights": weights.tolist(), "means": means.tolist(), "scale_trils": chols.tolist()}, ll


def sample_gmm(gmm, n, seed):
    """n codes (float32 (n, d)) from a mixture fit_gmm returned, seeded."""
    weights = np.asarray(gmm["weights"], np.float64)
    means, chols = np.asarray(gmm["means"], np.float64), np.asarray(gmm["scale_trils"], np.float64)
    rng = np.random.default_rng(seed)
    comp = rng.choice(len(weights), n, p=weights / weights.sum())
    eps = rng.standard_normal((n, means.shape[1]))
    return (means[comp] + np.einsum("nij,nj->ni", chols[comp], eps)).astype(np.float32)
