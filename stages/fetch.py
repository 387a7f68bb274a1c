"""Stage fetch: download (or copy from a mirror) the dataset named by data.name, verified, into --out;
with data.name image_folder, import the PNG/JPEG class folders at data.path instead."""

import argparse

from genlab import cli, config, datasets
from genlab.fetch import fetch
from genlab.image_folder import check_settings, import_folder


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", required=True, help="output folder (data/raw)")
    args = ap.parse_args()
    params = cli.read_params()
    name = config.get(params, "data.name", str, choices=datasets.NAMES)
    url = config.get(params, "data.url", str)
    sha256 = config.get(params, "data.sha256", str)
    path = config.get(params, "data.path", str)
    image_size = config.get(params, "data.image_size", int, lo=4, hi=1024)
    channels = config.get(params, "data.channels", int, choices=(1, 3))
    test_fraction = config.get(params, "data.test_fraction", float, lo=0.0, hi=0.5)
    seed = config.get(params, "data.seed", int, lo=0)
    check_settings(image_size, channels, test_fraction)
    if name == "image_folder":
        import_folder(path, args.out, image_size=image_size, channels=channels, test_fraction=test_fraction,
                      seed=seed)
    else:
        fetch(name, args.out, url=url, sha256=sha256)


if __name__ == "__main__":
    cli.run(main)
