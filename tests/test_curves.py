"""Quality curves (issue 15): the training stages keep snapshots of the sampling network, evaluate
scores each against the validation side, and the report says whether quality was still improving."""

import dataclasses
import json
import os
import shutil

import numpy as np
import pytest

from conftest import Lines
from genlab.errors import GenlabError
from genlab.evaluation.curves import COLUMNS, score_snapshots, to_tsv
from genlab.evaluation.score_cache import RowCache, curve_context
from genlab.models.store import list_snapshots, load_weights
from genlab.outputs.report import read_curve, trend
from genlab.params import Cas, Evaluate, Gan, Vae
from genlab.training.gan import train_gan
from genlab.training.loop import TrainSettings
from genlab.training.vae import train_vae

pytestmark = pytest.mark.slow   # every test trains and scores snapshots

GAN = Gan.of(arch="dcgan", conditional=True, latent_dim=32, hidden=32, filters=16, lr=1e-3, beta_1=0.5, beta_2=0.999,
             d_lr=0.0, loss="hinge", ema=0.9)
VAE = Vae.of(arch="conv", variant="vae", latent_dim=8, beta=1.0, hidden=64, filters=8, lr=2e-3, prior="normal",
             prior_components=10, temperature=1.0)
SCORE = Evaluate(kid_subset_size=100, kid_subsets=5, pr_k=3, coverage_min_share=0.1, two_sample_l2=1e-3,
                 two_sample_max_iter=200, pixel_detector_epochs=5, seed=0)
# (5 epochs: 2 were 8 Adam steps on these 500 images, too few for the detector to learn anything of the first,
# grey snapshot: it scored 0.5, the value of a detector that cannot tell, where 5 epochs score 0.998)


def meta(n_train, n_val=0):
    return {"dataset": "fashion_mnist", "shape": [28, 28, 1], "range": [-1.0, 1.0], "n_classes": 10,
            "counts": {"train": n_train, "val": n_val}}


@pytest.fixture(scope="module")
def evaluator(small_evaluator):
    return small_evaluator


@pytest.fixture(scope="module")
def gan_run(fmnist_small, tmp_path_factory, monkeypatch_module):
    tmp = tmp_path_factory.mktemp("gan")
    x, y = fmnist_small["train"]
    settings = TrainSettings(iterations=330, batch_size=64, seed=0, log_every=50, ckpt_every=100, snapshot_every=100)
    model = train_gan({"meta": meta(len(x)), "train": (x, y)}, tmp / "model", tmp / "ckpt", tmp / "live",
                      settings=settings, out=Lines(), gan=GAN)
    return tmp, model


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    mp.setenv("GENLAB_RUN_STORE", "off")
    yield mp
    mp.undo()


def test_snapshots_on_the_schedule_and_at_the_end(gan_run):
    tmp, model = gan_run
    snaps = list_snapshots(tmp / "live" / "snapshots")
    assert [it for it, _ in snaps] == [100, 200, 300, 330]
    # the last one is the sampled (averaged, gan.ema) generator the model was saved with
    for w, v in zip(load_weights(snaps[-1][1]), model.generator.variables):
        np.testing.assert_array_equal(w, v.numpy())
    # the one at 300 is on the schedule, so it is in the final checkpoint's live/ copy (extension keeps it)
    ckpt_live = sorted((tmp / "ckpt").glob("ckpt-*"))[-1] / "live" / "snapshots"
    assert [it for it, _ in list_snapshots(ckpt_live)] == [100, 200, 300]


def test_curve_falls_as_the_gan_learns(gan_run, evaluator, fmnist_small):
    tmp, model = gan_run
    x_val = fmnist_small["test"][0]   # stands in for the validation split here
    before = [v.numpy() for v in model.generator.variables]
    rows = score_snapshots(model, tmp / "live" / "snapshots", evaluator, x_val, n=500, settings=SCORE, seed=0)
    assert [r["iteration"] for r in rows] == [100, 200, 300, 330]
    assert set(rows[0]) == set(COLUMNS) - {"cas"}      # no labels given: no classification accuracy score
    assert rows[-1]["fd"] < 0.7 * rows[0]["fd"], [r["fd"] for r in rows]
    assert rows[-1]["pixel_detector_accuracy"] <= rows[0]["pixel_detector_accuracy"], [
        (r["fd"], r["pixel_detector_accuracy"]) for r in rows]
    for a, b in zip(before, model.generator.variables):   # the model is left as it was
        np.testing.assert_array_equal(a, b.numpy())
    again = score_snapshots(model, tmp / "live" / "snapshots", evaluator, x_val, n=500, settings=SCORE, seed=0)
    assert again == rows
    text = to_tsv(rows)
    path = tmp / "gan.tsv"
    path.write_text(text)
    back = read_curve(path)
    assert [r["iteration"] for r in back] == [100, 200, 300, 330]
    assert back[-1]["fd"] == pytest.approx(rows[-1]["fd"], rel=1e-5)


def test_curve_has_the_conditional_gans_classification_accuracy_score(gan_run, evaluator, fmnist_small):
    tmp, model = gan_run
    x_val, y_val = fmnist_small["test"]
    cas = Cas(n=500, epochs=3, batch_size=64, lr=0.002, seed=0)
    rows = score_snapshots(model, tmp / "live" / "snapshots", evaluator, x_val, n=500, settings=SCORE, seed=0,
                           y_val=y_val, cas=cas)
    assert set(rows[-1]) == set(COLUMNS)
    assert rows[-1]["cas"] > 0.3, [r["cas"] for r in rows]     # chance is 0.1
    assert "cas" in to_tsv(rows).splitlines()[0].split("\t")


def test_vae_snapshots_are_the_decoder(fmnist_small, tmp_path, monkeypatch, evaluator):
    monkeypatch.setenv("GENLAB_RUN_STORE", "off")
    x, y = fmnist_small["train"]
    xv, yv = fmnist_small["test"][0][:500], fmnist_small["test"][1][:500]
    settings = TrainSettings(iterations=60, batch_size=64, seed=0, log_every=20, ckpt_every=20, snapshot_every=30)
    model = train_vae({"meta": meta(len(x), len(xv)), "train": (x, y), "val": (xv, yv)}, tmp_path / "model",
                      tmp_path / "ckpt", tmp_path / "live", settings=settings, out=Lines(), vae=VAE)
    snaps = list_snapshots(tmp_path / "live" / "snapshots")
    assert [it for it, _ in snaps] == [30, 60]
    for w, v in zip(load_weights(snaps[-1][1]), model.decoder.variables):
        np.testing.assert_array_equal(w, v.numpy())
    rows = score_snapshots(model, tmp_path / "live" / "snapshots", evaluator, xv, n=200, settings=SCORE, seed=0)
    assert [r["iteration"] for r in rows] == [30, 60]
    # a mixture fitted to the final codes (vae.prior gmm) is not what earlier decoders are sampled from:
    # every snapshot is sampled from the prior N(0, I), and the model keeps its mixture
    model.fit_code_gmm(model.encode((x[:500] + 1.0) / 2.0)[0], components=2, seed=0)
    gmm = model.config["code_gmm"]
    assert score_snapshots(model, tmp_path / "live" / "snapshots", evaluator, xv, n=200, settings=SCORE,
                           seed=0) == rows
    assert model.config["code_gmm"] is gmm


def cache_of(store, model, evaluator, x_val, y_val, settings=SCORE, cas=None, notes=None):
    context = curve_context(model.config, evaluator, x_val, y_val, settings, cas)
    return RowCache(store, context, log=(notes.append if notes is not None else None))


def test_score_cache_rows_are_the_rows_a_fresh_evaluate_scores(gan_run, evaluator, fmnist_small, tmp_path,
                                                               monkeypatch):
    """Rows reused from the cache, and rows scored after skipping cached ones, equal a full uncached
    pass byte for byte (TSV); a damaged or foreign entry is deleted with a note and scored again; other
    settings miss."""
    tmp, model = gan_run
    x_val, y_val = fmnist_small["test"]
    cas = Cas(n=200, epochs=1, batch_size=64, lr=0.002, seed=0)
    snaps = tmp / "live" / "snapshots"
    kw = dict(n=200, settings=SCORE, seed=0, y_val=y_val, cas=cas)
    plain = score_snapshots(model, snaps, evaluator, x_val, **kw)

    # an earlier, shorter run kept the rows of its snapshots 100 and 200
    early = tmp_path / "early"
    early.mkdir()
    for it, path in list_snapshots(snaps)[:2]:
        shutil.copy(path, early / path.name)
    store = tmp_path / "store"
    first = cache_of(store, model, evaluator, x_val, y_val, cas=cas)
    score_snapshots(model, early, evaluator, x_val, cache=first, **kw)
    assert first.hits == 0 and len(list((store / "scores").glob("*.json"))) == 2

    longer = cache_of(store, model, evaluator, x_val, y_val, cas=cas)
    rows = score_snapshots(model, snaps, evaluator, x_val, cache=longer, **kw)
    assert longer.hits == 2
    assert to_tsv(rows) == to_tsv(plain)
    entries = sorted((store / "scores").glob("*.json"))
    assert len(entries) == 4

    again = cache_of(store, model, evaluator, x_val, y_val, cas=cas)
    assert to_tsv(score_snapshots(model, snaps, evaluator, x_val, cache=again, **kw)) == to_tsv(plain)
    assert again.hits == 4

    entries[0].write_text("{not json")                    # a damaged entry
    entries[1].write_text(entries[2].read_text())         # a foreign one: another snapshot's row
    notes = []
    damaged = cache_of(store, model, evaluator, x_val, y_val, cas=cas, notes=notes)
    assert to_tsv(score_snapshots(model, snaps, evaluator, x_val, cache=damaged, **kw)) == to_tsv(plain)
    assert damaged.hits == 2 and len(notes) == 2
    assert all("is unusable" in n and "scoring the snapshot again" in n for n in notes)
    healed = cache_of(store, model, evaluator, x_val, y_val, cas=cas)
    score_snapshots(model, snaps, evaluator, x_val, cache=healed, **kw)
    assert healed.hits == 4

    other = [cache_of(store, model, evaluator, x_val, y_val, settings=dataclasses.replace(SCORE, pr_k=4),
                      cas=cas),
             cache_of(store, model, evaluator, x_val[::-1], y_val[::-1], cas=cas)]
    threads = os.environ.get("GENLAB_THREADS", "")
    monkeypatch.setenv("GENLAB_THREADS", str(int(threads or 0) + 1))   # another thread count: other last bits
    other.append(cache_of(store, model, evaluator, x_val, y_val, cas=cas))
    monkeypatch.setenv("GENLAB_THREADS", threads)
    weight = evaluator.weights[0]
    saved = weight.numpy()
    weight.assign(saved + 1e-3)                   # another evaluator
    try:
        other.append(cache_of(store, model, evaluator, x_val, y_val, cas=cas))
    finally:
        weight.assign(saved)
    for cache in other:
        assert all(cache.get(it, path, [*rows[0]]) is None for it, path in list_snapshots(snaps))


def test_an_edited_score_cache_entry_is_dropped_with_a_note_and_scored_again(gan_run, evaluator, fmnist_small,
                                                                             tmp_path, capsys):
    """Issue 26 item 2: one number of a kept row changed (the entry still valid JSON, its key right) is
    caught by the entry's check: one note on stderr, the entry deleted, the row scored again, and the
    curve is a fresh evaluate's; the rewritten entry is then used again."""
    from conftest import own_lines
    tmp, model = gan_run
    x_val = fmnist_small["test"][0]
    snaps = tmp / "live" / "snapshots"
    kw = dict(n=200, settings=SCORE, seed=0)
    plain = score_snapshots(model, snaps, evaluator, x_val, **kw)
    store = tmp_path / "store"
    score_snapshots(model, snaps, evaluator, x_val, cache=cache_of(store, model, evaluator, x_val, None), **kw)
    entries = sorted((store / "scores").glob("*.json"))
    assert len(entries) == len(plain)
    edited = entries[1]
    saved = json.loads(edited.read_text())
    saved["row"]["fd"] = round(saved["row"]["fd"] * 0.5, 3)              # a better-looking number
    edited.write_text(json.dumps(saved, indent=2))
    capsys.readouterr()
    cache = RowCache(store, curve_context(model.config, evaluator, x_val, None, SCORE, None))   # notes on stderr
    rows = score_snapshots(model, snaps, evaluator, x_val, cache=cache, **kw)
    assert to_tsv(rows) == to_tsv(plain) and cache.hits == len(plain) - 1
    assert own_lines(capsys.readouterr().err) == [
        f"note: score cache entry {edited} is unusable (its contents do not match their check: edited or damaged); "
        "deleted it, scoring the snapshot again"]
    fresh = json.loads(edited.read_text())["row"]                        # written again, with the scored numbers
    assert [fresh] == [r for r in rows if r["iteration"] == fresh["iteration"]] and fresh["fd"] != saved["row"]["fd"]
    again = cache_of(store, model, evaluator, x_val, None)
    assert to_tsv(score_snapshots(model, snaps, evaluator, x_val, cache=again, **kw)) == to_tsv(plain)
    assert again.hits == len(plain)


def test_refusals(gan_run, evaluator, fmnist_small, tmp_path):
    _, model = gan_run
    x_val = fmnist_small["test"][0]
    with pytest.raises(GenlabError, match="holds no snapshots: set train.snapshot_every > 0"):
        score_snapshots(model, tmp_path / "none", evaluator, x_val, n=100, settings=SCORE, seed=0)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "000000100.npz").write_bytes(b"not a zip")
    with pytest.raises(GenlabError, match="cannot be read .* re-run the training stage"):
        score_snapshots(model, tmp_path / "bad", evaluator, x_val, n=100, settings=SCORE, seed=0)
    with pytest.raises(GenlabError, match="evaluate.curve_n is 5000 but the validation split has 1000"):
        score_snapshots(model, gan_run[0] / "live" / "snapshots", evaluator, x_val, n=5000, settings=SCORE, seed=0)


def rows_of(fds, step=100):
    return [{"iteration": step * (i + 1), "fd": fd} for i, fd in enumerate(fds)]


def test_trend_known_answers():
    assert trend(rows_of([100, 60, 40, 30, 20, 15, 12, 10])).startswith("still improving: FD 15 ")
    assert trend(rows_of([100, 60, 40, 30, 20, 20.5, 20.2, 20.1])).startswith("levelled off: FD 20 ")
    assert trend(rows_of([100, 50])) == "too few snapshots to tell whether quality was still improving"


def test_snapshots_off_leave_an_empty_folder_and_no_curve(gan_run, evaluator, fmnist_small, tmp_path, monkeypatch):
    """train.snapshot_every 0 ("off"): the snapshot folder, a DVC output, is there and empty after a fresh
    run and after a resumed one; evaluate leaves that model's curve out with one line and scores the
    others (issue 26, item 4)."""
    from genlab.evaluation.curves import model_curves
    monkeypatch.setenv("GENLAB_RUN_STORE", "off")
    x, y = fmnist_small["train"]
    data, live = {"meta": meta(len(x)), "train": (x, y)}, tmp_path / "live"
    for iterations in (20, 30):     # a fresh run, then one continuing it from its checkpoint
        settings = TrainSettings(iterations=iterations, batch_size=64, seed=0, log_every=10, ckpt_every=10)
        train_gan(data, tmp_path / "model", tmp_path / "ckpt", live, settings=settings, out=Lines(),
                  gan=GAN)
        assert (live / "snapshots").is_dir() and not any((live / "snapshots").iterdir())
    tmp, _ = gan_run
    lines = []
    curves = model_curves({"off": (tmp_path / "model", live / "snapshots"),
                           "gan": (tmp / "model", tmp / "live" / "snapshots")}, evaluator, *fmnist_small["test"],
                          settings=dataclasses.replace(SCORE, curve_n=100), cas=None, say=lines.append)
    assert lines[0] == (f"evaluate: no quality curve for off: its training kept no snapshots in {live / 'snapshots'} "
                        "(train.snapshot_every: 0)")
    assert list(curves) == ["gan"] and [r["iteration"] for r in curves["gan"]] == [100, 200, 300, 330]


def test_the_advice_to_turn_snapshots_off_names_allowed_values():
    """check_data's advice for a small validation split names values the params allow (issue 26, item 4)."""
    from genlab.limits import curve_n_fits
    from genlab.params import Train
    low = Evaluate.bounds("curve_n")[0]
    assert Train.bounds("snapshot_every")[0] == 0
    assert curve_n_fits(1000, 2, 20, low) == (
        f"evaluate.curve_n (1000) is larger than the validation split (2 images) the quality curves are scored "
        f"against, which is below the smallest curve ({low}): raise normalize.val_fraction (or set "
        "train.snapshot_every: 0)")
    assert curve_n_fits(1000, low, 20, low).endswith(f"lower evaluate.curve_n to at most {low} (or set "
                                                     "train.snapshot_every: 0)")
    assert curve_n_fits(1000, 2, 0, low) is None and curve_n_fits(low, low, 20, low) is None


def test_snapshots_off_through_dvc(tmp_path, shared_data):
    """`-S train.snapshot_every=0`: DVC records the training with its (empty) snapshot folder instead of
    failing on a missing output after the whole training."""
    import yaml

    from conftest import copy_project, dvc, smoke_params, tool_env
    proj = copy_project(tmp_path / "proj")
    smoke_params(proj)
    params = yaml.safe_load((proj / "params.yaml").read_text())
    params["train"]["snapshot_every"] = 0
    (proj / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = tool_env(GENLAB_MIRROR=str(shared_data), GENLAB_RUN_STORE="off")
    dvc(proj, "repro", "train_gan", env=env, check=True)
    assert (proj / "dvclive" / "train_gan" / "snapshots").is_dir()
    assert not any((proj / "dvclive" / "train_gan" / "snapshots").iterdir())
    assert "snapshots" in (proj / "dvc.lock").read_text()
    status = dvc(proj, "status", "train_gan", env=env, check=True)
    assert "up to date" in status.stdout, status.stdout
