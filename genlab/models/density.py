"""A Gaussian mixture fitted to a VAE's training codes: what the VAE samples from instead of N(0, I)
(ex-post density estimation, Ghosh et al. 2020, "From variational to deterministic autoencoders").

A VAE's aggregate posterior (the codes of the training images) does not fill its N(0, I) prior:
prior samples land in holes between the classes and decode to blends. Sampling from a density
fitted to the codes after training keeps the decoder and the ELBO as they are and draws codes where
the decoder has seen them. The fit is scikit-learn's GaussianMixture (full covariances, k-means++
start, seeded), deterministic for a given input and seed on one machine. It replaced a hand-written
EM: on the default run's 10,000 training codes (20 components) it reaches a slightly higher
log-likelihood on the validation images' codes (-12.81 vs -12.85 nats per code), for 60 fewer lines of
our own; with its BLAS on one thread it takes 6.3 s (15.2 s on two threads; benchmarks/bench_library.py).
"""

import numpy as np

from genlab.errors import GenlabError


def fit_gmm(x, k, *, seed, iters=200, tol=1e-5, reg=1e-4):
    """Fit a k-component full-covariance Gaussian mixture to the rows of x (N, d) by EM.

    Returns {"weights": (k,), "means": (k, d), "scale_trils": (k, d, d)} as lists (JSON-ready) and
    the mean log-likelihood per row. reg is added to every covariance's diagonal (relative to the
    data's overall variance), so that no component collapses onto a few points.
    """
    from sklearn.mixture import GaussianMixture
    from threadpoolctl import threadpool_limits
    x = np.asarray(x, np.float64)
    if x.ndim != 2 or not np.isfinite(x).all():
        raise GenlabError("the code density needs finite codes shaped (N, latent_dim)")
    if not 1 <= k <= len(x):
        raise GenlabError(f"a mixture of {k} components needs between 1 and {len(x)} codes' worth of components")
    # One BLAS thread: its matrices are (N, d) by (d, d) with d the latent size, too small to share; on two
    # cores two threads made the fit 2.4x slower (benchmarks/README.md, bench_library), and one thread's sums
    # do not depend on the machine's core count or GENLAB_THREADS.
    with threadpool_limits(1):
        g = GaussianMixture(n_components=k, covariance_type="full", tol=tol,
                            reg_covar=reg * x.var(axis=0).mean(), max_iter=iters, init_params="k-means++",
                            random_state=seed).fit(x)
    gmm = {"weights": g.weights_.tolist(), "means": g.means_.tolist(),
           "scale_trils": np.linalg.cholesky(g.covariances_).tolist()}
    return gmm, float(g.score(x))


def sample_gmm(gmm, n, seed):
    """n codes (float32 (n, d)) from a mixture fit_gmm returned, seeded."""
    weights = np.asarray(gmm["weights"], np.float64)
    means, chols = np.asarray(gmm["means"], np.float64), np.asarray(gmm["scale_trils"], np.float64)
    rng = np.random.default_rng(seed)
    comp = rng.choice(len(weights), n, p=weights / weights.sum())
    eps = rng.standard_normal((n, means.shape[1]))
    return (means[comp] + np.einsum("nij,nj->ni", chols[comp], eps)).astype(np.float32)
