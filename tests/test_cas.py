"""Classification accuracy score (genlab.evaluation.cas) and the augmentation study
(genlab.evaluation.augmentation, studies/augmentation.py), on the real Fashion-MNIST slice:
a "model" whose images show another class than their label scores near chance, real images score
near the floor, the score is a function of the seed, bad params are refused in one line, and the
study runs end to end at smoke size, writing its table and plot data."""

import csv
import json
import subprocess
import sys

import numpy as np
import pytest
import yaml

from conftest import ROOT, own_lines, published, tool_env
from genlab.errors import GenlabError
from genlab.evaluation import cas
from genlab.evaluation.augmentation import balanced_subset, summarize
from genlab.params import Cas, read
from stages import check_params

PARAMS = yaml.safe_load(published("params.yaml"))
SMALL = Cas(n=2000, epochs=3, batch_size=64, lr=0.002, seed=0)   # fits the 4,000-image slice


def score(x, y, test, settings=SMALL):
    return cas.score(x, y, *test, n_classes=10, steps=settings.steps(), batch_size=settings.batch_size,
                     lr=settings.lr, seed=settings.seed)


@pytest.fixture(scope="module")
def real(fmnist_small):
    """(generated stand-in: training images 2000..3999 with their labels), test split, floor result."""
    (x, y), test = fmnist_small["train"], fmnist_small["test"]
    result = cas.cas_scores({"real": (x[2000:], y[2000:])}, x[:2000], y[:2000], *test, n_classes=10, settings=SMALL)
    return (x[2000:], y[2000:]), test, result


@pytest.mark.slow   # a classifier training
def test_real_images_score_near_the_floor(real):
    _, _, result = real
    assert set(result) == {"n", "real", "floor"} and result["n"] == SMALL.n
    assert result["floor"] > 0.7                              # the small CNN learns the slice
    assert abs(result["real"] - result["floor"]) < 0.05       # other real images: as useful as real ones


@pytest.mark.slow   # a classifier training
def test_images_of_the_wrong_class_score_near_chance(real):
    (x, y), test, result = real
    shuffled = np.random.default_rng(0).permutation(y)     # labels unrelated to the images
    assert abs(score(x, shuffled, test) - 0.1) < 0.08
    rotated = (y + 1) % 10                                 # always the next class: systematically wrong
    assert score(x, rotated, test) < 0.1 < result["floor"] - 0.5


@pytest.mark.slow   # classifier trainings
def test_the_floor_on_its_own_is_the_floor_of_the_scores(real, fmnist_small):
    (x, y), test, result = real
    x_train, y_train = fmnist_small["train"][0][:2000], fmnist_small["train"][1][:2000]
    floor = cas.cas_floor(x_train, y_train, *test, n_classes=10, settings=SMALL)
    assert floor == result["floor"]     # the floor stage's, bit for bit
    given = cas.cas_scores({"real": (x, y)}, x_train, y_train, *test, n_classes=10, settings=SMALL, floor=floor)
    assert given == result


@pytest.mark.slow   # three classifier trainings
def test_same_seed_same_score_other_seed_other_classifier(real):
    (x, y), test, result = real
    assert score(x[:SMALL.n], y[:SMALL.n], test) == result["real"]      # bit for bit, a second process-local run
    other = score(x[:SMALL.n], y[:SMALL.n], test, Cas(**{**SMALL.asdict(), "seed": 1}))
    assert other != result["real"] and abs(other - result["real"]) < 0.05


@pytest.mark.slow   # many classifier trainings
def test_many_trainings_in_one_process_never_warn_of_retracing(fmnist_small):
    """evaluate trains several classifiers and pixel detectors in one process (two per curve snapshot):
    each is traced once, and TensorFlow's retracing warning, which would reach a stage's stderr, never
    comes (it counted every CompiledSteps as one function while tf.function wrapped the bound method)."""
    import logging

    from genlab.evaluation.detect import pixel_two_sample_accuracy
    from genlab.training.loop import TrainSettings, reused_task, run_steps
    x, y = fmnist_small["train"][0][:256], fmnist_small["train"][1][:256]
    records, logger = [], logging.getLogger("tensorflow")
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append
    logger.addHandler(handler)
    try:
        for seed in range(6):
            task = reused_task(cas.ClassifierTask, x.shape[1:], len(x), 10, 3, 64, 0.002).start(x, y, seed)
            state = run_steps(task, TrainSettings(iterations=3, batch_size=64, seed=seed, log_every=1, ckpt_every=3))
            assert state._compiled.experimental_get_tracing_count() == 1    # three calls, one trace
        for seed in range(6):
            pixel_two_sample_accuracy(x[:32], x[32:64], epochs=1, seed=seed, batch_size=8)
    finally:
        logger.removeHandler(handler)
    assert logger.getEffectiveLevel() <= logging.WARNING        # nothing hides TensorFlow's warnings
    assert [r.getMessage() for r in records if "retracing" in r.getMessage()] == []


@pytest.mark.slow   # six classifier and six detector trainings
def test_a_reused_training_computes_what_a_newly_built_one_does(fmnist_small):
    """The metrics' short trainings keep one task per sizes in a process (genlab.training.loop.reused_task)
    and reload it for each training: a CAS classifier and a pixel detector trained again after others of the
    same sizes on other data give, bit for bit, what newly built ones give, through one traced function."""
    from genlab.evaluation.detect import PixelDetectorTask, pixel_two_sample_accuracy
    from genlab.training import loop
    (x, y), test = fmnist_small["train"], fmnist_small["test"]
    settings = Cas(n=512, epochs=2, batch_size=64, lr=0.002, seed=0)

    def both(a, b):
        return (score(x[a:a + 512], y[a:a + 512], test, settings),
                pixel_two_sample_accuracy(x[a:a + 64], x[b:b + 64], epochs=2, seed=0, batch_size=16))
    loop._REUSED.clear()
    fresh = both(0, 64)                     # newly built tasks, as every training had before they were kept
    other = both(1000, 2000)                # the same sizes, other images: the same two tasks
    again = both(0, 64)
    assert again == fresh != other
    tasks = {type(t): t for t in loop._REUSED.values()}
    assert set(tasks) == {cas.ClassifierTask, PixelDetectorTask}
    for task in tasks.values():
        [state] = task.compiled_steps.values()
        assert state._compiled.experimental_get_tracing_count() == 1    # three trainings, one trace


def test_too_few_images_and_bad_labels_are_refused(fmnist_small):
    (x, y), test = fmnist_small["train"], fmnist_small["test"]
    with pytest.raises(GenlabError, match="set sample.n >= cas.n"):
        cas.cas_scores({"gan": (x[:100], y[:100])}, x, y, *test, n_classes=10, settings=SMALL)
    with pytest.raises(GenlabError, match=r"labels must be class ids in 0\.\.9"):
        score(x[:200], y[:200] + 10, test)
    with pytest.raises(GenlabError, match="NaN or Inf"):
        score(np.full_like(x[:200], np.nan), y[:200], test)


def params(**changes):
    p = json.loads(json.dumps(PARAMS))
    for key, value in changes.items():
        section, name = key.split(".")
        p[section][name] = value
    return p


@pytest.mark.parametrize("changes,line", [
    ({"cas.lr": 0}, "cas.lr must be a number > 0, got 0.0"),
    ({"cas.n": 0}, "cas.n must be a positive integer, got 0"),
    ({"cas.epochs": 1.5}, "cas.epochs must be a positive integer, got 1.5"),
    ({"cas.n": 100, "cas.batch_size": 128},
     "cas.batch_size 128 exceeds cas.n 100 (the classifier's training images): lower cas.batch_size or raise cas.n"),
])
def test_bad_cas_params_are_refused_in_one_line(changes, line):
    with pytest.raises(GenlabError) as e:
        read(params(**changes), "cas")
    assert str(e.value) == line
    # and before any stage runs
    with pytest.raises(GenlabError) as e:
        check_params.check(params(**changes), dvc_yaml=str(ROOT / "dvc.yaml"))
    assert str(e.value) == line


def test_cas_params_are_read_by_evaluate_and_listed_in_dvc_yaml():
    from stages import evaluate
    assert evaluate.read_settings(PARAMS)[1] == read(PARAMS, "cas")
    listed = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["evaluate"]["params"]
    assert {f"cas.{k}" for k in PARAMS["cas"]} <= set(listed)


def test_balanced_subset_and_the_verdict_rule(fmnist_small):
    y = fmnist_small["train"][1]
    idx = balanced_subset(y, 0.05, 10, seed=0)
    assert len(idx) == 200 and np.all(np.bincount(y[idx], minlength=10) == 20)
    np.testing.assert_array_equal(idx, balanced_subset(y, 0.05, 10, seed=0))
    assert not np.array_equal(idx, balanced_subset(y, 0.05, 10, seed=1))
    with pytest.raises(GenlabError, match="less than one image per class"):
        balanced_subset(y, 0.001, 10, seed=0)
    assert summarize(0.01, 100, 50, [0.60, 0.61, 0.62], [0.70, 0.71, 0.72])["verdict"] == "yes"
    assert summarize(0.01, 100, 50, [0.60, 0.70, 0.50], [0.62, 0.72, 0.52])["verdict"] == "no (within the noise)"
    assert summarize(0.01, 100, 50, [0.70, 0.71, 0.72], [0.60, 0.61, 0.62])["verdict"] == "no, it hurt"


def study_project(tmp_path, processed, **changes):
    """A folder with params.yaml (the GAN small) and a smoke-size study file."""
    p = params(**{"gan.filters": 8, "gan.latent_dim": 16, "train.batch_size": 32, "train.log_every": 10,
                  "train.ckpt_every": 10, "cas.batch_size": 32})
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(p))
    study = {"fractions": [0.02, 0.05], "seeds": [0, 1], "gan_iterations": 20, "n_generated": 100,
             "classifier_steps": 20, **changes}
    (tmp_path / "study.yaml").write_text(yaml.safe_dump({"augmentation": study}))
    return tmp_path


def run_study(proj, processed):
    return subprocess.run([sys.executable, "-m", "studies.augmentation", "--data", str(processed), "--params",
                           "params.yaml", "--study", "study.yaml", "--out", "out"], cwd=proj, capture_output=True,
                          text=True, env=tool_env(PYTHONPATH=str(ROOT), GENLAB_RUN_STORE="off"))


@pytest.fixture(scope="module")
def processed(processed_slice):
    return processed_slice


@pytest.mark.parametrize("changes,line", [
    ({"seeds": [0]}, "error: augmentation.seeds must be at least two different integers >= 0 (the spread needs "
                     "repetitions), got [0]"),
    ({"fractions": [0.5, 2]}, "error: augmentation.fractions must be a list of shares in (0, 1], got [0.5, 2]"),
    ({"gan_iterations": 0}, "error: augmentation.gan_iterations must be a positive integer, got 0"),
])
def test_bad_study_params_are_refused_in_one_line(tmp_path, processed, changes, line):
    proj = study_project(tmp_path, processed, **changes)
    r = run_study(proj, processed)
    assert r.returncode == 1 and own_lines(r.stderr) == [line]
    assert not (proj / "out").exists()


def test_a_misspelled_study_key_names_the_study_file_and_its_doc(tmp_path, processed):
    """Issue 26 item 9: a typo in studies/augmentation.yaml names that file, the typo and docs/augmentation.md
    (not params.yaml and docs/experiments.md), with the params.yaml problems in the same line."""
    proj = study_project(tmp_path, processed)
    study = yaml.safe_load((proj / "study.yaml").read_text())
    study["augmentation"]["n_generatd"] = study["augmentation"].pop("n_generated")
    (proj / "study.yaml").write_text(yaml.safe_dump(study))
    r = run_study(proj, processed)
    assert r.returncode == 1 and own_lines(r.stderr) == [
        "error: augmentation.n_generatd is not a key of study.yaml: did you mean augmentation.n_generated? "
        "(the study's keys: docs/augmentation.md)"]
    assert not (proj / "out").exists()


@pytest.mark.slow   # four tiny GAN trainings and eight classifiers
def test_study_runs_end_to_end_at_smoke_size(tmp_path, processed):
    proj = study_project(tmp_path, processed)
    r = run_study(proj, processed)
    assert r.returncode == 0, r.stderr[-3000:]
    results = json.loads((proj / "out" / "results.json").read_text())
    rows = results["rows"]
    assert [row["fraction"] for row in rows] == [0.02, 0.05] and [row["n_real"] for row in rows] == [80, 200]
    for row in rows:
        assert len(row["real_only"]) == len(row["augmented"]) == 2
        assert all(0.0 <= a <= 1.0 for a in row["real_only"] + row["augmented"])
        assert row["verdict"] in ("yes", "no (within the noise)", "no, it hurt") and row["answer"]
    with open(proj / "out" / "accuracy.csv") as f:
        table = list(csv.DictReader(f))
    assert [t["percent"] for t in table] == ["2", "5"]
    plots = yaml.safe_load((ROOT / "dvc.yaml").read_text())["plots"]
    study_plot = [p for p in plots if "studies/augmentation/accuracy.csv" in str(p)]
    assert study_plot, "dvc.yaml declares no plot of the study"
    (spec,) = study_plot[0].values()
    assert spec["x"] in table[0] and set(spec["y"]["studies/augmentation/accuracy.csv"]) <= set(table[0])
    md = (proj / "out" / "table.md").read_text()
    assert "| 2 % | 80 |" in md and results["rule"] in md
