"""Quality curves: every training snapshot of a model scored against the validation split.

The training stages keep the weights sampling needs every train.snapshot_every iterations
(genlab.training.loop: <live>/snapshots/<iteration>.npz; GAN: the generator as sampled, averaged
with gan.ema; VAE: the decoder). `score_snapshots` puts each into the trained model's networks,
draws evaluate.curve_n images (seeded; a conditional GAN draws classes uniformly, a VAE samples
the N(0, I) prior: the fitted code density of the final model does not exist for earlier
decoders) and scores them against the first curve_n validation images with the evaluator:
FD, precision, recall, the feature-level and the pixel-level detector, and for a model that draws
a chosen class (the conditional GAN) the classification accuracy score: the cas: classifier trained
on the curve_n samples with the labels they were drawn for, tested on the validation images.
The test split is not used: curves are for watching training, and the headline metrics stay the
only numbers read on the test split. Rows of snapshots scored before with the same inputs are taken
from the score cache (genlab.evaluation.score_cache), so extending a run scores only its new snapshots.
"""

from pathlib import Path

import numpy as np

from genlab.errors import GenlabError
from genlab.evaluation import cas as cas_score
from genlab.evaluation.detect import pixel_two_sample_accuracy, two_sample_accuracy
from genlab.evaluation.evaluator import features
from genlab.evaluation.metrics import frechet_distance, precision_recall
from genlab.evaluation.score_cache import FITTED, RowCache, curve_context
from genlab.models.store import list_snapshots, load_weights

COLUMNS = ("iteration", "fd", "precision", "recall", "detector_accuracy", "pixel_detector_accuracy", "cas")


def sampled_network(model):
    """The network a snapshot holds the weights of: the GAN's generator, the VAE's decoder."""
    return model.generator if hasattr(model, "generator") else model.decoder


def can_sample(model):
    """None if snapshots of this model can be sampled, else why not (one phrase)."""
    if hasattr(model, "generator"):
        return None
    if not model.variational:
        return "a plain autoencoder has no prior to sample before its code Gaussian is fitted at the end"
    return None


def with_cas(model, y_val, cas):
    """Do this model's rows get a CAS column (a conditional GAN, given the labels and the cas settings)?"""
    return cas is not None and y_val is not None and getattr(model, "conditional", False)


def score_snapshots(model, snapshot_dir, evaluator, x_val, *, n, settings, seed, y_val=None, cas=None, cache=None):
    """[{iteration, fd, precision, recall, detector_accuracy, pixel_detector_accuracy}] for every snapshot,
    in snapshot_dir, by iteration. x_val: validation images in the model's data range, at least n.
    With y_val (their labels) and cas (a genlab.params.Cas), a conditional GAN's rows also get "cas":
    the classifier trained cas.epochs passes over the n samples, tested on the n validation images.
    cache: a genlab.evaluation.score_cache.RowCache of this model and these inputs (rows it holds are
    reused, rows scored are kept in it), or None."""
    snaps = list_snapshots(snapshot_dir)
    if not snaps:
        raise GenlabError(f"{snapshot_dir} holds no snapshots: set train.snapshot_every > 0 and "
                          "re-run the training stage")
    if len(x_val) < n:
        raise GenlabError(f"evaluate.curve_n is {n} but the validation split has {len(x_val)} images: lower it")
    x_val = np.asarray(x_val[:n], np.float32)
    f_val = features(evaluator, x_val)
    cas_column = with_cas(model, y_val, cas)
    columns = [c for c in COLUMNS if c != "cas" or cas_column]
    net = sampled_network(model)
    final = [v.numpy() for v in net.variables]
    fitted = {k: model.config.pop(k) for k in FITTED if k in model.config}
    rows = []
    try:
        for iteration, path in snaps:
            row = cache.get(iteration, path, columns) if cache is not None else None
            if row is not None:
                rows.append(row)
                continue
            try:
                weights = load_weights(path)
            except (OSError, ValueError, KeyError) as e:
                raise GenlabError(f"snapshot {path} cannot be read ({e.__class__.__name__}): "
                                  "re-run the training stage") from None
            if [w.shape for w in weights] != [tuple(v.shape) for v in net.variables]:
                raise GenlabError(f"snapshot {path} does not fit the model in its stage's output: "
                                  "re-run the training stage")
            for v, w in zip(net.variables, weights):
                v.assign(w)
            x_gen, labels = (model.generate(n, seed, return_labels=True) if cas_column
                             else (model.generate(n, seed), None))
            f_gen = features(evaluator, x_gen)
            precision, recall = precision_recall(f_val, f_gen, k=settings.pr_k)
            rows.append({"iteration": iteration, "fd": frechet_distance(f_gen, f_val), "precision": precision,
                         "recall": recall,
                         "detector_accuracy": two_sample_accuracy(f_val, f_gen, l2=settings.two_sample_l2,
                                                                  max_iter=settings.two_sample_max_iter,
                                                                  seed=settings.seed),
                         "pixel_detector_accuracy": pixel_two_sample_accuracy(
                             x_val, x_gen, epochs=settings.pixel_detector_epochs, seed=settings.seed)})
            if cas_column:
                rows[-1]["cas"] = cas_score.score(x_gen, labels, x_val, np.asarray(y_val[:n]),
                                                  n_classes=model.n_classes,
                                                  steps=cas.epochs * max(1, n // cas.batch_size),
                                                  batch_size=min(cas.batch_size, n), lr=cas.lr, seed=cas.seed)
            if cache is not None:
                cache.put(iteration, path, rows[-1])
    finally:
        for v, w in zip(net.variables, final):
            v.assign(w)
        model.config.update(fitted)
    return rows


def model_curves(snapshots, evaluator, x_val, y_val, *, settings, cas, say=print):
    """{name: rows of score_snapshots} for snapshots = {name: (model folder, snapshot folder)}, each
    model's rows kept in the run store's score cache; a model whose snapshots cannot be sampled, or
    whose training kept none (train.snapshot_every: 0 leaves its snapshot folder empty), is left out
    with a line on `say`."""
    from genlab.models.load import load_model
    from genlab.models.store import read_model_config
    curves = {}
    for name, (model_dir, snap_dir) in snapshots.items():
        if Path(snap_dir).is_dir() and not list_snapshots(snap_dir):
            say(f"evaluate: no quality curve for {name}: its training kept no snapshots in {snap_dir} "
                "(train.snapshot_every: 0)")
            continue
        model = load_model(model_dir)
        why = can_sample(model)
        if why:
            say(f"evaluate: no quality curve for {name}: {why}")
            continue
        family, config = read_model_config(model_dir)
        cache = RowCache.default(curve_context({"family": family, **config}, evaluator, x_val, y_val,
                                               settings, cas if with_cas(model, y_val, cas) else None))
        rows = curves[name] = score_snapshots(model, snap_dir, evaluator, x_val, n=settings.curve_n,
                                              settings=settings, seed=settings.seed, y_val=y_val, cas=cas,
                                              cache=cache)
        say(f"evaluate: {name} quality curve over {len(rows)} snapshots ({cache.hits} from the score cache), "
            f"at iteration {rows[-1]['iteration']}: "
            + ", ".join(f"{k}={v:.4g}" for k, v in rows[-1].items() if k != "iteration"))
    return curves


def to_tsv(rows):
    """The curve as TSV text (a DVC plot: x = iteration); the columns the rows have, in COLUMNS' order."""
    cols = [c for c in COLUMNS if rows and c in rows[0]]
    lines = ["\t".join(cols)] + ["\t".join(str(r[c]) if c == "iteration" else f"{r[c]:.6g}" for c in cols)
                                 for r in rows]
    return "\n".join(lines) + "\n"

