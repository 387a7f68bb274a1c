"""The code keeps its shape (docs/pipeline.md, "How the code is built"): imports follow the pipeline's
phases, functions stay short, and every training goes through the one engine."""

import ast

from conftest import ROOT
from genlab.identity import imported_modules

# data <- models <- training <- evaluation <- outputs; the plumbing modules (genlab/*.py) below all,
# the `genlab` command above all
PHASES = {"data": 1, "models": 2, "training": 3, "evaluation": 4, "outputs": 5}
MAX_LINES = 60


def phase(rel):
    if len(rel.parts) == 2:
        return 6 if rel.name == "command.py" else 0
    return PHASES[rel.parts[1]]


def test_no_module_imports_a_later_phase():
    against = [f"{f.relative_to(ROOT)} imports {imp}" for f in sorted((ROOT / "genlab").rglob("*.py"))
               for imp in imported_modules(f, ROOT)
               if imp.parts[0] == "genlab" and phase(imp) > phase(f.relative_to(ROOT))]
    assert against == []


def test_no_function_is_longer_than_60_lines():
    long = []
    for folder in ("genlab", "stages"):
        for f in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(f.read_text())):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    n = node.end_lineno - node.lineno + 1
                    if n > MAX_LINES:
                        long.append(f"{f.relative_to(ROOT)}:{node.lineno} {node.name} ({n} lines)")
    assert long == []


def test_every_training_goes_through_the_engine():
    """No module but the engine builds a compiled training function or calls Keras's fit/train_on_batch:
    the tasks of genlab/training, the evaluator, the CAS classifier and the pixel detector are trained
    by genlab.training.loop. (A scikit-learn estimator's fit, in a function that imports it, is no
    network training: the code mixture and the feature detector.)"""
    found = []
    for f in sorted((ROOT / "genlab").rglob("*.py")):
        if f.relative_to(ROOT).as_posix() == "genlab/training/loop.py":
            continue
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in ("fit", "train_on_batch", "GradientTape"):
                if node.attr == "fit" and _in_sklearn_function(f, node):
                    continue
                if node.attr != "GradientTape" or not _in_update(f, node):
                    found.append(f"{f.relative_to(ROOT)}:{node.lineno} {node.attr}")
    assert found == []


def _in_sklearn_function(path, target):
    """Is `target` inside a function that imports from scikit-learn?"""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.FunctionDef) and node.lineno <= target.lineno <= node.end_lineno:
            if any(isinstance(n, ast.ImportFrom) and (n.module or "").startswith("sklearn") for n in ast.walk(node)):
                return True
    return False


def _in_update(path, target):
    """Is `target` inside a method named `update` (a task's step, which the engine compiles)?"""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.FunctionDef) and node.name in ("update", "_step", "gan_step", "vae_step"):
            if node.lineno <= target.lineno <= node.end_lineno:
                return True
    return False
