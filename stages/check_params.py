"""Stage check_params: validate every value in params.yaml before any other stage runs.

The first stage of the pipeline (fetch depends on its output). It calls each stage's own
`read_settings` (the checks that stage makes before doing any work) on the whole params.yaml, so a bad
value stops `dvc repro` at once, before DVC deletes any other stage's outputs or a long training
runs. A key no stage reads (a typo such as `train.epoch`) is refused too, naming the closest known key.
Its output never changes while params are valid, so it makes nothing downstream re-run.
It imports no TensorFlow or Keras (the read_settings functions stay light), so it takes about a second.
"""

import argparse
import difflib

from genlab import config, limits, stage
from genlab.errors import GenlabError
from genlab.io import atomic_file, write_json
from stages import (
    check_data,
    evaluate,
    fetch,
    floor,
    normalize,
    sample,
    train_evaluator,
    train_gan,
    train_vae,
    validate,
)

STAGES = (fetch, validate, normalize, check_data, train_gan, train_vae, train_evaluator, floor, sample, evaluate)


def unknown_keys(params, known):
    """One message per key of params that no stage reads (a section no stage reads: one message)."""
    sections = {k.split(".")[0] for k in known}
    problems = []

    def walk(node, prefix):
        for name, value in node.items():
            key = f"{prefix}{name}"
            if key in known:
                continue                                  # read whole (e.g. a mapping of gates)
            if isinstance(value, dict) and any(k.startswith(key + ".") for k in known):
                walk(value, key + ".")
                continue
            if not prefix and key not in sections:
                close = difflib.get_close_matches(key, sorted(sections), n=1)
                what = f"{key} is not a known params section"
            else:
                close = difflib.get_close_matches(key, sorted(known), n=1)
                what = f"{key} is not a known param"
            problems.append(f"{what}: " + (f"did you mean {close[0]}?" if close
                                            else "remove it (the known keys are in docs/experiments.md, Params)"))

    walk(params, "")
    return problems


def check(params, dvc_yaml=limits.DVC_YAML):
    """Every stage's checks on params, and no unknown key; raise one GenlabError listing every problem
    (each message once, even when several stages read the same bad key)."""
    errors = []
    for module in STAGES:
        try:
            module.read_settings(params)
        except GenlabError as e:
            errors += str(e).split("; ")      # a stage may report several values, joined by "; "
    errors += unknown_keys(params, config.keys_read() | limits.declared_params(dvc_yaml=dvc_yaml))
    errors = list(dict.fromkeys(errors))
    if errors:
        raise GenlabError("; ".join(errors))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="written when every value passed (data/params-checked.txt)")
    ap.add_argument("--record", help="the digest of the values validated, which every later stage of the run "
                                     f"compares with params.yaml ({stage.PARAMS_RECORD})")
    args = ap.parse_args()
    params = stage.load_params()
    check(params)
    with atomic_file(args.out, "w") as f:
        f.write("every value in params.yaml passed the stages' checks\n")
    if args.record:
        write_json(args.record, {"params_digest": stage.params_digest(params)})
    print("check_params: params.yaml is valid")


if __name__ == "__main__":
    stage.run(main)
