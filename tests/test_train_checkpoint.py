"""Checkpoint files (no TensorFlow): atomic writes, fallback from a corrupt checkpoint, stale
fingerprints, torn writes; and the run fingerprint's sensitivity to data, params and code."""

import json
import shutil

import numpy as np
import pytest

from genlab.training import checkpoint

SHAPES = [(3, 4), (4,), ()]
FP = "a" * 64


def values(k):
    return [np.full(s, k, dtype=np.float32) for s in SHAPES]


def save(tmp, step, fp=FP, live=None):
    return checkpoint.save(tmp, step, fp, values(step), live_dir=live)


def test_newest_checkpoint_is_loaded_and_older_ones_pruned(tmp_path):
    for step in (100, 200, 300):
        save(tmp_path, step)
    assert [p.name for p in checkpoint.list_checkpoints(tmp_path)] == ["ckpt-000000300", "ckpt-000000200"]
    step, vals, path = checkpoint.load_latest(tmp_path, FP, SHAPES)
    assert step == 300 and path.name == "ckpt-000000300"
    for v, ref in zip(vals, values(300)):
        np.testing.assert_array_equal(v, ref)


@pytest.mark.parametrize("damage", ["truncate", "flip", "no_manifest", "bad_manifest"])
def test_corrupt_newest_falls_back_to_the_previous(tmp_path, damage):
    save(tmp_path, 100)
    newest = save(tmp_path, 200)
    state = newest / "state.npz"
    if damage == "truncate":
        state.write_bytes(state.read_bytes()[:50])
    elif damage == "flip":
        raw = bytearray(state.read_bytes())
        raw[len(raw) // 2] ^= 0xFF
        state.write_bytes(bytes(raw))
    elif damage == "no_manifest":
        (newest / "manifest.json").unlink()
    else:
        (newest / "manifest.json").write_text("{not json")
    messages = []
    step, vals, _ = checkpoint.load_latest(tmp_path, FP, SHAPES, log=messages.append)
    assert step == 100 and float(vals[2]) == 100.0
    assert len(messages) == 1 and messages[0].startswith("warning: checkpoint") and "corrupt" in messages[0]
    assert not newest.exists()


def test_all_corrupt_means_start_over(tmp_path):
    for step in (100, 200):
        (save(tmp_path, step) / "state.npz").write_bytes(b"garbage")
    messages = []
    assert checkpoint.load_latest(tmp_path, FP, SHAPES, log=messages.append) is None
    assert len(messages) == 2 and not checkpoint.list_checkpoints(tmp_path)


def test_other_fingerprint_or_shapes_are_not_resumed(tmp_path):
    save(tmp_path, 100)
    messages = []
    assert checkpoint.load_latest(tmp_path, "b" * 64, SHAPES, log=messages.append) is None
    assert messages == [f"note: ignoring checkpoints in {tmp_path} made with other params, data or code "
                        "(ckpt-000000100)"]   # where the run starts is the engine's one line
    assert not checkpoint.list_checkpoints(tmp_path)
    save(tmp_path, 100)
    messages = []
    assert checkpoint.load_latest(tmp_path, FP, [(3, 5), (4,), ()], log=messages.append) is None
    assert "do not match this model" in messages[0]


def test_a_torn_write_never_looks_like_a_checkpoint(tmp_path):
    save(tmp_path, 100)
    torn = tmp_path / ".ckpt-000000200.tmp-abc123"     # what a kill -9 during save leaves
    torn.mkdir()
    (torn / "state.npz").write_bytes(b"PK\x03\x04partial")
    step, _, _ = checkpoint.load_latest(tmp_path, FP, SHAPES)
    assert step == 100 and not torn.exists()


def test_live_folder_travels_with_the_checkpoint(tmp_path):
    live = tmp_path / "live"
    (live / "plots" / "metrics").mkdir(parents=True)
    (live / "plots" / "metrics" / "loss.tsv").write_text("step\tloss\n10\t1.5\n")
    path = save(tmp_path / "ckpt", 10, live=live)
    (live / "plots" / "metrics" / "loss.tsv").write_text("step\tloss\n10\t1.5\n20\t1.2\n")
    checkpoint.restore_live(path, live)
    assert (live / "plots" / "metrics" / "loss.tsv").read_text() == "step\tloss\n10\t1.5\n"
    assert json.loads((path / "manifest.json").read_text())["step"] == 10


def test_run_fingerprint_changes_with_data_params_and_settings(fmnist_small):
    from genlab.models import gan as gan_model
    from genlab.training import gan as gan_training
    from genlab.training.loop import TrainSettings, run_fingerprint
    x, y = fmnist_small["train"]
    meta = {"shape": [28, 28, 1], "range": [-1.0, 1.0], "n_classes": 10}
    settings = TrainSettings(iterations=10, batch_size=8, seed=0, log_every=5, ckpt_every=5)
    args = {"arch": "mlp", "lr": 2e-4}
    modules = [gan_model, gan_training]    # module objects: their source files are hashed

    def fp(x=x, args=args, settings=settings):
        return run_fingerprint("train_gan", args, settings, {"meta": meta, "train": (x, y)}, ["train"], modules)

    base = fp()
    assert fp() == base
    changed = x.copy()
    changed[0, 0, 0, 0] += 0.5                  # same meta, one pixel differs (e.g. another split seed)
    assert fp(x=changed) != base
    assert fp(args={"arch": "mlp", "lr": 1e-4}) != base
    assert fp(settings=TrainSettings(iterations=10, batch_size=8, seed=1, log_every=5, ckpt_every=5)) != base
    # the length is not part of it: a shorter run's checkpoints are states of a longer one
    assert fp(settings=TrainSettings(iterations=20, batch_size=8, seed=0, log_every=5, ckpt_every=5)) == base


def test_checkpoints_beyond_a_shorter_run_are_deleted(tmp_path):
    """A run of 150 iterations after one of 200: the 200 checkpoint would outlive the new run's own
    (retention keeps the highest steps), so it goes, with a note; 100 is a state of both runs."""
    save(tmp_path, 100)
    save(tmp_path, 200)
    messages = []
    step, _, _ = checkpoint.load_latest(tmp_path, FP, SHAPES, log=messages.append, iterations=150)
    assert step == 100
    assert messages == [f"note: ignoring checkpoints in {tmp_path} beyond this run's 150 iterations (ckpt-000000200)"]
    assert [p.name for p in checkpoint.list_checkpoints(tmp_path)] == ["ckpt-000000100"]
    messages = []
    assert checkpoint.load_latest(tmp_path, FP, SHAPES, log=messages.append, iterations=50) is None
    assert messages == [f"note: ignoring checkpoints in {tmp_path} beyond this run's 50 iterations (ckpt-000000100)"]


def test_a_changed_live_folder_makes_the_checkpoint_corrupt(tmp_path):
    live = tmp_path / "live"
    (live / "plots").mkdir(parents=True)
    (live / "plots" / "loss.tsv").write_text("step\tloss\n10\t1.5\n")
    save(tmp_path / "ckpt", 10, live=live)
    path = save(tmp_path / "ckpt", 20, live=live)
    (path / "live" / "plots" / "loss.tsv").write_text("step\tloss\n10\t9.5\n")
    messages = []
    step, _, _ = checkpoint.load_latest(tmp_path / "ckpt", FP, SHAPES, log=messages.append)
    assert step == 10 and "live/ does not match its recorded sha256" in messages[0]


def test_run_store_publish_and_load(tmp_path, monkeypatch):
    monkeypatch.setenv("GENLAB_RUN_STORE", "off")
    assert checkpoint.run_store() is None
    monkeypatch.setenv("GENLAB_RUN_STORE", str(tmp_path / "store"))
    store = checkpoint.run_store()
    assert store == tmp_path / "store"
    monkeypatch.setattr(checkpoint, "STATES_PER_RUN", 2)    # an entry keeps its highest steps
    for step in (100, 300, 200):
        checkpoint.publish(save(tmp_path / f"ws{step}", step), store, "train_gan", FP)
    entry = checkpoint.store_entry(store, "train_gan", FP)
    assert [p.name for p in checkpoint.list_checkpoints(entry)] == ["ckpt-000000300", "ckpt-000000200"]
    step, vals, path = checkpoint.load_stored(store, "train_gan", FP, SHAPES, iterations=250)
    assert step == 200 and float(vals[2]) == 200.0 and path.parent == entry
    assert checkpoint.load_stored(store, "train_gan", FP, SHAPES, iterations=150) is None
    assert checkpoint.load_stored(store, "train_vae", FP, SHAPES, iterations=1000) is None
    # another run's checkpoint under this run's name: never used, deleted with a note
    other = save(tmp_path / "other", 250, fp="b" * 64)
    shutil.copytree(other, entry / other.name)
    messages = []
    step, _, _ = checkpoint.load_stored(store, "train_gan", FP, SHAPES, iterations=260, log=messages.append)
    assert step == 200 and "is unusable (it was made by another run); deleted it" in messages[0]
    assert not (entry / other.name).exists()
