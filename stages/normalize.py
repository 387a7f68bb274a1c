"""Stage normalize: scale validated raw images to float32 NHWC in normalize.range, split train/val, write --out."""

import argparse

from genlab import cli, config
from genlab.errors import GenlabError


def read_settings(params):
    """Validate every normalize.* value this stage reads; return them as keyword arguments."""
    value_range = config.get(params, "normalize.range", list)
    if len(value_range) != 2 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value_range):
        raise GenlabError(f"normalize.range must be a list of two numbers [low, high], got {value_range!r}")
    if not value_range[0] < value_range[1]:
        raise GenlabError(f"normalize.range must be [low, high] with low < high, got {value_range!r}")
    return {"value_range": value_range,
            "val_fraction": config.get(params, "normalize.val_fraction", float, lo=0.0, hi=0.5),
            "seed": config.get(params, "normalize.seed", int, lo=0)}


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--raw", required=True, help="fetch's output folder (data/raw)")
    ap.add_argument("--validated", required=True,
                    help="validate's stamp of the raw data it passed (data/validated.json)")
    ap.add_argument("--out", required=True, help="output folder (data/processed)")
    args = ap.parse_args()
    s = read_settings(cli.read_params())

    from genlab.data.normalize import check_validation, normalize
    from genlab.data.readers import load_raw, load_raw_info

    check_validation(args.validated, args.raw)
    info = load_raw_info(args.raw)
    meta = normalize(load_raw(args.raw), args.out, **s, dataset=info.get("name"), class_names=info.get("class_names"))
    print(f"normalize: {meta['counts']} images of shape {meta['shape']} in {meta['range']} -> {args.out}")


if __name__ == "__main__":
    cli.run(main)
