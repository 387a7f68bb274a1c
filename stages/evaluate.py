"""Stage evaluate: score every model's samples against the real test split with the evaluator,
beside the real-vs-real floor (the floor stage's --floor, copied in); VAE test ELBO and importance-weighted
bound; the classification accuracy score (CAS) of every model whose samples carry the labels it was
asked for. Writes --metrics.
Quality curves: every training snapshot of each model scored against the validation split
(genlab.evaluation.curves), one TSV per model in --curves."""

import argparse
from pathlib import Path

import numpy as np

from genlab import limits, stage
from genlab.errors import GenlabError
from genlab.params import read_all


def load_samples(path, n, cas_n=None):
    """(all images, the labels they were drawn for or None) of a samples file holding at least n images
    (and, if it has labels, at least cas_n)."""
    try:
        with np.load(path) as z:
            x, labels = z["x"], (z["labels"] if "labels" in z.files else None)
    except (OSError, KeyError, ValueError) as e:
        raise GenlabError(f"{path} cannot be read ({e.__class__.__name__}): run `dvc repro sample`") from None
    problems = [limits.samples_hold_scored(len(x), n),
                limits.samples_hold_cas(len(x), cas_n) if labels is not None and cas_n else None]
    if any(problems):
        raise GenlabError(f"{path}: " + "; ".join(p for p in problems if p))
    return x, labels


def read_settings(params):
    """Every evaluate.* and cas.* value this stage reads, checked: (genlab.params.Evaluate, also the
    settings of genlab.evaluation.scoring; genlab.params.Cas)."""
    return read_all(params, "evaluate", "cas")


def parse_args():
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
    return ap.parse_args()


def headline(args, settings, cas, meta, evaluator, loaded, test, train):
    """The metrics file's content: every model's scores beside the floor (copied in after its key is
    checked), the VAE's bounds, the CAS of every model whose samples carry labels."""
    from genlab.data.processed import to_unit
    from genlab.evaluation import floor as floor_file
    from genlab.evaluation.cas import cas_scores
    from genlab.evaluation.elbo import vae_bounds
    from genlab.evaluation.evaluator import load_evaluator_info
    from genlab.evaluation.scoring import score_models
    from genlab.models.load import load_model

    floor = floor_file.load(args.floor, floor_file.key(evaluator, test, train, settings, cas))
    generated = {name: x[:settings.n_samples] for name, (x, _) in loaded.items()}
    result = {"evaluator_accuracy": load_evaluator_info(args.evaluator)["test_accuracy"],
              **score_models(evaluator, generated, test[0], train[0], value_range=meta["range"], settings=settings,
                             floor=floor)}
    result["floor"].pop("cas", None)   # beside the models' CAS below, if any model has one
    for name in generated:
        print(f"evaluate: {name}: " + ", ".join(f"{k}={v:.4g}" for k, v in result[name].items()))
    vae = load_model(args.vae)
    if getattr(vae, "variational", False):
        result.setdefault("vae", {}).update(vae_bounds(vae.encode, vae.decode_logits, to_unit(test[0], meta["range"]),
                                                       k=settings.iw_k, threshold=settings.binarize_threshold,
                                                       seed=settings.seed))
    labelled = {name: (x, y) for name, (x, y) in loaded.items() if y is not None}
    if labelled:
        scores = cas_scores(labelled, *train, *test, n_classes=meta["n_classes"], settings=cas,
                            floor=floor["floor"]["cas"])
        result["cas_n"] = scores.pop("n")
        for name, value in scores.items():
            result[name]["cas"] = value
        print("evaluate: classification accuracy score: "
              + ", ".join(f"{name} {value:.4f}" for name, value in scores.items()))
    return result


def main():
    args = parse_args()
    settings, cas = read_settings(stage.read_params())
    n = settings.n_samples
    samples = dict(s.split("=", 1) for s in args.samples)
    snapshots = {name: tuple(spec.split(":", 1)) for name, spec in (s.split("=", 1) for s in args.snapshots)}

    from genlab.data.processed import load_meta, load_split
    from genlab.evaluation.evaluator import check_evaluator, load_evaluator, load_evaluator_info
    from genlab.io import atomic_dir, check_outputs, write_json

    check_outputs({args.metrics: 1 << 16, **({args.curves: 1 << 20} if args.curves else {})}, "evaluate")
    meta = load_meta(args.data)
    check_evaluator(load_evaluator_info(args.evaluator), settings.min_evaluator_accuracy, meta["dataset"])
    x_test, y_test = load_split(args.data, "test")
    x_train, y_train = (np.asarray(a) for a in load_split(args.data, "train"))
    loaded = {name: load_samples(path, n, cas.n) for name, path in samples.items()}
    for name in [name for name, (_, y) in loaded.items() if y is None]:
        print(f"evaluate: {name}: no classification accuracy score: its samples carry no labels (an "
              "unconditional model cannot be asked for a class; the GAN can, with gan.conditional: true)")
    limits.require(limits.scored_fit_test(n, len(x_test)),
                   limits.cas_fits_train(cas.n, len(x_train)) if any(y is not None for _, y in loaded.values())
                   else None)
    evaluator = load_evaluator(args.evaluator)
    test = (np.asarray(x_test[:n]), np.asarray(y_test[:n]))
    result = headline(args, settings, cas, meta, evaluator, loaded, test, (x_train, y_train))
    curves = {}
    if snapshots and args.curves:
        from genlab.evaluation.curves import model_curves, to_tsv
        curves = model_curves(snapshots, evaluator, *load_split(args.data, "val"), settings=settings, cas=cas)
    write_json(args.metrics, result)
    if args.curves:
        with atomic_dir(args.curves) as tmp:
            for name, rows in curves.items():
                (Path(tmp) / f"{name}.tsv").write_text(to_tsv(rows))


if __name__ == "__main__":
    stage.run(main)
