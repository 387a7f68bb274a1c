"""Opt-in studies: scripts run by an explicit command, never by `dvc repro` (docs/augmentation.md)."""

import difflib

from genlab.errors import GenlabError


def check_keys(study, path, section, keys, doc):
    """The keys of a study's own file (path, holding one mapping `section:` of `keys`), before any value
    is read: a misspelled or missing key is one line naming the file, the typo (did you mean ...?) and
    the study's doc (where its keys are described), not params.yaml's."""
    problems = []
    for name in study:
        if name != section:
            close = difflib.get_close_matches(str(name), [section], n=1)
            problems.append(f"{name} is not a section of {path}: "
                            + (f"did you mean {section}?" if close else f"it holds one section, {section}"))
    node = study.get(section, {})
    if not isinstance(node, dict):
        problems.append(f"{section} in {path} must be a mapping of its keys, got {node!r}")
        node = {}
    known = [f"{section}.{k}" for k in keys]
    meant = set()
    for name in node:
        if name not in keys:
            close = difflib.get_close_matches(f"{section}.{name}", known, n=1)
            meant.update(close)
            problems.append(f"{section}.{name} is not a key of {path}: "
                            + (f"did you mean {close[0]}?" if close else "remove it"))
    problems += [f"{k} is missing from {path}: add it" for k in known
                 if k.split(".", 1)[1] not in node and k not in meant and section in study]
    if section not in study and not any(p.endswith(f"did you mean {section}?") for p in problems):
        problems.append(f"{path} has no {section}: section: add it")
    if problems:
        raise GenlabError("; ".join(problems) + f" (the study's keys: {doc})")


def flat_keys(tree, prefix=""):
    """The dotted keys of the leaves of a params tree."""
    for name, value in tree.items():
        if isinstance(value, dict):
            yield from flat_keys(value, f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}"
