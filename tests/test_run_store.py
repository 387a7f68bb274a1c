"""The run store (genlab.training.checkpoint.run_store; issue 26, "Also"): held to GENLAB_RUN_STORE_MAX by
least-recently-used eviction, listed and cleared by `genlab store`, and safe for two writers of one entry
at the same moment (two queued experiments): neither leaves a partial entry, each reads a verified one."""

import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from conftest import ROOT, own_lines, tool_env
from genlab.command import execute, parser
from genlab.evaluation.score_cache import RowCache
from genlab.training import checkpoint

FP = "f" * 64
SHAPES = [(256, 256), (3,)]


def state(step):
    return [np.full((256, 256), step, np.float32), np.arange(3, dtype=np.float32)]


def published(store, tmp_path, stage, step):
    """A finished run's final checkpoint of `step` iterations, put into the store; returns its store path."""
    src = checkpoint.save(tmp_path / "ws" / stage, step, FP, state(step), iterations=step)
    checkpoint.publish(src, store, stage, FP)
    return checkpoint.store_entry(store, stage, FP) / src.name


def age(path, seconds_ago):
    t = time.time() - seconds_ago
    os.utime(path, (t, t))


def test_the_cap_evicts_the_least_recently_used(tmp_path, monkeypatch):
    store = tmp_path / "store"
    monkeypatch.setenv("GENLAB_RUN_STORE_MAX", "0")          # no cap while filling it
    a, b = published(store, tmp_path, "train_gan", 10), published(store, tmp_path, "train_vae", 10)
    row = store / "scores" / "k.json"
    row.parent.mkdir()
    row.write_text('{"key": "k", "row": {}}')
    age(a, 300), age(b, 200), age(row, 100)
    size = checkpoint.store_items(store)[0][1]
    assert [p for p, _, _ in checkpoint.store_items(store)] == [a, b, row] and size > 256 * 256 * 4
    # using an entry makes it the most recent: the other one goes first
    assert checkpoint.load_stored(store, "train_gan", FP, SHAPES, iterations=10)[0] == 10
    notes = []
    monkeypatch.setenv("GENLAB_RUN_STORE_MAX", str(2 * size + 2000))
    c = published(store, tmp_path, "train_evaluator", 20)     # publishing holds the store to its cap
    assert not b.exists() and a.exists() and row.exists() and c.exists()
    removed = checkpoint.prune(store, limit=size + 100, keep=(c,), log=notes.append)
    assert removed == [row, a] and c.exists() and not a.exists()
    assert notes == [f"note: the run store {store} is over GENLAB_RUN_STORE_MAX (0.3 MiB): removed its 2 least "
                     "recently used entries"]


@pytest.mark.parametrize("value, size", [("5G", 5 << 30), ("500M", 500 << 20), ("1.5k", 1536), ("2000", 2000),
                                         ("0", 0), ("", 5 << 30)])
def test_the_cap_values(value, size, monkeypatch):
    monkeypatch.setenv("GENLAB_RUN_STORE_MAX", value)
    assert checkpoint.store_limit() == size


def test_genlab_store_lists_and_clears(tmp_path, monkeypatch, capsys):
    store = tmp_path / "store"
    monkeypatch.setenv("GENLAB_RUN_STORE", str(store))
    monkeypatch.setenv("GENLAB_RUN_STORE_MAX", "1G")
    entry = published(store, tmp_path, "train_gan", 10)
    summary = execute(parser().parse_args(["store"]))
    listing = capsys.readouterr().out.splitlines()
    assert len(listing) == 1 and listing[0].endswith(f"  train_gan-{FP}/ckpt-000000010") and "0.3 MiB" in listing[0]
    assert summary == (f"genlab store: {store}: 1 entries, 0.3 MiB of GENLAB_RUN_STORE_MAX 1024.0 MiB "
                       "(least recently used first)")
    assert execute(parser().parse_args(["store", "--clear"])) == f"genlab store: cleared {store}: 1 entries, 0.3 MiB"
    assert not entry.exists() and list(store.iterdir()) == []
    monkeypatch.setenv("GENLAB_RUN_STORE", "off")
    assert execute(parser().parse_args(["store"])) == "genlab store: the run store is off (GENLAB_RUN_STORE=off)"


def test_a_bad_cap_is_one_line(tmp_path):
    env = tool_env(PYTHONPATH=str(ROOT), GENLAB_RUN_STORE=str(tmp_path), GENLAB_RUN_STORE_MAX="lots")
    r = subprocess.run([sys.executable, "-m", "genlab.command", "store"], capture_output=True, text=True, env=env,
                       cwd=tmp_path)
    assert r.returncode == 1 and own_lines(r.stderr) == [
        "error: GENLAB_RUN_STORE_MAX must be a size such as 5G, 500M or 0 (no cap), got 'LOTS': fix it or unset it "
        "(default 5G)"], r.stderr


@pytest.mark.parametrize("value", ["on", "TRUE", "1"])
def test_a_switch_value_for_the_store_is_one_line_and_no_folder(tmp_path, value):
    env = tool_env(PYTHONPATH=str(ROOT), GENLAB_RUN_STORE=value)
    r = subprocess.run([sys.executable, "-m", "genlab.command", "store"], capture_output=True, text=True, env=env,
                       cwd=tmp_path)
    assert r.returncode == 1 and own_lines(r.stderr) == [
        f"error: GENLAB_RUN_STORE is a folder or off, got {value!r}: unset it for the default store "
        "(~/.cache/genlab/runs, on unless turned off) or give a path"], r.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("value", ["off", "false", "No"])
def test_the_store_turned_off(value, monkeypatch):
    monkeypatch.setenv("GENLAB_RUN_STORE", value)
    assert checkpoint.run_store() is None


WRITER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    import numpy as np
    from genlab.training import checkpoint
    from genlab.evaluation.score_cache import RowCache
    store, go, rounds = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    notes = []
    while not go.exists():
        time.sleep(0.001)
    for i in range(rounds):
        stage = f"train_gan{i}"
        src = Path(sys.argv[4]) / f"ckpt-{10:09d}"      # the same finished run in both processes
        checkpoint.publish(src, store, stage, "f" * 64, log=notes.append)
        found = checkpoint.load_stored(store, stage, "f" * 64, [(256, 256), (3,)], iterations=10, log=notes.append)
        assert found is not None and found[0] == 10 and float(found[1][0][0, 0]) == 10.0, notes
        cache = RowCache(store, "context", log=notes.append)
        row = {"iteration": i, "fd": 1.5 + i}
        cache.put(i, src / "state.npz", row)
        assert cache.get(i, src / "state.npz", ["iteration", "fd"]) == row, notes
    print("notes:", notes)
""")


def test_two_writers_of_one_entry_at_the_same_moment(tmp_path):
    """Two processes publish the same finished run and score the same rows into one store, round after
    round, at the same moment: each reads back a verified entry, nothing partial or temporary is left,
    and neither says a write failed."""
    store, go, rounds = tmp_path / "store", tmp_path / "go", 30
    src = checkpoint.save(tmp_path / "ws", 10, FP, state(10), iterations=10).parent
    env = tool_env(PYTHONPATH=str(ROOT), GENLAB_RUN_STORE_MAX="0")
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(store), str(go), str(rounds), str(src)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    time.sleep(3)            # both are waiting (imports done)
    go.touch()
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0 and out.strip() == "notes: []", out + err
    assert not [p for p in store.rglob("*") if ".tmp-" in p.name]
    for i in range(rounds):
        assert checkpoint.load_stored(store, f"train_gan{i}", FP, SHAPES, iterations=10)[0] == 10
        assert RowCache(store, "context").get(i, src / "ckpt-000000010" / "state.npz", ["iteration", "fd"]) == \
            {"iteration": i, "fd": 1.5 + i}


def test_a_live_writers_temporary_folder_is_left_alone(tmp_path):
    """The other writer's temporary copy (its process runs) is not taken for a killed run's leftover."""
    store = tmp_path / "store"
    entry = checkpoint.store_entry(store, "train_gan", FP)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        busy = entry / f".ckpt-000000010.tmp-{other.pid}-abc"
        busy.mkdir(parents=True)
        dead = entry / ".ckpt-000000010.tmp-999999999-abc"
        dead.mkdir()
        published(store, tmp_path, "train_gan", 10)
        assert busy.is_dir() and not dead.exists()
    finally:
        other.kill()
        other.wait()
