"""What the real-vs-real floor depends on, and the check that a floor file fits the inputs at hand.

The floor stage (stages/floor.py) scores real training images against the test images once
(genlab.evaluation.scoring.score_floor, genlab.evaluation.cas.cas_floor) and writes them with `key`:
a fingerprint of the evaluator's weights, the test and training images and labels, the evaluate keys of
FIELDS and the cas settings. evaluate recomputes the key and refuses a floor file of another one, so a
floor is never reported beside models scored with other inputs. No TensorFlow: check_params imports
FIELDS through the floor stage's checks.
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


def load(path, expected_key):
    """The floor stage's result at `path`, refused unless it was computed from the inputs of expected_key."""
    try:
        with open(path) as f:
            floor = json.load(f)
        same = floor["key"] == expected_key
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise GenlabError(f"{path} cannot be read ({e.__class__.__name__}): run `dvc repro floor`") from None
    if not same:
        raise GenlabError(f"{path} was computed from other data, another evaluator or other evaluate/cas "
                          "settings: run `dvc repro floor`")
    return floor
