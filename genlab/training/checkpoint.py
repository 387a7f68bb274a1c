"""Training checkpoints: atomic, fingerprinted, verified, with a fallback to the previous one.

A checkpoint is a folder `<ckpt_dir>/ckpt-<step>` holding
  state.npz      every training variable (network weights incl. BatchNorm statistics, optimizer
                 moments and iteration counters, the step counter, loss accumulators), in order
  live/          a copy of the dvclive folder at that step (curves and sample images so far)
  manifest.json  step, the run's iteration count, run fingerprint, variable shapes, sha256 of
                 state.npz and of live/ (written last)
It is written into a temporary sibling and renamed into place, so a run killed mid-write leaves
no folder that looks like a checkpoint. On load, a checkpoint whose manifest or digest is wrong is
reported and deleted and the previous one is tried; one with another fingerprint (other params or
data) or beyond the new run's last iteration is reported and deleted, and training starts over.

The run fingerprint leaves out the iteration count: a checkpoint at step s of a run of any length
is the state of every run of the same params at s (genlab.training.loop), so a run of any length
starts from the newest such state at or below its length. The *run store* (`run_store()`, outside the
workspace, reachable from DVC's temporary and queued experiments) keeps, under `<stage>-<fingerprint>/`,
the state at every snapshot point (train.snapshot_every) a run passes and each finished run's final
checkpoint: at most STATES_PER_RUN of them per run, the whole store held to GENLAB_RUN_STORE_MAX.
"""

import json
import os
import re
import shutil
import sys
from pathlib import Path

import numpy as np

from genlab.errors import GenlabError
from genlab.identity import file_digest, tree_digest
from genlab.io import atomic_dir, writer_alive

PREFIX = "ckpt-"


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
    """Delete temporary folders left by a run killed while writing a checkpoint (not those another live
    process is writing: two queued experiments share the run store)."""
    d = Path(ckpt_dir)
    if d.is_dir():
        for p in d.glob(f".{PREFIX}*.tmp-*"):
            if not writer_alive(p):
                shutil.rmtree(p, ignore_errors=True)


def save(ckpt_dir, step, run_fingerprint, values, live_dir=None, keep=2, iterations=None):
    """Write checkpoint `step` with values (list of numpy arrays); keep the newest `keep` (None: all).
    iterations: the length of the run that writes it (a finished run's final checkpoint has
    step == iterations)."""
    remove_stale(ckpt_dir)
    dest = Path(ckpt_dir) / f"{PREFIX}{step:09d}"
    with atomic_dir(dest) as tmp:
        tmp = Path(tmp)
        np.savez(tmp / "state.npz", **{f"v{i:04d}": v for i, v in enumerate(values)})
        _fsync(tmp / "state.npz")
        if live_dir is not None and Path(live_dir).is_dir():
            shutil.copytree(live_dir, tmp / "live")
        manifest = {"step": int(step), "iterations": int(step if iterations is None else iterations),
                    "fingerprint": run_fingerprint,
                    "shapes": [list(v.shape) for v in values], "dtypes": [str(v.dtype) for v in values],
                    "sha256": file_digest(tmp / "state.npz"), "live_sha256": tree_digest(tmp / "live")}
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1))
        _fsync(tmp / "manifest.json")
    if keep is not None:
        for old in list_checkpoints(ckpt_dir)[keep:]:
            shutil.rmtree(old, ignore_errors=True)
    return dest


def read_manifest(path):
    """The manifest of checkpoint `path` (dict); raises ValueError when it is unreadable."""
    try:
        manifest = json.loads((Path(path) / "manifest.json").read_text())
        int(manifest["step"]), str(manifest["fingerprint"]), str(manifest["sha256"])
        int(manifest.get("iterations", manifest["step"])), str(manifest.get("live_sha256", ""))
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(f"unreadable manifest ({type(e).__name__})") from None
    return manifest


def _read(path, run_fingerprint, shapes):
    """(step, values) of one checkpoint; raises ValueError saying why it is unusable, LookupError
    when it belongs to another run."""
    manifest = read_manifest(path)
    step, fp, digest = int(manifest["step"]), manifest["fingerprint"], manifest["sha256"]
    if fp != run_fingerprint:
        raise LookupError("made with other params, data or code")
    if step != int(path.name[len(PREFIX):]):
        raise ValueError(f"its manifest says step {step}")
    if file_digest(path / "state.npz") != digest:
        raise ValueError("state.npz does not match its recorded sha256")
    if tree_digest(path / "live") != manifest.get("live_sha256"):
        raise ValueError("live/ does not match its recorded sha256")
    try:
        with np.load(path / "state.npz") as z:
            values = [z[f"v{i:04d}"] for i in range(len(z.files))]
    except (OSError, ValueError, KeyError) as e:
        raise ValueError(f"unreadable state.npz ({type(e).__name__})") from None
    if [tuple(v.shape) for v in values] != [tuple(s) for s in shapes]:
        raise ValueError("its variables do not match this model")
    return step, values


def load_latest(ckpt_dir, run_fingerprint, shapes, log=None, iterations=None):
    """(step, values, path) of the newest usable checkpoint for this run at or below iterations, or None.

    Unusable checkpoints are deleted, with one line on `log` (default stderr) saying why; so are
    those beyond iterations (a longer run's: they would outlive this run's own checkpoints). The lines
    say what was dropped, never where the run starts: the caller may still find a state in the run
    store (genlab.training.loop says where it starts, once).
    """
    log = log or (lambda msg: print(msg, file=sys.stderr))
    remove_stale(ckpt_dir)
    stale, longer, found = [], [], None
    for path in list_checkpoints(ckpt_dir):
        if iterations is not None and int(path.name[len(PREFIX):]) > iterations:
            longer.append(path)
            continue
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
        log(f"note: ignoring checkpoints in {ckpt_dir} made with other params, data or code ({names})")
        for path in stale:
            shutil.rmtree(path, ignore_errors=True)
    if longer:
        names = ", ".join(p.name for p in longer)
        log(f"note: ignoring checkpoints in {ckpt_dir} beyond this run's {iterations} iterations ({names})")
        for path in longer:
            shutil.rmtree(path, ignore_errors=True)
    return found


def restore_live(path, live_dir):
    """Put the dvclive folder saved with checkpoint `path` in place of live_dir (curves up to its step)."""
    live_dir = Path(live_dir)
    shutil.rmtree(live_dir, ignore_errors=True)
    if (Path(path) / "live").is_dir():
        shutil.copytree(Path(path) / "live", live_dir)


STORE_OFF = ("off", "none", "0", "false", "no")
STORE_ON = ("on", "true", "yes", "1")


def run_store():
    """The folder of runs' states at snapshot points and finished runs' ends (GENLAB_RUN_STORE; default
    $XDG_CACHE_HOME/genlab/runs or ~/.cache/genlab/runs), or None when GENLAB_RUN_STORE is "off". A value
    that reads as a switch turned on ("on", "true", "yes", "1") is refused: it would be a folder of that name."""
    value = os.environ.get("GENLAB_RUN_STORE", "")
    if value.strip().lower() in STORE_OFF:
        return None
    if value.strip().lower() in STORE_ON:
        raise GenlabError(f"GENLAB_RUN_STORE is a folder or off, got {value!r}: unset it for the default store "
                          f"(~/.cache/genlab/runs, on unless turned off) or give a path")
    if value:
        return Path(value).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "genlab" / "runs"


def store_entry(store, stage, run_fingerprint):
    """The store folder of one run (stage + fingerprint without the iteration count)."""
    return Path(store) / f"{stage}-{run_fingerprint}"


def load_stored(store, stage, run_fingerprint, shapes, iterations, log=None):
    """(step, values, path) of the newest verified store checkpoint of this run at or below
    iterations, or None. A corrupt or foreign entry is deleted with a note; longer runs' entries stay."""
    log = log or (lambda msg: print(msg, file=sys.stderr))
    for path in list_checkpoints(store_entry(store, stage, run_fingerprint)):
        if int(path.name[len(PREFIX):]) > iterations:
            continue
        try:
            step, values = _read(path, run_fingerprint, shapes)
        except (ValueError, LookupError) as e:
            why = str(e) if isinstance(e, ValueError) else "it was made by another run"
            log(f"note: run store entry {path} is unusable ({why}); deleted it")
            shutil.rmtree(path, ignore_errors=True)
        else:
            used(path)
            return step, values, path
    return None


STATES_PER_RUN = 16   # the states one run entry keeps (the highest steps): ~10 snapshot points and ends


def _held(dest):
    """Whether the store holds a complete state at `dest` already (marked as just used if so). A state of
    one fingerprint and step is the same whichever run wrote it, so it is never written twice."""
    if dest.is_dir() and (dest / "manifest.json").is_file():
        used(dest)
        return True
    return False


def _keep_entry(store, entry, dest, log):
    used(dest)
    for old in list_checkpoints(entry)[STATES_PER_RUN:]:
        shutil.rmtree(old, ignore_errors=True)
    prune(store, keep=(dest,), log=log)


def _store_failed(store, e, log):
    log(f"note: could not keep this run's state in the run store {store} ({e}); runs of other lengths "
        "will train it again")


def publish(path, store, stage, run_fingerprint, log=None):
    """Copy checkpoint `path` (a finished run's final one) into the store atomically, then hold the entry
    to STATES_PER_RUN and the store to its cap (prune). A store that cannot be written only costs a note:
    it is a cache. Another process publishing the same state at the same moment (two queued experiments)
    writes the same values: the first complete copy stays."""
    log = log or (lambda msg: print(msg, file=sys.stderr))
    entry = store_entry(store, stage, run_fingerprint)
    dest = entry / Path(path).name
    if _held(dest):
        return  # already there (this run started from it, or passed it, or was run before)
    try:
        entry.mkdir(parents=True, exist_ok=True)
        with atomic_dir(dest, replace=False) as tmp:
            shutil.rmtree(tmp)
            shutil.copytree(path, tmp)
        _keep_entry(store, entry, dest, log)
    except OSError as e:
        _store_failed(store, e, log)


def store_state(store, stage, run_fingerprint, step, values, live_dir, iterations, log=None):
    """Keep the training state at `step` (a snapshot point the run passes) in the store, written as a
    checkpoint (save) straight into the run's entry, unless the store holds it already."""
    log = log or (lambda msg: print(msg, file=sys.stderr))
    entry = store_entry(store, stage, run_fingerprint)
    dest = entry / f"{PREFIX}{step:09d}"
    if _held(dest):
        return
    try:
        entry.mkdir(parents=True, exist_ok=True)
        save(entry, step, run_fingerprint, values, live_dir=live_dir, keep=None, iterations=iterations)
        _keep_entry(store, entry, dest, log)
    except OSError as e:
        _store_failed(store, e, log)


# ---- the store's size: a cap with least-recently-used eviction, a listing, clearing ----------------

DEFAULT_STORE_MAX = "5G"
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def store_limit():
    """The run store's cap in bytes: GENLAB_RUN_STORE_MAX, a size such as 5G, 500M or 2000000 (default
    DEFAULT_STORE_MAX); 0 = no cap."""
    value = os.environ.get("GENLAB_RUN_STORE_MAX", "").strip().upper() or DEFAULT_STORE_MAX
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([KMGT]?)B?", value)
    if not match:
        raise GenlabError(f"GENLAB_RUN_STORE_MAX must be a size such as 5G, 500M or 0 (no cap), got {value!r}: "
                          f"fix it or unset it (default {DEFAULT_STORE_MAX})")
    return int(float(match[1]) * _UNITS[match[2]])


def used(path):
    """Mark a store entry as just used (its time is what least-recently-used eviction goes by)."""
    try:
        os.utime(path)
    except OSError:
        pass


def _size(path):
    path = Path(path)
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    total = 0
    for f in files:
        try:
            total += f.stat().st_size
        except OSError:   # removed meanwhile (another process pruning)
            pass
    return total


def store_items(store):
    """[(path, bytes, last used)] of the store's entries, least recently used first: each kept
    checkpoint (<stage>-<fingerprint>/ckpt-<step>) and each score-cache row (scores/<key>.json)."""
    store, items = Path(store), []
    candidates = [p for p in store.glob(f"*/{PREFIX}*") if p.is_dir()] + list(store.glob("scores/*.json"))
    for path in candidates:
        try:
            items.append((path, _size(path), path.stat().st_mtime))
        except OSError:
            pass
    return sorted(items, key=lambda item: (item[2], str(item[0])))


def _remove(path):
    if Path(path).is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        Path(path).unlink(missing_ok=True)


def prune(store, limit=None, keep=(), log=None):
    """Delete the least recently used entries until the store holds at most `limit` bytes (default
    store_limit(); 0 = no cap), never those in `keep`. Returns the paths deleted."""
    limit = store_limit() if limit is None else limit
    items = store_items(store) if limit else []
    total, removed = sum(size for _, size, _ in items), []
    for path, size, _ in items:
        if total <= limit:
            break
        if path not in keep:
            _remove(path)
            total, removed = total - size, removed + [path]
    if removed and log:
        log(f"note: the run store {store} is over GENLAB_RUN_STORE_MAX ({limit / (1 << 20):.1f} MiB): removed its "
            f"{len(removed)} least recently used entries")
    return removed


def clear(store):
    """Delete every entry of the store; returns (entries, bytes) deleted."""
    items = store_items(store)
    for path, _, _ in items:
        _remove(path)
    for entry in Path(store).glob("*"):
        if entry.is_dir() and not any(entry.iterdir()):
            entry.rmdir()
    return len(items), sum(size for _, size, _ in items)
