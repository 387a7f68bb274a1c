"""Validation of param values read from params.yaml: one clear line per bad value.

Every stage reads its params through `get`, before doing any work. With GENLAB_PARAMS_AUDIT set to a
file path, each key read is appended to that file as "<stage script> <key>" (the tests use this to
check that dvc.yaml lists exactly the keys each stage reads).
"""

import os
import sys
from pathlib import Path

from genlab.errors import GenlabError

_MISSING = object()
_read = set()   # every key get() was asked for in this process (check_params: the known keys)


def keys_read():
    """The dotted keys get() has been asked for so far in this process."""
    return set(_read)


def _describe(kind, choices, lo, hi):
    if choices is not None:
        return "one of " + ", ".join(repr(c) for c in choices)
    names = {int: "an integer", float: "a number", bool: "true or false", str: "a string",
             list: "a list", dict: "a mapping"}
    what = names.get(kind, kind.__name__)
    if kind in (int, float):
        if lo is not None and hi is not None:
            return f"{what} in [{lo}, {hi}]"
        if lo == 1 and kind is int:
            return "a positive integer"
        if lo is not None:
            return f"{what} >= {lo}"
        if hi is not None:
            return f"{what} <= {hi}"
    return what


def get(params, key, kind, *, choices=None, lo=None, hi=None, default=_MISSING):
    """Return params[key] (dotted key, e.g. "train.epochs") checked against kind/choices/range.

    kind: int, float, bool, str, list or dict. An int is accepted where a float is asked for;
    a bool is never accepted as a number.
    """
    _audit(key)
    _read.add(key)
    node = params
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            if default is not _MISSING:
                return default
            raise GenlabError(f"{key} is missing from params.yaml: add it (see docs/experiments.md, Params)")
        node = node[part]
    value = node
    ok = isinstance(value, kind) and not (kind in (int, float) and isinstance(value, bool))
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value, ok = float(value), True
    if ok and choices is not None and value not in choices:
        ok = False
    if ok and lo is not None and value < lo:
        ok = False
    if ok and hi is not None and value > hi:
        ok = False
    if not ok:
        raise GenlabError(f"{key} must be {_describe(kind, choices, lo, hi)}, got {value!r}")
    return value


def _audit(key):
    path = os.environ.get("GENLAB_PARAMS_AUDIT")
    if path:
        with open(path, "a") as f:
            f.write(f"{Path(sys.argv[0]).stem} {key}\n")
