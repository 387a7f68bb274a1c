"""Stage check_params: validate every value in params.yaml before any other stage runs.

The first stage of the pipeline (fetch depends on its output). It calls each stage's own
`read_settings` (the checks that stage makes before doing any work) on the whole params.yaml, so a bad
value stops `dvc repro` at once, before DVC deletes any other stage's outputs or a long training
runs. Its output never changes while params are valid, so it makes nothing downstream re-run.
"""

import argparse

from genlab import cli
from genlab.errors import GenlabError
from genlab.io import atomic_file
from stages import evaluate, fetch, normalize, sample, train_evaluator, train_gan, train_vae, validate

STAGES = (fetch, validate, normalize, train_gan, train_vae, train_evaluator, sample, evaluate)


def check(params):
    """Every stage's checks on params; raise one GenlabError listing every bad value."""
    errors = []
    for stage in STAGES:
        try:
            stage.read_settings(params)
        except GenlabError as e:
            errors.append(str(e))
    if errors:
        raise GenlabError("; ".join(errors))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="written when every value passed (data/params-checked.txt)")
    args = ap.parse_args()
    check(cli.read_params())
    with atomic_file(args.out, "w") as f:
        f.write("every value in params.yaml passed the stages' checks\n")
    print("check_params: params.yaml is valid")


if __name__ == "__main__":
    cli.run(main)
