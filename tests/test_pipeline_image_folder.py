"""Image-folder datasets through the whole pipeline, then shared through a DVC remote.

In a temporary clone: real Fashion-MNIST images are written as a folder of class subfolders
(PNG and JPEG, grey and tinted RGB, mixed sizes), tracked with `dvc add`, and the smoke-size
pipeline runs on it at 32x32x3 (`data.name: image_folder`). Then its outputs and the run-cache are
pushed to a local-directory remote, and a second clone of that git repository pulls them: it is
up to date without training anything, and the run-cache restores stages without running them.
A second, shorter run uses a grey (channels 1) folder outside the project.
"""

import json
import re
import shutil
import subprocess

import numpy as np
import pytest
import yaml
from PIL import Image

from conftest import copy_project, tool_env

pytestmark = pytest.mark.slow   # every test runs the pipeline (`dvc repro`) on an image folder

LABELS = {"bag": 8, "sneaker": 7, "trouser": 1, "tshirt": 0}   # class folder -> Fashion-MNIST label
PER_CLASS = 160
SIZE, CHANNELS = 32, 3
SMOKE = {
    "data": {"name": "image_folder", "path": "images", "image_size": SIZE, "channels": CHANNELS,
             "test_fraction": 0.25, "seed": 0},
    "train": {"epochs": 40, "log_every": 20, "ckpt_every": 20, "batch_size": 32, "snapshot_every": 20},
    "vae": {"prior_components": 3},
    "evaluator": {"epochs": 2, "warmup_epochs": 1, "filters": [8, 16], "feature_dim": 32, "batch_size": 64},
    "sample": {"n": 120, "grid": 4, "steps": 5, "rows": 2, "attribute": [1, 3]},
    "evaluate": {"n_samples": 120, "iw_k": 4, "kid_subset_size": 60, "kid_subsets": 5, "two_sample_max_iter": 50,
                 "curve_n": 16, "pixel_detector_epochs": 1,
                 "min_evaluator_accuracy": {"image_folder": 0.0}},
    "cas": {"n": 120, "epochs": 2, "batch_size": 32},
}
GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]


def write_images(root, raw):
    """PER_CLASS real training images per class: every 3rd tinted RGB, every 4th JPEG, every 5th 40x36."""
    tint = np.array([1.0, 0.75, 0.45], np.float32)
    for name, label in LABELS.items():
        (root / name).mkdir(parents=True)
        for i, x in enumerate(raw["x_train"][raw["y_train"] == label][:PER_CLASS]):
            img = (Image.fromarray((x[..., None] * tint).astype(np.uint8), "RGB") if i % 3 == 0
                   else Image.fromarray(x, "L"))
            if i % 5 == 0:
                img = img.resize((40, 36))
            img.save(root / name / (f"{i:03d}.jpg" if i % 4 == 0 else f"{i:03d}.png"))


def run(args, cwd, env, ok=True):
    r = subprocess.run(args, cwd=cwd, capture_output=True, text=True, env=env)
    if ok:
        assert r.returncode == 0, f"{args}: " + r.stdout[-3000:] + r.stderr[-3000:]
    return r


def ran_stages(stdout):
    return {line.split("'")[1] for line in stdout.splitlines() if line.startswith("Running stage")}


def set_params(proj, overrides):
    params = yaml.safe_load((proj / "params.yaml").read_text())
    for section, values in overrides.items():
        params[section].update(values)
    (proj / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory, fmnist_raw):
    proj = copy_project(tmp_path_factory.mktemp("imgfolder"))
    env = tool_env()
    write_images(proj / "images", fmnist_raw)
    set_params(proj, SMOKE)
    run(["dvc", "add", "images"], proj, env)
    run(GIT + ["add", "-A"], proj, env)
    run(GIT + ["commit", "-qm", "image folder, smoke params"], proj, env)
    repro = run(["dvc", "repro"], proj, env)
    return proj, env, repro


def test_image_folder_runs_through_the_whole_pipeline(pipeline):
    proj, _, repro = pipeline
    assert {"fetch", "validate", "normalize", "train_gan", "train_vae", "train_evaluator",
            "sample@gan", "sample@vae", "evaluate", "report"} <= ran_stages(repro.stdout)
    info = json.loads((proj / "data" / "raw" / "dataset.json").read_text())
    assert info["class_names"] == sorted(LABELS) and info["image_shape"] == [SIZE, SIZE, CHANNELS]
    meta = json.loads((proj / "data" / "processed" / "meta.json").read_text())
    assert meta["shape"] == [SIZE, SIZE, CHANNELS] and meta["n_classes"] == 4
    assert meta["counts"]["test"] == 4 * PER_CLASS // 4
    assert json.loads((proj / "reports" / "validation.json").read_text())["success"]
    x_test = np.load(proj / "data" / "processed" / "test_x.npy")
    assert np.abs(x_test[..., 0] - x_test[..., 2]).max() > 0.5           # the tinted images stay RGB
    for model in ("gan", "vae"):
        with np.load(proj / "samples" / f"{model}.npz") as z:
            x = z["x"]
        # not blank, not one image repeated (40 iterations: the GAN's samples are still faint, std ~0.05)
        assert x.shape == (120, SIZE, SIZE, CHANNELS) and np.isfinite(x).all() and x.std() > 0.02, model
        assert np.abs(x[1:] - x[:1]).max(axis=(1, 2, 3)).min() > 0.02, model
    with np.load(proj / "samples" / "gan.npz") as z:
        assert set(np.unique(z["labels"])) == {0, 1, 2, 3}                # conditional GAN, 4 classes
    metrics = json.loads((proj / "metrics" / "evaluate.json").read_text())
    assert metrics["n"] == 120
    values = [v for part in ("gan", "vae", "floor") for v in metrics[part].values()]
    assert values and np.isfinite(values).all()
    assert metrics["floor"]["fd"] < min(metrics["gan"]["fd"], metrics["vae"]["fd"])
    stats = json.loads((proj / "reports" / "figures" / "vae" / "stats.json").read_text())
    assert stats["attribute_edit"]["from"] == "sneaker" and stats["attribute_edit"]["to"] == "tshirt"


def test_report_shows_the_image_folder_in_colour(pipeline):
    proj, _, _ = pipeline
    md = (proj / "reports" / "report.md").read_text()
    assert "# Generative models on image_folder" in md and f"shape [{SIZE}, {SIZE}, {CHANNELS}]" in md
    assert "classes: bag, sneaker, trouser, tshirt." in md
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert {"figures/gan/classes.png", "figures/vae/reconstructions.png", "figures/vae/latent_map.png"} <= set(links)
    for link in links:
        Image.open(proj / "reports" / link).verify()
    recon = np.asarray(Image.open(proj / "reports" / "figures" / "vae" / "reconstructions.png").convert("RGB"),
                       np.int16)
    assert np.abs(recon[..., 0] - recon[..., 2]).max() > 40              # RGB figures, not grey


def test_changing_the_folder_reruns_fetch(pipeline):
    """The image folder is a dependency of fetch: DVC sees a new image."""
    proj, env, _ = pipeline
    extra = proj / "images" / "bag" / "zzz.png"
    shutil.copy(proj / "images" / "bag" / "001.png", extra)
    try:
        st = run(["dvc", "status", "fetch"], proj, env)
        assert "modified:" in st.stdout and "images" in st.stdout
    finally:
        extra.unlink()
    assert "up to date" in run(["dvc", "status"], proj, env).stdout


def test_push_pull_reproduces_in_a_fresh_clone_without_training(pipeline, tmp_path):
    proj, env, _ = pipeline
    remote = tmp_path / "remote"
    run(["dvc", "remote", "add", "-d", "local", str(remote)], proj, env)
    push = run(["dvc", "push", "--run-cache"], proj, env)
    assert (remote / "runs").is_dir(), push.stdout
    run(GIT + ["add", "-A"], proj, env)                                  # dvc.lock, metrics, .dvc/config
    run(GIT + ["commit", "-qm", "smoke run on the image folder"], proj, env)

    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(proj), str(clone)], tmp_path, env)
    assert not (clone / "images").exists() and not (clone / "models" / "gan").exists()
    run(["dvc", "pull", "--run-cache"], clone, env)
    assert len(list((clone / "images" / "bag").iterdir())) == PER_CLASS    # the image folder, via images.dvc
    status = run(["dvc", "status"], clone, env)
    assert "up to date" in status.stdout, status.stdout
    repro = run(["dvc", "repro"], clone, env)
    assert ran_stages(repro.stdout) == set(), repro.stdout                 # nothing trained, nothing run
    for f in ("reports/report.md", "samples/gan.npz", "models/gan/config.json", "data/processed/test_x.npy"):
        assert (clone / f).read_bytes() == (proj / f).read_bytes(), f

    # The run-cache came from the remote: with the lock file of another run, DVC restores a stage
    # whose deps and params match a pushed run instead of running its command.
    run(["git", "checkout", "HEAD~2", "--", "dvc.lock"], clone, env)       # the default run's lock
    shutil.rmtree(clone / "data" / "raw")
    restored = run(["dvc", "repro", "-s", "fetch"], clone, env)
    assert ran_stages(restored.stdout) == set() and "Stage 'fetch' is cached" in restored.stdout, restored.stdout
    assert (clone / "data" / "raw" / "x_train.npy").read_bytes() == (proj / "data" / "raw" / "x_train.npy").read_bytes()
    run(["git", "checkout", "HEAD", "--", "dvc.lock"], clone, env)


def test_attribute_classes_are_checked_against_the_class_count(pipeline):
    """The default sample.attribute [7, 9] names Fashion-MNIST classes: with 4 classes it is refused."""
    proj, env, _ = pipeline
    params = (proj / "params.yaml").read_text()
    try:
        bad = yaml.safe_load(params)
        bad["sample"]["attribute"] = [7, 9]
        (proj / "params.yaml").write_text(yaml.safe_dump(bad, sort_keys=False))
        r = run(["python", "-m", "stages.sample", "--model", "models/gan", "--evaluator", "models/evaluator",
                 "--data", "data/processed", "--samples", "samples/x.npz", "--figures", "reports/figures/x"],
                proj, {**env, "TF_ENABLE_ONEDNN_OPTS": "1"}, ok=False)   # oneDNN's notice, as on Intel CPUs
    finally:
        (proj / "params.yaml").write_text(params)
    assert r.returncode == 1 and r.stderr.strip().splitlines() == [
        "error: sample.attribute must be [from_class, to_class], two different class ids in 0..3, got [7, 9]"]
    assert not (proj / "samples" / "x.npz").exists()


def test_grey_folder_outside_the_project(tmp_path, fmnist_raw):
    """channels 1, and data.path an absolute folder outside the project (an external dependency of fetch),
    through the data stages: what differs from the RGB folder above ends there (the models' shapes come from
    data/processed/meta.json, and grey images go through every later stage in the Fashion-MNIST pipelines)."""
    proj = copy_project(tmp_path / "proj")
    env = tool_env()
    write_images(tmp_path / "grey", fmnist_raw)
    set_params(proj, {**SMOKE, "data": {**SMOKE["data"], "path": str(tmp_path / "grey"), "channels": 1}})
    run(["dvc", "repro", "check_data"], proj, env)
    lock = yaml.safe_load((proj / "dvc.lock").read_text())
    assert str(tmp_path / "grey") in [d["path"] for d in lock["stages"]["fetch"]["deps"]]
    meta = json.loads((proj / "data" / "processed" / "meta.json").read_text())
    assert meta["shape"] == [SIZE, SIZE, 1] and meta["n_classes"] == 4
    x = np.load(proj / "data" / "processed" / "train_x.npy")
    assert x.shape[1:] == (SIZE, SIZE, 1) and np.isfinite(x).all() and x.std() > 0.1
    assert json.loads((proj / "reports" / "validation.json").read_text())["success"]
    shutil.copy(tmp_path / "grey" / "bag" / "001.png", tmp_path / "grey" / "bag" / "zzz.png")
    st = run(["dvc", "status", "fetch"], proj, env).stdout        # DVC watches the folder outside the project
    assert "modified:" in st and str(tmp_path / "grey") in st, st
