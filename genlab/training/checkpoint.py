"""Training checkpoints: atomic, fingerprinted, verified, with a fallback to the previous one.

A checkpoint is a folder `<ckpt_dir>/ckpt-<step>` holding
  state.npz      every training variable (network weights incl. BatchNorm statistics, optimizer
                 moments and iteration counters, the step counter, loss accumulators), in order
  live/          a copy of the dvclive folder at that step (curves and sample images so far)
  manifest.json  step, run fingerprint, variable shapes, sha256 of state.npz (written last)
It is written into a temporary sibling and renamed into place, so a run killed mid-write leaves
no folder that looks like a checkpoint. On load, a checkpoint whose manifest or digest is wrong is
reported and deleted and the previous one is tried; one with another fingerprint (other params or
data) is reported and deleted, and training starts over.
"""

import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np

from genlab.io import atomic_dir

PREFIX = "ckpt-"


def fingerprint(obj):
    """sha256 of obj as canonical JSON: the identity of a training run."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def array_digest(*arrays):
    """sha256 over the bytes, dtypes and shapes of arrays (the data a run trains on)."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(memoryview(a).cast("B"))
    return h.hexdigest()


def _sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _fsync(path):
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def list_checkpoints(ckpt_dir):
    """Checkpoint folders, newest (highest step) first."""
    d = Path(ckpt_dir)
    if not d.is_dir():
        return []
    found = [p for p in d.iterdir() if p.is_dir() and p.name.startswith(PREFIX) and p.name[len(PREFIX):].isdigit()]
    return sorted(found, key=lambda p: int(p.name[len(PREFIX):]), reverse=True)


def remove_stale(ckpt_dir):
    """Delete temporary folders left by a run killed while writing a checkpoint."""
    d = Path(ckpt_dir)
    if d.is_dir():
        for p in d.glob(f".{PREFIX}*.tmp-*"):
            shutil.rmtree(p, ignore_errors=True)


def save(ckpt_dir, step, run_fingerprint, values, live_dir=None, keep=2):
    """Write checkpoint `step` with values (list of numpy arrays); keep the newest `keep`."""
    remove_stale(ckpt_dir)
    dest = Path(ckpt_dir) / f"{PREFIX}{step:09d}"
    with atomic_dir(dest) as tmp:
        tmp = Path(tmp)
        np.savez(tmp / "state.npz", **{f"v{i:04d}": v for i, v in enumerate(values)})
        _fsync(tmp / "state.npz")
        if live_dir is not None and Path(live_dir).is_dir():
            shutil.copytree(live_dir, tmp / "live")
        manifest = {"step": int(step), "fingerprint": run_fingerprint,
                    "shapes": [list(v.shape) for v in values], "dtypes": [str(v.dtype) for v in values],
                    "sha256": _sha256_file(tmp / "state.npz")}
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1))
        _fsync(tmp / "manifest.json")
    for old in list_checkpoints(ckpt_dir)[keep:]:
        shutil.rmtree(old, ignore_errors=True)
    return dest


def _read(path, run_fingerprint, shapes):
    """(manifest, values) of one checkpoint; raises ValueError saying why it is unusable."""
    try:
        manifest = json.loads((path / "manifest.json").read_text())
        step, fp, digest = int(manifest["step"]), manifest["fingerprint"], manifest["sha256"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(f"unreadable manifest ({type(e).__name__})") from None
    if fp != run_fingerprint:
        raise LookupError("made with other params, data or code")
    if _sha256_file(path / "state.npz") != digest:
        raise ValueError("state.npz does not match its recorded sha256")
    try:
        with np.load(path / "state.npz") as z:
            values = [z[f"v{i:04d}"] for i in range(len(z.files))]
    except (OSError, ValueError, KeyError) as e:
        raise ValueError(f"unreadable state.npz ({type(e).__name__})") from None
    if [tuple(v.shape) for v in values] != [tuple(s) for s in shapes]:
        raise ValueError("its variables do not match this model")
    return step, values


def load_latest(ckpt_dir, run_fingerprint, shapes, log=None):
    """(step, values, path) of the newest usable checkpoint for this run, or None.

    Unusable checkpoints are deleted, with one line on `log` (default stderr) saying why.
    """
    log = log or (lambda msg: print(msg, file=sys.stderr))
    remove_stale(ckpt_dir)
    stale, found = [], None
    for path in list_checkpoints(ckpt_dir):
        try:
            step, values = _read(path, run_fingerprint, shapes)
        except LookupError:
            stale.append(path)
        except ValueError as e:
            log(f"warning: checkpoint {path} is corrupt ({e}); deleted it, trying the previous one")
            shutil.rmtree(path, ignore_errors=True)
        else:
            found = step, values, path
            break
    if stale:  # deleted, so that they can never be mistaken for this run's newest checkpoint
        names = ", ".join(p.name for p in stale)
        log(f"note: ignoring checkpoints in {ckpt_dir} made with other params, data or code ({names})"
            + ("" if found else "; starting this run over"))
        for path in stale:
            shutil.rmtree(path, ignore_errors=True)
    return found


def restore_live(path, live_dir):
    """Put the dvclive folder saved with checkpoint `path` in place of live_dir (curves up to its step)."""
    live_dir = Path(live_dir)
    shutil.rmtree(live_dir, ignore_errors=True)
    if (Path(path) / "live").is_dir():
        shutil.copytree(Path(path) / "live", live_dir)
