"""Stage fetch: download (or copy from a mirror) the dataset named by data.name, verified, into --out;
with data.name image_folder, import the PNG/JPEG class folders at data.path instead."""

import argparse

from genlab import cli, config
from genlab.data import datasets


def read_settings(params):
    """Validate every data.* value this stage reads; return them as keyword arguments."""
    from genlab.data.image_folder import check_settings
    s = {"name": config.get(params, "data.name", str, choices=datasets.NAMES),
         "url": config.get(params, "data.url", str),
         "sha256": config.get(params, "data.sha256", str),
         "path": config.get(params, "data.path", str),
         "image_size": config.get(params, "data.image_size", int, lo=4, hi=1024),
         "channels": config.get(params, "data.channels", int, choices=(1, 3)),
         "test_fraction": config.get(params, "data.test_fraction", float, lo=0.0, hi=0.5),
         "seed": config.get(params, "data.seed", int, lo=0)}
    check_settings(s["image_size"], s["channels"], s["test_fraction"])
    return s


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", required=True, help="output folder (data/raw)")
    args = ap.parse_args()
    s = read_settings(cli.read_params())

    from genlab.data.fetch import fetch
    from genlab.data.image_folder import import_folder

    if s["name"] == "image_folder":
        import_folder(s["path"], args.out, image_size=s["image_size"], channels=s["channels"],
                      test_fraction=s["test_fraction"], seed=s["seed"])
    else:
        fetch(s["name"], args.out, url=s["url"], sha256=s["sha256"])


if __name__ == "__main__":
    cli.run(main)
