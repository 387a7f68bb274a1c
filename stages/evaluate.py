"""Stage evaluate: score every model's samples against the real test split with the evaluator,
beside the real-vs-real floor (the floor stage's --floor, copied in); VAE test ELBO and importance-weighted
bound; the classification accuracy score (CAS) of every model whose samples carry the labels it was
asked for. Writes --metrics.
Quality curves: every training snapshot of each model scored against the validation split
(genlab.evaluation.curves), one TSV per model in --curves."""

import argparse
from pathlib import Path

import numpy as np

from genlab import cli
from genlab.errors import GenlabError
from genlab.params import read_all


def load_samples(path, n):
    """(all images, the labels they were drawn for or None) of a samples file holding at least n images."""
    try:
        with np.load(path) as z:
            x, labels = z["x"], (z["labels"] if "labels" in z.files else None)
    except (OSError, KeyError, ValueError) as e:
        raise GenlabError(f"{path} cannot be read ({e.__class__.__name__}): run `dvc repro sample`") from None
    if len(x) < n:
        raise GenlabError(f"{path} holds {len(x)} images but evaluate.n_samples is {n}: "
                          "set sample.n >= evaluate.n_samples")
    return x, labels


def read_settings(params):
    """Every evaluate.* and cas.* value this stage reads, checked: (genlab.params.Evaluate, also the
    settings of genlab.evaluation.scoring; genlab.params.Cas)."""
    return read_all(params, "evaluate", "cas")


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", required=True, help="processed data folder (data/processed)")
    ap.add_argument("--evaluator", required=True, help="evaluator folder (models/evaluator)")
    ap.add_argument("--samples", required=True, nargs="+", metavar="NAME=NPZ",
                    help="generated images per model, e.g. gan=samples/gan.npz")
    ap.add_argument("--vae", required=True, help="VAE model folder, for the test ELBO (models/vae)")
    ap.add_argument("--floor", required=True, help="the floor stage's output (metrics/floor.json)")
    ap.add_argument("--metrics", required=True, help="output JSON (metrics/evaluate.json)")
    ap.add_argument("--snapshots", nargs="*", default=[], metavar="NAME=MODEL:SNAPSHOTS",
                    help="quality curves: the model folder and its training snapshots, e.g. "
                         "gan=models/gan:dvclive/train_gan/snapshots")
    ap.add_argument("--curves", help="output folder of the quality curves, <name>.tsv (metrics/curves)")
    args = ap.parse_args()
    settings, cas = read_settings(cli.read_params())
    n = settings.n_samples
    samples = dict(s.split("=", 1) for s in args.samples)
    snapshots = {name: tuple(spec.split(":", 1)) for name, spec in (s.split("=", 1) for s in args.snapshots)}

    from genlab.data.processed import load_meta, load_split, to_unit
    from genlab.evaluation import floor as floor_file
    from genlab.evaluation.cas import cas_scores
    from genlab.evaluation.elbo import vae_bounds
    from genlab.evaluation.evaluator import check_evaluator, load_evaluator, load_evaluator_info
    from genlab.evaluation.scoring import score_models
    from genlab.io import check_outputs, write_json
    from genlab.models.load import load_model

    check_outputs({args.metrics: 1 << 16, **({args.curves: 1 << 20} if args.curves else {})}, "evaluate")
    meta = load_meta(args.data)
    info = load_evaluator_info(args.evaluator)
    check_evaluator(info, settings.min_evaluator_accuracy, meta["dataset"])
    x_test, y_test = load_split(args.data, "test")
    x_train, y_train = load_split(args.data, "train")
    if len(x_test) < n:
        raise GenlabError(f"evaluate.n_samples is {n} but the test split has {len(x_test)} images: lower it")
    x_test, y_test = np.asarray(x_test[:n]), np.asarray(y_test[:n])
    x_train, y_train = np.asarray(x_train), np.asarray(y_train)
    loaded = {name: load_samples(path, n) for name, path in samples.items()}
    # CAS: only a model that was asked for a class (its samples carry those labels) can be scored
    labelled = {name: (x, y) for name, (x, y) in loaded.items() if y is not None}
    for name in [name for name in loaded if name not in labelled]:
        print(f"evaluate: {name}: no classification accuracy score: its samples carry no labels (an "
              "unconditional model cannot be asked for a class; the GAN can, with gan.conditional: true)")
    if labelled and len(x_train) < cas.n:
        raise GenlabError(f"cas.n is {cas.n} but the training split has {len(x_train)} images: lower cas.n")
    for name, (x, _) in labelled.items():
        if len(x) < cas.n:
            raise GenlabError(f"{samples[name]} holds {len(x)} images but cas.n is {cas.n}: set sample.n >= cas.n")
    evaluator = load_evaluator(args.evaluator)
    floor = floor_file.load(args.floor, floor_file.key(evaluator, (x_test, y_test), (x_train, y_train), settings, cas))

    generated = {name: x[:n] for name, (x, _) in loaded.items()}
    result = {"evaluator_accuracy": info["test_accuracy"],
              **score_models(evaluator, generated, x_test, x_train, value_range=meta["range"], settings=settings,
                             floor=floor)}
    result["floor"].pop("cas", None)   # beside the models' CAS below, if any model has one
    for name in generated:
        print(f"evaluate: {name}: " + ", ".join(f"{k}={v:.4g}" for k, v in result[name].items()))
    vae = load_model(args.vae)
    if getattr(vae, "variational", False):
        result.setdefault("vae", {}).update(vae_bounds(vae.encode, vae.decode_logits, to_unit(x_test, meta["range"]),
                                                       k=settings.iw_k, threshold=settings.binarize_threshold,
                                                       seed=settings.seed))
    curves = {}
    if snapshots and args.curves:
        from genlab.evaluation.curves import can_sample, score_snapshots, to_tsv, with_cas
        from genlab.evaluation.score_cache import RowCache, curve_context
        from genlab.models.store import read_model_config
        x_val, y_val = load_split(args.data, "val")
        for name, (model_dir, snap_dir) in snapshots.items():
            model = load_model(model_dir)
            why = can_sample(model)
            if why:
                print(f"evaluate: no quality curve for {name}: {why}")
                continue
            family, config = read_model_config(model_dir)
            cache = RowCache.default(curve_context({"family": family, **config}, evaluator, x_val, y_val,
                                                   settings, cas if with_cas(model, y_val, cas) else None))
            curves[name] = score_snapshots(model, snap_dir, evaluator, x_val, n=settings.curve_n, settings=settings,
                                           seed=settings.seed, y_val=y_val, cas=cas, cache=cache)
            last = curves[name][-1]
            print(f"evaluate: {name} quality curve over {len(curves[name])} snapshots ({cache.hits} from the score "
                  f"cache), at iteration {last['iteration']}: "
                  + ", ".join(f"{k}={v:.4g}" for k, v in last.items() if k != "iteration"))
    if labelled:
        scores = cas_scores(labelled, x_train, y_train, x_test, y_test, n_classes=meta["n_classes"], settings=cas,
                            floor=floor["floor"]["cas"])
        result["cas_n"] = scores.pop("n")
        for name, value in scores.items():
            result[name]["cas"] = value
        print("evaluate: classification accuracy score: "
              + ", ".join(f"{name} {value:.4f}" for name, value in scores.items()))
    write_json(args.metrics, result)
    if args.curves:
        from genlab.io import atomic_dir
        with atomic_dir(args.curves) as tmp:
            for name, rows in curves.items():
                (Path(tmp) / f"{name}.tsv").write_text(to_tsv(rows))


if __name__ == "__main__":
    cli.run(main)
