"""Stage normalize: scale validated raw images to float32 NHWC in normalize.range, split train/val, write --out."""

import argparse

from genlab import stage
from genlab.params import read


def read_settings(params):
    """Every normalize.* value this stage reads, checked (a genlab.params.Normalize)."""
    return read(params, "normalize")


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--raw", required=True, help="fetch's output folder (data/raw)")
    ap.add_argument("--validated", required=True,
                    help="validate's stamp of the raw data it passed (data/validated.json)")
    ap.add_argument("--out", required=True, help="output folder (data/processed)")
    args = ap.parse_args()
    s = read_settings(stage.read_params())

    from genlab.data.normalize import check_validation, normalize
    from genlab.data.readers import load_raw, load_raw_info

    check_validation(args.validated, args.raw)
    info = load_raw_info(args.raw)
    meta = normalize(load_raw(args.raw), args.out, value_range=s.range, val_fraction=s.val_fraction, seed=s.seed,
                     dataset=info.get("name"), class_names=info.get("class_names"))
    print(f"normalize: {meta['counts']} images of shape {meta['shape']} in {meta['range']} -> {args.out}")


if __name__ == "__main__":
    stage.run(main)
