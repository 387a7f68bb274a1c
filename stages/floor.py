"""Stage floor: the real-vs-real floor evaluate reports beside every model's metrics.

N = evaluate.n_samples real training images (a draw keyed by evaluate.seed) scored against the first N
test images exactly as evaluate scores a model's samples, the median distance of those test images to
their nearest training image (the denominator of the memorization ratio), and the classification
accuracy score of cas.n real training images (genlab.evaluation.scoring.score_floor,
genlab.evaluation.cas.cas_floor). It depends on the data, the evaluator and these settings only, so
training longer, another model param or new samples do not re-run it. Writes --out (metrics/floor.json)
with the key of its inputs and the check of its contents (genlab.evaluation.floor.seal); evaluate copies
the floor into metrics/evaluate.json and refuses a floor file of other inputs or edited by hand.
"""

import argparse

import numpy as np

from genlab import stage
from genlab.evaluation import floor as floor_file
from genlab.params import read_all


def read_settings(params):
    """The evaluate.* keys the floor depends on and every cas.* value, checked (genlab.params.Evaluate with
    only genlab.evaluation.floor.FIELDS set; genlab.params.Cas)."""
    return read_all(params, ("evaluate", floor_file.FIELDS), "cas")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="processed data folder (data/processed)")
    ap.add_argument("--evaluator", required=True, help="evaluator folder (models/evaluator)")
    ap.add_argument("--out", required=True, help="output JSON (metrics/floor.json)")
    args = ap.parse_args()
    settings, cas = read_settings(stage.read_params())
    n = settings.n_samples

    from genlab.data.processed import load_meta, load_split
    from genlab.evaluation.cas import cas_floor
    from genlab.evaluation.evaluator import load_evaluator
    from genlab.evaluation.scoring import score_floor
    from genlab.io import check_outputs, write_json
    from genlab.limits import require, scored_fit_test

    check_outputs({args.out: 1 << 16}, "floor")
    meta = load_meta(args.data)
    x_test, y_test = load_split(args.data, "test")
    x_train, y_train = (np.asarray(a) for a in load_split(args.data, "train"))
    require(scored_fit_test(n, len(x_test)))
    x_test, y_test = np.asarray(x_test[:n]), np.asarray(y_test[:n])
    evaluator = load_evaluator(args.evaluator)
    result = {"key": floor_file.key(evaluator, (x_test, y_test), (x_train, y_train), settings, cas),
              **score_floor(evaluator, x_test, x_train, value_range=meta["range"], settings=settings)}
    if len(x_train) >= cas.n:   # else no model can be scored either (evaluate says so if one asks for a CAS)
        result["floor"]["cas"] = cas_floor(x_train, y_train, x_test, y_test, n_classes=meta["n_classes"],
                                           settings=cas)
    print("floor: " + ", ".join(f"{k}={v:.4g}" for k, v in result["floor"].items())
          + f", nn_median_heldout={result['nn_median_heldout']:.4g}")
    write_json(args.out, floor_file.seal(result))


if __name__ == "__main__":
    stage.run(main)
