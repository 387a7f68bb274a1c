"""The VAE's decoding temperature, chosen on the validation split (issue 27): the default run's trained
VAE decoded at several temperatures (images sigmoid(logits / T), genlab.models.vae), each set scored
with evaluate's sample metrics against the validation images, beside the real-vs-real floor and the
VAE's own reconstructions of training images (what the decoder can show at best at that temperature).

    .venv/bin/python benchmarks/bench_temperature.py [--project .] [--temperatures 1,0.7,0.65,0.6,0.55,0.5]
        [--n 6000] [--train-n 10000]

Needs the default run's outputs in --project (`dvc repro`: models/vae, models/evaluator, data/processed).
Only the training and validation splits are read (no test image): what this decides selects nothing
with the test split, and nothing here trains (the evaluator steers no training). The same codes (the
model's sampler, sample.seed) are decoded at every temperature; the rule that picked the default:
the lowest temperature whose precision stays at or above the floor's (sharper than that, samples
leave the region real images occupy). Prints a markdown table.
"""

import argparse
import os
from pathlib import Path

import numpy as np
import yaml

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

COLUMNS = ("fd", "kid", "precision", "recall", "classes_covered", "detector_accuracy", "pixel_detector_accuracy")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--project", default=".", help="a checkout after `dvc repro`")
    ap.add_argument("--temperatures", default="1,0.7,0.65,0.6,0.55,0.5", help="comma-separated, each > 0")
    ap.add_argument("--n", type=int, default=6000, help="images per set (at most the validation split's)")
    ap.add_argument("--train-n", type=int, default=10000,
                    help="the first training images the floor draws its --n from (and the nearest-neighbour check "
                         "searches); at least --n")
    args = ap.parse_args()
    temps = [float(t) for t in args.temperatures.split(",")]
    if not temps or min(temps) <= 0:
        raise SystemExit("bench_temperature: --temperatures must be numbers > 0, e.g. 1,0.6")

    from genlab.evaluation.evaluator import load_evaluator
    from genlab.evaluation.scoring import score_models
    from genlab.models.load import load_model
    from genlab.params import read
    root = Path(args.project)
    params = yaml.safe_load((root / "params.yaml").read_text())
    vae = load_model(root / "models" / "vae")
    evaluator = load_evaluator(root / "models" / "evaluator")
    x_val = np.load(root / "data" / "processed" / "val_x.npy")
    x_train = np.load(root / "data" / "processed" / "train_x.npy", mmap_mode="r")
    if args.n > len(x_val):
        raise SystemExit(f"bench_temperature: --n {args.n} exceeds the {len(x_val)} validation images")
    if not args.n <= args.train_n <= len(x_train):
        raise SystemExit(f"bench_temperature: --train-n must be between --n ({args.n}) and the {len(x_train)} "
                         f"training images, got {args.train_n}")
    x_val, x_train = x_val[:args.n], np.asarray(x_train[:args.train_n])
    lo, hi = vae.config["value_range"]
    codes = vae.sample_codes(args.n, params["sample"]["seed"])
    own = vae.encode((x_train[:args.n] - lo) / (hi - lo))[0]      # training images' codes (means)
    generated = {}
    for t in temps:
        vae.config["temperature"] = t
        generated[f"samples, T {t:g}"] = vae.decode(codes) * (hi - lo) + lo
        generated[f"reconstructions, T {t:g}"] = vae.decode(own) * (hi - lo) + lo
    scores = score_models(evaluator, generated, x_val, x_train, value_range=[lo, hi],
                          settings=read(params, "evaluate"))
    print(f"VAE of {root / 'models' / 'vae'} (its config's temperature: set here per row), {args.n:,} images "
          f"per row against as many validation images\n")
    print("| row | FD | KID | precision | recall | classes | feature det. | pixel det. |")
    print("|---|---|---|---|---|---|---|---|")
    for name in [*generated, "floor"]:
        s = scores[name]
        cells = " | ".join(f"{s[c]:.3f}" if c != "classes_covered" else f"{s[c]}" for c in COLUMNS)
        print(f"| {'real-vs-real floor' if name == 'floor' else name} | {cells} |")


if __name__ == "__main__":
    main()
