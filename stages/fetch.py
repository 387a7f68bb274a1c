"""Stage fetch: download (or copy from a mirror) the dataset named by data.name, verified, into --out;
with data.name image_folder, import the PNG/JPEG class folders at data.path instead."""

import argparse

from genlab import stage
from genlab.params import read


def read_settings(params):
    """Every data.* value this stage reads, checked (a genlab.params.Data)."""
    return read(params, "data")


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", required=True, help="output folder (data/raw)")
    args = ap.parse_args()
    s = read_settings(stage.read_params())

    from genlab.data.fetch import fetch
    from genlab.data.image_folder import import_folder

    if s.name == "image_folder":
        import_folder(s.path, args.out, image_size=s.image_size, channels=s.channels,
                      test_fraction=s.test_fraction, seed=s.seed)
    else:
        fetch(s.name, args.out, url=s.url, sha256=s.sha256)


if __name__ == "__main__":
    stage.run(main)
