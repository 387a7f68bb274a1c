"""scikit-learn's numerics (today's genlab) against the hand-written code they replaced (issue 25, item 6),
on the default run's own models: the VAE's code mixture (GaussianMixture vs a NumPy EM), the
feature-level real-vs-generated detector (StandardScaler + LogisticRegression vs an L-BFGS fit in
SciPy) and the latent map's projection (PCA vs an SVD). The hand-written baseline is the code of
commit BASELINE, read from git history (so this script runs in a git checkout).

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
import subprocess
import time
import types
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


BASELINE = "2e0ca74"   # the last commit with the hand-written mixture, detector and projection


def baseline(module):
    """genlab's `module` (e.g. "genlab.models.density") as it was at commit BASELINE."""
    path = module.replace(".", "/") + ".py"
    src = subprocess.run(["git", "show", f"{BASELINE}:{path}"], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1]).stdout
    m = types.ModuleType(f"baseline_{module}")
    exec(compile(src, f"{BASELINE}:{path}", "exec"), m.__dict__)
    return m


def as_sklearn(gmm):
    """A fitted GaussianMixture holding a fit's parameters (to score both fits the same way)."""
    from sklearn.mixture import GaussianMixture
    g = GaussianMixture(n_components=len(gmm["weights"]), covariance_type="full")
    g.weights_, g.means_ = np.asarray(gmm["weights"]), np.asarray(gmm["means"])
    chol = np.asarray(gmm["scale_trils"])
    g.covariances_ = chol @ chol.transpose(0, 2, 1)
    g.precisions_cholesky_ = np.linalg.inv(chol).transpose(0, 2, 1)
    return g


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

    old_density, old_detect = baseline("genlab.models.density"), baseline("genlab.evaluation.detect")
    old_figures = baseline("genlab.outputs.figures")
    print("| mixture | fit s | LL fit codes | LL val codes | FD vs val | precision | recall |")
    print("|---|---|---|---|---|---|---|")
    f_vae = {}
    for name, fit in ((f"hand-written EM ({BASELINE})", old_density.fit_gmm),
                      ("scikit-learn GaussianMixture (genlab.models.density)", fit_gmm)):
        (gmm, _), t = best_time(lambda: fit(codes, k, seed=seed), args.repeats)
        g = as_sklearn(gmm)
        fd, p, r, f_vae[name] = downstream(sample_gmm(gmm, args.n, seed + 1))
        print(f"| {name} | {t:.2f} | {g.score(codes):.4f} | {g.score(val_codes):.4f} | {fd:.3f} | {p:.4f} | {r:.4f} |")

    print("\n| detector (real: validation features) | against | fit s | held-out accuracy |")
    print("|---|---|---|---|")
    with np.load(root / "samples/gan.npz") as z:
        f_gan = features(evaluator, z["x"][:len(xv)])
    kw = dict(l2=ev_p.two_sample_l2, max_iter=ev_p.two_sample_max_iter, seed=ev_p.seed)
    for against, fake in (("GAN samples", f_gan), ("VAE samples (the new mixture)", f_vae[name][:len(xv)])):
        for impl, detect in ((f"hand-written L-BFGS ({BASELINE})", old_detect.two_sample_accuracy),
                             ("scikit-learn (genlab.evaluation.detect)", two_sample_accuracy)):
            acc, t = best_time(lambda: detect(f_val, fake, **kw), args.repeats)
            print(f"| {impl} | {against} | {t:.3f} | {acc:.4f} |")

    (old, t_old), (new, t_new) = (best_time(lambda: f(val_codes), args.repeats)
                                  for f in (old_figures.project_2d, project_2d))
    diff = np.abs(np.abs(old) - np.abs(new)).max()
    print(f"\nprojection of {len(val_codes)} codes to 2-D: SVD ({BASELINE}) {t_old * 1000:.1f} ms, PCA (genlab) "
          f"{t_new * 1000:.1f} ms, largest |difference| up to sign {diff:.2e}")

if __name__ == "__main__":
    main()
