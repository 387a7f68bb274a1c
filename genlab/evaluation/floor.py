"""What the real-vs-real floor depends on, and the check that a floor file fits the inputs at hand.

The floor stage (stages/floor.py) scores real training images against the test images once
(genlab.evaluation.scoring.score_floor, genlab.evaluation.cas.cas_floor) and writes them with `key`:
a fingerprint of the evaluator's weights, the test and training images and labels, the evaluate keys of
FIELDS and the cas settings. evaluate recomputes the key and refuses a floor file of another one, so a
floor is never reported beside models scored with other inputs. The file also carries `check`, the digest
of everything else in it (seal), so a number edited by hand (the file is committed, and evaluate may be run
by hand) is refused too instead of being copied into metrics/evaluate.json. No TensorFlow: check_params
imports FIELDS through the floor stage's checks.
"""

import json
from dataclasses import asdict

from genlab import identity
from genlab.errors import GenlabError

# the evaluate keys the floor depends on (the floor stage reads these, and every cas.* key)
# the modules that compute the floor (genlab.evaluation.scoring.score_floor, genlab.evaluation.cas.cas_floor)
CODE = ("genlab.evaluation.scoring", "genlab.evaluation.cas")
FIELDS = ("n_samples", "kid_subset_size", "kid_subsets", "pr_k", "coverage_min_share", "two_sample_l2",
          "two_sample_max_iter", "pixel_detector_epochs", "seed")


def key(evaluator, test, train, settings, cas):
    """The floor's inputs as one fingerprint. evaluator: the loaded evaluator; test, train: (images,
    labels); settings: a genlab.params.Evaluate (FIELDS are read); cas: a genlab.params.Cas."""
    return identity.digest({"evaluator": identity.weights_digest(evaluator), "test": identity.array_digest(*test),
                            "train": identity.array_digest(*train),
                            "settings": {k: getattr(settings, k) for k in FIELDS}, "cas": asdict(cas),
                            "code": identity.code_digest(*CODE), "environment": identity.environment()})


def _as_read(obj):
    """obj as it reads back from its JSON file (genlab.io.write_json: tuples become lists, NaN/Inf null)."""
    return json.loads(json.dumps(obj), parse_constant=lambda _: None)


def seal(result):
    """The floor file's content: result (the key and the scores) with `check`, the digest of the rest."""
    body = _as_read({k: v for k, v in result.items() if k != "check"})
    return {**body, "check": identity.digest(body)}


def load(path, expected_key):
    """The floor stage's result at `path`, refused unless its contents match their check and it was
    computed from the inputs of expected_key."""
    try:
        with open(path) as f:
            floor = json.load(f)
        same = floor["key"] == expected_key
        intact = floor.get("check") == identity.digest({k: v for k, v in floor.items() if k != "check"})
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise GenlabError(f"{path} cannot be read ({e.__class__.__name__}): run `dvc repro floor`") from None
    if not intact:
        raise GenlabError(f"{path} was changed after the floor stage wrote it (its contents do not match their "
                          "check): run `dvc repro floor` to compute it again, or restore it with "
                          f"`git checkout -- {path}`")
    if not same:
        raise GenlabError(f"{path} was computed from other data, another evaluator or other evaluate/cas "
                          "settings: run `dvc repro floor`")
    return floor
