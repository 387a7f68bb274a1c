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


def run(main):
    """Call main(); a GenlabError becomes one line on stderr and exit status 1."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        main()
    except GenlabError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
