"""The pipeline's stage scripts (`python -m stages.<stage>`, as dvc.yaml runs them).

Imported first by every `python -m stages.x`, so it checks, cheaply (no import, only a look-up), that
this interpreter has the project's packages: `dvc` run from another environment (or `.venv/bin/dvc`
without activating .venv) runs the stages with whatever `python` is first on PATH, which would else die
with a ModuleNotFoundError traceback.
"""

import importlib.util
import sys

REQUIRED = ("yaml", "numpy", "keras", "tensorflow", "dvclive")


def _missing():
    missing = []
    for name in REQUIRED:
        try:
            spec = importlib.util.find_spec(name)
            found = spec is not None and spec.origin is not None   # not a bare folder (dvclive/ outputs)
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(name)
    return missing


MISSING = _missing()
if MISSING:
    print(f"error: this python ({sys.executable}) lacks the project's packages ({', '.join(MISSING)}): "
          "activate the environment first (source .venv/bin/activate) or run bash bootstrap.sh repro",
          file=sys.stderr)
    sys.exit(1)
