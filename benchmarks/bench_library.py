"""The project's hand-written numerics against scikit-learn's, on the default run's own models (issue 25,
item 6): the VAE's code mixture (genlab.models.density vs GaussianMixture), the feature-level
real-vs-generated detector (genlab.evaluation.detect vs StandardScaler + LogisticRegression) and the
latent map's projection (SVD vs PCA).

    .venv/bin/python benchmarks/bench_library.py [--project .] [--repeats 3]

Needs the default run's outputs in --project (`dvc repro`: models/vae, models/gan, models/evaluator,
data/processed, samples/). Only the training and validation splits are used (no test image), so
what this decides selects nothing with the test split. For each piece: wall time (best of
--repeats), and what it computes: the mixture's mean log-likelihood on its fitting codes and on the
validation images' codes, and the Frechet distance / precision / recall (k=3) of 10,000 decoded samples
against the validation images' evaluator features; the detector's held-out accuracy on the validation
images against the GAN's and the VAE's samples; the projections' largest difference (up to sign).
"""

import argparse
import os
import time
from pathlib import Path

import numpy as np
import yaml

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def best_time(fn, repeats):
    """(result of the last call, best wall seconds over repeats)."""
    best = np.inf
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return out, best


def sklearn_gmm(codes, k, seed, reg=1e-4):
    from sklearn.mixture import GaussianMixture
    scale = np.asarray(codes, np.float64).var(axis=0).mean()
    return GaussianMixture(n_components=k, covariance_type="full", tol=1e-5, reg_covar=reg * scale,
                           max_iter=200, init_params="k-means++", random_state=seed).fit(codes)


def as_sklearn(gmm):
    """A fitted GaussianMixture holding the hand-written fit's parameters (to score both the same way)."""
    from sklearn.mixture import GaussianMixture
    g = GaussianMixture(n_components=len(gmm["weights"]), covariance_type="full")
    g.weights_, g.means_ = np.asarray(gmm["weights"]), np.asarray(gmm["means"])
    chol = np.asarray(gmm["scale_trils"])
    g.covariances_ = chol @ chol.transpose(0, 2, 1)
    g.precisions_cholesky_ = np.linalg.inv(chol).transpose(0, 2, 1)
    return g


def sklearn_detector(real, fake, *, l2, max_iter, seed):
    """two_sample_accuracy's protocol (seeded halves, standardised, balanced held-out accuracy) with
    scikit-learn: C = 1 / (l2 * n) gives the same objective (mean log loss + l2/2 |w|^2, bias free)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    rng = np.random.default_rng(seed)
    real, fake = real[rng.permutation(len(real))], fake[rng.permutation(len(fake))]
    hr, hf = len(real) // 2, len(fake) // 2
    x = np.concatenate([real[:hr], fake[:hf]]).astype(np.float64)
    y = np.concatenate([np.zeros(hr), np.ones(hf)])
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=1.0 / (l2 * len(x)), max_iter=max_iter))
    clf.fit(x, y)
    return float(0.5 * ((clf.predict(real[hr:]) == 0).mean() + (clf.predict(fake[hf:]) == 1).mean()))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--project", default=".", help="a project after `dvc repro` (its models, data, samples)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--n", type=int, default=10000, help="samples decoded per mixture")
    args = ap.parse_args()
    root = Path(args.project)

    from genlab.data.processed import load_meta, load_split, to_unit
    from genlab.evaluation.detect import two_sample_accuracy
    from genlab.evaluation.evaluator import features, load_evaluator
    from genlab.evaluation.metrics import frechet_distance, precision_recall
    from genlab.models.density import fit_gmm, sample_gmm
    from genlab.models.load import load_model
    from genlab.outputs.figures import project_2d
    from genlab.params import read

    params = yaml.safe_load((root / "params.yaml").read_text())
    vae_p, ev_p = read(params, "vae"), read(params, "evaluate")
    seed = int(params["train"]["seed"])
    meta = load_meta(root / "data/processed")
    lo, hi = meta["range"]
    x, _ = load_split(root / "data/processed", "train")
    xv, _ = load_split(root / "data/processed", "val")
    vae, evaluator = load_model(root / "models/vae"), load_evaluator(root / "models/evaluator")
    codes = np.concatenate([vae.encode(to_unit(x[i:i + 5000], meta["range"]))[0] for i in range(0, len(x), 5000)])
    codes = codes.astype(np.float64)
    if len(codes) > 10000:   # as VAE.fit_code_gmm: a seeded subset of 10,000 training codes
        codes = codes[np.sort(np.random.default_rng(seed).choice(len(codes), 10000, replace=False))]
    val_codes = vae.encode(to_unit(xv, meta["range"]))[0].astype(np.float64)
    f_val = features(evaluator, xv)
    k = vae_p.prior_components
    print(f"# {len(codes)} training codes (latent {codes.shape[1]}), {len(val_codes)} validation codes, "
          f"{k} components, seed {seed}; best of {args.repeats}")

    def downstream(z):
        imgs = vae.decode(z.astype(np.float32)) * (hi - lo) + lo
        f = features(evaluator, imgs)
        p, r = precision_recall(f_val, f, k=ev_p.pr_k)
        return frechet_distance(f_val, f), p, r, f

    print("| mixture | fit s | iterations | LL fit codes | LL val codes | FD vs val | precision | recall |")
    print("|---|---|---|---|---|---|---|---|")
    (hand, _), t_hand = best_time(lambda: fit_gmm(codes, k, seed=seed), args.repeats)
    g_hand = as_sklearn(hand)
    fd, p, r, f_vae = downstream(sample_gmm(hand, args.n, seed + 1))
    print(f"| hand-written EM (genlab.models.density) | {t_hand:.2f} | – | {g_hand.score(codes):.4f} | "
          f"{g_hand.score(val_codes):.4f} | {fd:.3f} | {p:.4f} | {r:.4f} |")
    sk, t_sk = best_time(lambda: sklearn_gmm(codes, k, seed), args.repeats)
    z_sk, _ = sk.sample(args.n)
    fd, p, r, _ = downstream(np.random.default_rng(seed + 1).permutation(z_sk))
    print(f"| scikit-learn GaussianMixture (k-means++ start) | {t_sk:.2f} | {sk.n_iter_} | {sk.score(codes):.4f} | "
          f"{sk.score(val_codes):.4f} | {fd:.3f} | {p:.4f} | {r:.4f} |")

    print("\n| detector (real: validation features) | against | fit s | held-out accuracy |")
    print("|---|---|---|---|")
    with np.load(root / "samples/gan.npz") as z:
        f_gan = features(evaluator, z["x"][:len(xv)])
    for name, fake in (("GAN samples", f_gan), ("VAE samples (hand mixture)", f_vae[:len(xv)])):
        kw = dict(l2=ev_p.two_sample_l2, max_iter=ev_p.two_sample_max_iter, seed=ev_p.seed)
        acc, t = best_time(lambda: two_sample_accuracy(f_val, fake, **kw), args.repeats)
        print(f"| hand-written L-BFGS (genlab.evaluation.detect) | {name} | {t:.3f} | {acc:.4f} |")
        acc, t = best_time(lambda: sklearn_detector(f_val, fake, **kw), args.repeats)
        print(f"| scikit-learn StandardScaler + LogisticRegression | {name} | {t:.3f} | {acc:.4f} |")

    from sklearn.decomposition import PCA
    test_like = val_codes
    mine, t_mine = best_time(lambda: project_2d(test_like), args.repeats)
    theirs, t_theirs = best_time(lambda: PCA(2).fit_transform(test_like), args.repeats)
    diff = np.abs(np.abs(mine) - np.abs(theirs)).max()
    print(f"\nprojection of {len(test_like)} codes to 2-D: SVD {t_mine * 1000:.1f} ms, PCA {t_theirs * 1000:.1f} ms, "
          f"largest |difference| up to sign {diff:.2e}")


if __name__ == "__main__":
    main()
