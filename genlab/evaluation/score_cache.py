"""Quality-curve rows kept between runs, so a snapshot that has not changed is not scored again.

Extending a run (genlab.training.loop) leaves every snapshot up to the old iteration count
byte-identical, and evaluate would score them all again. `RowCache` keeps each row in the run store
(genlab.training.checkpoint.run_store: `<store>/scores/<key>.json`) under a key over everything the
row is a function of: the snapshot's iteration and bytes, the model's saved config (without the
fitted code densities, which the curves do not sample), the evaluator's weights, the validation
images and labels, the scoring settings, the source of the code that scores, the library versions,
the CPU model and the thread setting. The same key computes the same row, so a kept row is the row a
fresh evaluate writes. An entry that cannot be read, holds another key or a malformed row is deleted with a
note and the row is scored again; a store that cannot be written costs a note. GENLAB_RUN_STORE=off
turns the cache off with the store; `rm -rf <store>/scores` clears it.
"""

import hashlib
import json
import math
import os
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np

from genlab.training.checkpoint import array_digest, fingerprint, run_store

FOLDER = "scores"
# the modules whose source a row depends on (imported lazily: this module stays light)
MODULES = ("genlab.evaluation.curves", "genlab.evaluation.detect", "genlab.evaluation.metrics",
           "genlab.evaluation.cas", "genlab.evaluation.evaluator", "genlab.evaluation.score_cache",
           "genlab.models.gan", "genlab.models.vae", "genlab.models.density", "genlab.models.store",
           "genlab.models.load")


def _code_digest():
    import importlib
    h = hashlib.sha256()
    for name in MODULES:
        h.update(Path(importlib.import_module(name).__file__).read_bytes())
    return h.hexdigest()


def _machine():
    """What the last bits of a row depend on besides the inputs: library versions, the CPU model and the
    threads TensorFlow may use (results are deterministic for one machine and thread count)."""
    import platform

    import keras
    import scipy
    import tensorflow as tf
    cpu = platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    return {"tensorflow": tf.__version__, "keras": keras.__version__, "numpy": np.__version__,
            "scipy": scipy.__version__, "cpu": cpu, "cpus": os.cpu_count(),
            "threads": os.environ.get("GENLAB_THREADS", "")}


def curve_context(config, evaluator, x_val, y_val, settings, cas):
    """The part of every row's key shared by one model's snapshots (a fingerprint string).
    config: the model's saved config; evaluator: the loaded evaluator; x_val, y_val: the validation
    images and labels scored against (the first curve_n); settings: genlab.params.Evaluate; cas:
    genlab.params.Cas or None (no CAS column)."""
    from genlab.evaluation.curves import FITTED
    from genlab.evaluation.floor import evaluator_digest
    n = settings.curve_n
    return fingerprint({
        "model": {k: v for k, v in config.items() if k not in FITTED},   # what sampling a snapshot uses
        "evaluator": evaluator_digest(evaluator),
        "val": array_digest(np.asarray(x_val[:n]), *([] if y_val is None else [np.asarray(y_val[:n])])),
        "settings": {k: getattr(settings, k) for k in ("curve_n", "pr_k", "two_sample_l2", "two_sample_max_iter",
                                                       "pixel_detector_epochs", "seed")},
        "cas": None if cas is None else asdict(cas),
        "code": _code_digest(),
        "machine": _machine(),
    })


def _file_digest(path):
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


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
        return fingerprint({"context": self.context, "iteration": int(iteration), "snapshot": _file_digest(path)})

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
            if saved.get("key") != key or set(row) != set(columns) or row.get("iteration") != iteration or not all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in row.values()):
                raise ValueError("it holds another snapshot's row or a malformed one")
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            self.log(f"note: score cache entry {entry} is unusable ({e}); deleted it, scoring the snapshot again")
            entry.unlink(missing_ok=True)
            return None
        self.hits += 1
        return row

    def put(self, iteration, path, row):
        if self.folder is None:
            return
        key = self._key(iteration, path)
        entry = self.folder / f"{key}.json"
        tmp = entry.with_name(f".{entry.name}.tmp-{os.getpid()}")
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps({"key": key, "row": row}, sort_keys=True))
            os.replace(tmp, entry)
        except OSError as e:
            try:
                tmp.unlink(missing_ok=True)
            except OSError:
                pass
            self.log(f"note: could not keep a curve row in the score cache {self.folder} ({e}); "
                     "a later evaluate scores that snapshot again")
