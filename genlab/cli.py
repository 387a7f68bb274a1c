"""Helpers shared by the stage scripts: run a stage's main() with user-facing errors."""

import os
import sys
from pathlib import Path

import yaml

from genlab.errors import GenlabError


def read_params(path="params.yaml"):
    """Read params.yaml as a dict (stages call this; the library itself never does)."""
    p = Path(path)
    if not p.exists():
        raise GenlabError(f"{path} not found: run the stage from the project root (dvc repro does)")
    try:
        params = yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        raise GenlabError(f"{path} is not valid YAML ({e.__class__.__name__}): fix the file") from None
    if not isinstance(params, dict):
        raise GenlabError(f"{path} must hold a mapping of sections, got {type(params).__name__}")
    return params


def limit_threads():
    """GENLAB_THREADS=N caps the CPU threads TensorFlow uses (intra- and inter-op), e.g. 1 per job
    when `dvc queue start -j 2` runs two experiments on two cores. Unset: TensorFlow's default."""
    value = os.environ.get("GENLAB_THREADS", "")
    if not value:
        return
    if not value.isdigit() or int(value) < 1:
        raise GenlabError(f"GENLAB_THREADS must be a positive integer, got {value!r}: unset it or fix it")
    # TensorFlow reads these when it creates its thread pools, i.e. at its first operation.
    os.environ["TF_NUM_INTRAOP_THREADS"] = os.environ["TF_NUM_INTEROP_THREADS"] = value
    os.environ["OMP_NUM_THREADS"] = value


def run(main):
    """Call main(); a GenlabError becomes one line on stderr and exit status 1."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        limit_threads()
        main()
    except GenlabError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
