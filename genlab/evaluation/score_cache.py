"""Quality-curve rows kept between runs, so a snapshot that has not changed is not scored again.

Extending a run (genlab.training.loop) leaves every snapshot up to the old iteration count
byte-identical, and evaluate would score them all again. `RowCache` keeps each row in the run store
(genlab.training.checkpoint.run_store: `<store>/scores/<key>.json`) under a key over everything the
row is a function of: the snapshot's iteration and bytes, the model's saved config (without the
fitted code densities, which the curves do not sample), the evaluator's weights, the validation
images and labels, the scoring settings, the source of the code that scores, the library versions,
the CPU model and the thread setting. The same key computes the same row, so a kept row is the row a
fresh evaluate writes. Each entry also carries `check`, the digest of its key and row, so a number that
rotted or was edited (still valid JSON) is caught. An entry that cannot be read, holds another key, a
malformed row or contents that do not match their check is deleted with a note and the row is scored
again; a store that cannot be written costs a note. GENLAB_RUN_STORE=off turns the cache off with the
store; `rm -rf <store>/scores` clears it.
"""

import json
import math
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np

from genlab import identity
from genlab.io import write_json
from genlab.training.checkpoint import run_store, used

FOLDER = "scores"
# config keys fitted to the final model's codes after training: snapshots sample the prior N(0, I)
# instead (genlab.evaluation.curves), so a row does not depend on them
FITTED = ("code_gmm",)
# the modules that compute a row (with every genlab module they import): scoring, and rebuilding the model
CODE = ("genlab.evaluation.curves", "genlab.models.load")


def curve_context(config, evaluator, x_val, y_val, settings, cas):
    """The part of every row's key shared by one model's snapshots (a fingerprint string).
    config: the model's saved config; evaluator: the loaded evaluator; x_val, y_val: the validation
    images and labels scored against (the first curve_n); settings: genlab.params.Evaluate; cas:
    genlab.params.Cas or None (no CAS column)."""
    n = settings.curve_n
    return identity.digest({
        "model": {k: v for k, v in config.items() if k not in FITTED},   # what sampling a snapshot uses
        "evaluator": identity.weights_digest(evaluator),
        "val": identity.array_digest(np.asarray(x_val[:n]), *([] if y_val is None else [np.asarray(y_val[:n])])),
        "settings": {k: getattr(settings, k) for k in ("curve_n", "pr_k", "two_sample_l2", "two_sample_max_iter",
                                                       "pixel_detector_epochs", "seed")},
        "cas": None if cas is None else asdict(cas),
        "code": identity.code_digest(*CODE),
        "environment": identity.environment(),
    })


def _check(key, row):
    """The digest an entry carries of its own contents (its key and row, as they read back from JSON)."""
    return identity.digest({"key": key, "row": json.loads(json.dumps(row), parse_constant=lambda _: None)})


class RowCache:
    """Rows of one model's snapshots in the store: get(iteration, path, columns) -> row or None,
    put(iteration, path, row). store None: a cache that never holds anything. `hits` counts rows reused."""

    def __init__(self, store, context, log=None):
        self.folder = None if store is None else Path(store) / FOLDER
        self.context = context
        self.log = log or (lambda msg: print(msg, file=sys.stderr))
        self.hits = 0

    @classmethod
    def default(cls, context, log=None):
        """The cache in the run store of this environment (GENLAB_RUN_STORE), or an empty one when it is off."""
        return cls(run_store(), context, log)

    def _key(self, iteration, path):
        return identity.digest({"context": self.context, "iteration": int(iteration),
                                "snapshot": identity.file_digest(path)})

    def get(self, iteration, path, columns):
        if self.folder is None:
            return None
        key = self._key(iteration, path)
        entry = self.folder / f"{key}.json"
        if not entry.is_file():
            return None
        try:
            saved = json.loads(entry.read_text())
            row = saved["row"]
            if saved.get("check") != _check(saved.get("key"), row):
                raise ValueError("its contents do not match their check: edited or damaged")
            if saved.get("key") != key or set(row) != set(columns) or row.get("iteration") != iteration or not all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in row.values()):
                raise ValueError("it holds another snapshot's row or a malformed one")
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            self.log(f"note: score cache entry {entry} is unusable ({e}); deleted it, scoring the snapshot again")
            entry.unlink(missing_ok=True)
            return None
        self.hits += 1
        used(entry)   # for the store's least-recently-used eviction
        return row

    def put(self, iteration, path, row):
        if self.folder is None:
            return
        key = self._key(iteration, path)
        try:
            write_json(self.folder / f"{key}.json", {"key": key, "row": row, "check": _check(key, row)})
        except OSError as e:
            self.log(f"note: could not keep a curve row in the score cache {self.folder} ({e}); "
                     "a later evaluate scores that snapshot again")
