"""Run identity: every digest and key of the project is built here, from one set of helpers.

A *key* says "what is this result a function of": equal keys must mean equal results on the same
machine, and any input that can change the result must change the key. Every key (the training run
fingerprint, the evaluator's run key, the floor's key, the score cache's keys) is `digest` of a
mapping whose parts come from these helpers:

  digest(obj)           sha256 of obj as canonical JSON (sorted keys, no spaces)
  file_digest(path)     sha256 of a file's bytes
  array_digest(*a)      sha256 over arrays' dtypes, shapes and bytes (data, labels, weights)
  weights_digest(m)     array_digest of a Keras model's weights (what inference with it computes)
  tree_digest(folder)   sha256 over every file's relative path and digest below a folder
  code_digest(*mods)    sha256 over the source of the named modules and every genlab module they
                        import, directly or through others (function-level imports included): the
                        same closure dvc.yaml lists as a stage's deps (tests/test_dvc_yaml.py)
  environment()         library versions, CPU model and count, GENLAB_THREADS: what the last bits of
                        a deterministic result depend on besides its inputs

No TensorFlow at import: check_params and the floor's file check use keys without it.
"""

import ast
import hashlib
import json
import os
import platform
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent   # the folder that holds the genlab package
PACKAGES = ("genlab", "stages")                 # whose imports a code closure follows


def digest(obj):
    """sha256 hex digest of obj (JSON-serialisable) as canonical JSON."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def file_digest(path):
    """sha256 hex digest of a file's bytes."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def array_digest(*arrays):
    """sha256 over the dtypes, shapes and bytes of arrays, in order."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(memoryview(a).cast("B"))
    return h.hexdigest()


def weights_digest(model):
    """A Keras model as inference sees it: its weights. (Its saved files also hold a save date, so
    the same weights saved again have other bytes.)"""
    return array_digest(*[np.asarray(w.numpy()) for w in model.weights])


def tree_digest(folder):
    """sha256 over the relative paths and bytes of every file under folder ("" if it is absent)."""
    folder = Path(folder)
    if not folder.is_dir():
        return ""
    h = hashlib.sha256()
    for f in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(f"{f.relative_to(folder).as_posix()}\0{file_digest(f)}\0".encode())
    return h.hexdigest()


def _module_path(name, root):
    """'genlab.x.y' -> Path('genlab/x/y.py') relative to root if that file exists (a package: its
    __init__.py), else None."""
    rel = Path(*name.split("."))
    for candidate in (rel.with_suffix(".py"), rel / "__init__.py"):
        if (root / candidate).is_file():
            return candidate
    return None


def imported_modules(path, root=None):
    """The project modules (relative paths) that the source file at `path` imports anywhere in its body."""
    root = ROOT if root is None else Path(root)
    found = set()
    for node in ast.walk(ast.parse(Path(path).read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        for name in names:
            if name.split(".")[0] in PACKAGES:
                rel = _module_path(name, root)
                if rel is not None and rel.name != "__init__.py":
                    found.add(rel)
    return found


def module_closure(*modules, root=None):
    """Sorted relative paths of the named modules ('genlab.training.gan') and of every project
    module they import, transitively. root: the folder holding the packages (default ROOT)."""
    root = ROOT if root is None else Path(root)
    todo = []
    for name in modules:
        rel = _module_path(name, root)
        if rel is None:
            raise ValueError(f"no module {name} under {root}")
        todo.append(rel)
    seen = set()
    while todo:
        rel = todo.pop()
        if rel not in seen:
            seen.add(rel)
            todo.extend(imported_modules(root / rel, root) - seen)
    return sorted(seen)


def code_digest(*modules, root=None):
    """sha256 over the relative path and source of every file in module_closure(*modules)."""
    root = ROOT if root is None else Path(root)
    return digest({rel.as_posix(): file_digest(root / rel) for rel in module_closure(*modules, root=root)})


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            return next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")),
                        platform.machine())
    except OSError:
        return platform.processor() or platform.machine()


def environment():
    """What a deterministic result depends on besides its inputs and code: the numeric libraries'
    versions, the CPU model and count, and the thread cap (GENLAB_THREADS)."""
    from importlib.metadata import version

    import keras
    import scipy
    import tensorflow as tf
    return {"tensorflow": tf.__version__, "keras": keras.__version__, "numpy": np.__version__,
            "scipy": scipy.__version__, "scikit-learn": version("scikit-learn"), "cpu": _cpu_model(),
            "cpus": os.cpu_count(), "threads": os.environ.get("GENLAB_THREADS", "")}
