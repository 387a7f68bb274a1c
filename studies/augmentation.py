"""The augmentation study (opt-in, not part of `dvc repro`): for small class-balanced real subsets,
train the conditional GAN on the subset only, then a classifier on the subset alone and on the subset
plus generated images; test accuracy over several seeds, and whether augmentation helped beyond the
noise (genlab.evaluation.augmentation). Writes --out/results.json, accuracy.csv (dvc plots) and table.md.

    python -m studies.augmentation      # from the project root, after `dvc repro`; see docs/augmentation.md
"""

import argparse
import csv
import io
import sys
import time
from datetime import date
from pathlib import Path

from genlab import config, stage
from genlab.errors import GenlabError
from studies import check_keys

STUDY, DOC = "studies/augmentation.yaml", "docs/augmentation.md"
KEYS = ("fractions", "seeds", "gan_iterations", "n_generated", "classifier_steps")


def read_settings(study, params, path=STUDY):
    """Validate the study's numbers (study: the augmentation: section's file) and the params.yaml keys it
    reads; return them as keyword arguments of genlab.evaluation.augmentation.run_study (gan as the
    checked genlab.params.Gan, train as a genlab.params.Train)."""
    from genlab.params import Train, read_all

    def own():
        check_keys(study, path, "augmentation", KEYS, DOC)
        g = config.get
        fractions = g(study, "augmentation.fractions", list)
        seeds = g(study, "augmentation.seeds", list)
        if not fractions or not all(isinstance(f, (int, float)) and not isinstance(f, bool) and 0 < f <= 1
                                    for f in fractions):
            raise GenlabError(f"augmentation.fractions must be a list of shares in (0, 1], got {fractions!r}")
        if len(seeds) < 2 or len(set(seeds)) != len(seeds) or not all(
                isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds):
            raise GenlabError(f"augmentation.seeds must be at least two different integers >= 0 (the spread needs "
                              f"repetitions), got {seeds!r}")
        return {"fractions": [float(f) for f in fractions], "seeds": list(seeds),
                "gan_iterations": g(study, "augmentation.gan_iterations", int, lo=1),
                "n_generated": g(study, "augmentation.n_generated", int, lo=1),
                "classifier_steps": g(study, "augmentation.classifier_steps", int, lo=1)}

    errors, s = [], {}
    try:
        s = own()
    except GenlabError as e:
        errors.append(str(e))
    try:
        train, gan, cas = read_all(params, "train", "gan", "cas")
    except GenlabError as e:
        errors.append(str(e))
    if errors:
        raise GenlabError("; ".join(errors))
    if not gan.conditional:
        raise GenlabError("the augmentation study needs a conditional GAN (labelled samples): set gan.conditional: "
                          "true in params.yaml")
    train = Train(**{**train.asdict(), "data_in_memory": True})   # the subsets are small arrays in memory
    return {**s, "gan": gan, "train": train, "classifier": {"batch_size": cas.batch_size, "lr": cas.lr}}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="data/processed", help="processed data folder (default data/processed)")
    ap.add_argument("--params", default="params.yaml", help="the pipeline's params (gan.*, train.*, cas.*)")
    ap.add_argument("--study", default=STUDY, help="the study's own numbers")
    ap.add_argument("--out", default="studies/augmentation",
                    help="output folder: results.json, accuracy.csv, table.md (default studies/augmentation)")
    args = ap.parse_args()
    s = read_settings(stage.read_params(args.study), stage.read_params(args.params), args.study)
    if not Path(args.data, "meta.json").exists():
        raise GenlabError(f"{args.data} holds no processed data: run `dvc repro normalize` (or `dvc pull`) first")

    from genlab.data.processed import load_split
    from genlab.evaluation.augmentation import RULE, run_study
    from genlab.io import atomic_dir, write_json
    from genlab.outputs.report import augmentation_table
    from genlab.training.loop import TrainSettings, load_training_data

    stage.sigterm_as_interrupt()
    start = time.perf_counter()
    dataset = load_training_data(args.data, ["train"])
    test = load_split(args.data, "test")
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    rows = run_study(dataset, test, fractions=s["fractions"], seeds=s["seeds"], gan_iterations=s["gan_iterations"],
                     n_generated=s["n_generated"], classifier_steps=s["classifier_steps"], gan=s["gan"],
                     train=TrainSettings.from_params(s["train"]), classifier=s["classifier"], log=log)
    results = {"date": date.today().isoformat(), "command": "python -m studies.augmentation",
               "seconds": round(time.perf_counter() - start), "dataset": dataset["meta"]["dataset"],
               "n_test": len(test[0]), "rule": RULE, "rows": rows,
               "settings": {k: s[k].asdict() if k == "gan" else s[k] for k in
                            ("fractions", "seeds", "gan_iterations", "n_generated", "classifier_steps", "gan",
                             "classifier")}
               | {"train": {k: getattr(s["train"], k) for k in ("batch_size", "xla")}}}
    table = io.StringIO()
    writer = csv.writer(table, lineterminator="\n")
    writer.writerow(["percent", "real_only", "augmented", "real_only_std", "augmented_std"])
    for r in rows:
        writer.writerow([f"{100 * r['fraction']:g}", f"{r['real_only_mean']:.4f}", f"{r['augmented_mean']:.4f}",
                         f"{r['real_only_std']:.4f}", f"{r['augmented_std']:.4f}"])
    with atomic_dir(args.out) as tmp:
        write_json(Path(tmp) / "results.json", results)
        (Path(tmp) / "accuracy.csv").write_text(table.getvalue())
        (Path(tmp) / "table.md").write_text(augmentation_table(results) + "\n")
    print(augmentation_table(results))
    print(f"augmentation: {results['seconds']} s; results -> {args.out}")


if __name__ == "__main__":
    stage.run(main)
