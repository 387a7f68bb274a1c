"""Stage train_evaluator: train the evaluator CNN on the real training split, record its test accuracy.

python -m stages.train_evaluator --data data/processed --model models/evaluator \
    --checkpoints checkpoints/train_evaluator --metrics metrics/evaluator.json
The training state is checkpointed in --checkpoints at every epoch end and on Ctrl-C/SIGTERM (kept
between runs), as the GAN's and VAE's are: the next run resumes from the newest checkpoint.
"""

import argparse

from genlab.params import read
from genlab.stage import read_params, run, sigterm_as_interrupt


def read_settings(params):
    """Every evaluator.* value this stage reads, checked (a genlab.params.Evaluator)."""
    return read(params, "evaluator")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="processed data directory (normalize's output)")
    ap.add_argument("--model", required=True, help="output directory for the evaluator")
    ap.add_argument("--checkpoints", required=True,
                    help="checkpoints, kept between runs (checkpoints/train_evaluator)")
    ap.add_argument("--metrics", required=True, help="output metrics JSON")
    args = ap.parse_args()
    settings = read_settings(read_params())
    sigterm_as_interrupt()

    from genlab.data.processed import load_meta, load_split
    from genlab.io import atomic_dir, check_outputs, write_json
    from genlab.training import budget

    meta = load_meta(args.data)
    _, n_params = budget.evaluator_counts(meta["shape"], filters=settings.filters,
                                          feature_dim=settings.feature_dim, n_classes=meta["n_classes"])
    check_outputs({args.model: budget.model_disk(n_params),
                   args.checkpoints: budget.checkpoint_disk(n_params, copies=4),   # + the best weights
                   args.metrics: budget.LIVE_DISK}, "train_evaluator")

    from genlab.evaluation.evaluator import accuracy, save_evaluator, train_evaluator
    x, y = load_split(args.data, "train")
    x_val, y_val = load_split(args.data, "val")
    x_test, y_test = load_split(args.data, "test")
    model, info = train_evaluator(x, y, x_val, y_val, settings, n_classes=int(meta["n_classes"]),
                                  ckpt_dir=args.checkpoints)
    test_acc = accuracy(model, x_test, y_test)
    print(f"evaluator test accuracy {test_acc:.4f} on {len(x_test)} {meta['dataset']} test images")
    info.update(dataset=meta["dataset"], input_range=list(meta["range"]),
                class_names=meta.get("class_names"), test_accuracy=test_acc, n_test=len(x_test))
    with atomic_dir(args.model) as tmp:
        save_evaluator(model, tmp, info)
    write_json(args.metrics, {"test_accuracy": test_acc, "val_accuracy": info["val_accuracy"],
                              "best_epoch": info["train"]["best_epoch"], "n_train": len(x)})


if __name__ == "__main__":
    run(main)
