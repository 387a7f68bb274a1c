"""Stage normalize: scale validated raw images to float32 NHWC in normalize.range, split train/val, write --out."""

import argparse

from genlab import cli, config
from genlab.errors import GenlabError
from genlab.normalize import check_validation, normalize
from genlab.readers import load_raw, load_raw_info


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--raw", required=True, help="fetch's output folder (data/raw)")
    ap.add_argument("--validation", required=True, help="validate's result (reports/validation.json)")
    ap.add_argument("--out", required=True, help="output folder (data/processed)")
    args = ap.parse_args()
    params = cli.read_params()
    value_range = config.get(params, "normalize.range", list)
    if len(value_range) != 2 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value_range):
        raise GenlabError(f"normalize.range must be a list of two numbers [low, high], got {value_range!r}")
    val_fraction = config.get(params, "normalize.val_fraction", float, lo=0.0, hi=0.5)
    seed = config.get(params, "normalize.seed", int, lo=0)
    check_validation(args.validation)
    info = load_raw_info(args.raw)
    meta = normalize(load_raw(args.raw), args.out, value_range=value_range, val_fraction=val_fraction,
                     seed=seed, dataset=info.get("name"), class_names=info.get("class_names"))
    print(f"normalize: {meta['counts']} images of shape {meta['shape']} in {meta['range']} -> {args.out}")


if __name__ == "__main__":
    cli.run(main)
