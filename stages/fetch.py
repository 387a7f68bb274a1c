"""Stage fetch: download (or copy from a mirror) the dataset named by data.name, verified, into --out."""

import argparse

from genlab import cli, config, datasets
from genlab.fetch import fetch


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", required=True, help="output folder (data/raw)")
    args = ap.parse_args()
    params = cli.read_params()
    name = config.get(params, "data.name", str, choices=datasets.NAMES)
    url = config.get(params, "data.url", str)
    sha256 = config.get(params, "data.sha256", str)
    fetch(name, args.out, url=url, sha256=sha256)


if __name__ == "__main__":
    cli.run(main)
