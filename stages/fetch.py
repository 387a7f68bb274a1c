"""Stage fetch: download (or copy from a mirror) the dataset named by data.name, verified, into --out."""

import argparse

from genlab import cli, config, datasets


def read_settings(params):
    """Validate every data.* value this stage reads; return them as keyword arguments."""
    return {"name": config.get(params, "data.name", str, choices=datasets.NAMES),
            "url": config.get(params, "data.url", str),
            "sha256": config.get(params, "data.sha256", str)}


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", required=True, help="output folder (data/raw)")
    args = ap.parse_args()
    s = read_settings(cli.read_params())

    from genlab.fetch import fetch

    fetch(s["name"], args.out, url=s["url"], sha256=s["sha256"])


if __name__ == "__main__":
    cli.run(main)
