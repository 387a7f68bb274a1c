"""The whole pipeline at smoke size on real Fashion-MNIST (from the mirror) in a temporary clone:
the report is reproduced and checked (sections, images, numbers), then a no-op repro runs nothing."""

import json
import re
import subprocess

import numpy as np
import pytest
from PIL import Image

from conftest import copy_tree

pytestmark = pytest.mark.slow   # the smoke pipeline


@pytest.fixture(scope="module")
def pipeline(smoke_pipeline, tmp_path_factory):
    """A copy of the shared smoke pipeline (these tests run dvc in it)."""
    proj, env, _ = smoke_pipeline
    return copy_tree(proj, tmp_path_factory.mktemp("report") / "proj"), env


def test_report_has_every_section_and_valid_images(pipeline):
    proj, _ = pipeline
    md = (proj / "reports" / "report.md").read_text()
    for heading in ("# Generative models on fashion_mnist", "## Metrics", "## GAN", "## VAE", "## Data", "## Params"):
        assert heading in md, heading
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    expected = {"curves/gan.png", "curves/vae.png", "figures/gan/grid.png", "figures/gan/classes.png",
                "figures/gan/interpolation.png", "figures/gan/attribute.png", "figures/vae/grid.png",
                "figures/vae/reconstructions.png", "figures/vae/latent_map.png", "figures/vae/attribute.png",
                "figures/vae/interpolation.png"}
    assert expected <= set(links)
    for link in links:
        img = Image.open(proj / "reports" / link)
        img.verify()                                   # a valid PNG
        pixels = np.asarray(Image.open(proj / "reports" / link).convert("L"), dtype=np.float32)
        assert img.format == "PNG" and pixels.std() > 5, f"{link} is blank"


def test_report_links_the_data_docs(pipeline):
    """validate writes great-expectations Data Docs (a DVC output) and the report links their index."""
    proj, _ = pipeline
    md = (proj / "reports" / "report.md").read_text()
    assert "[Data Docs](data_docs/index.html)" in md
    index = proj / "reports" / "data_docs" / "index.html"
    assert index.exists() and "train.images" in index.read_text()
    assert len(list((proj / "reports" / "data_docs" / "validations").rglob("*.html"))) == 4


def test_report_numbers_are_the_metrics(pipeline):
    proj, _ = pipeline
    md = (proj / "reports" / "report.md").read_text()
    metrics = json.loads((proj / "metrics" / "evaluate.json").read_text())
    row = next(line for line in md.splitlines() if line.startswith("| Fréchet distance |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1:4] == [f"{metrics['gan']['fd']:.3f}", f"{metrics['vae']['fd']:.3f}", f"{metrics['floor']['fd']:.3f}"]
    acc = json.loads((proj / "metrics" / "evaluator.json").read_text())["test_accuracy"]
    assert f"test accuracy **{acc:.3f}**" in md
    # the classification accuracy score: the conditional GAN and the floor; none for the unconditional VAE
    row = next(line for line in md.splitlines() if line.startswith("| classification accuracy score |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1:4] == [f"{metrics['gan']['cas']:.3f}", "–", f"{metrics['floor']['cas']:.3f}"]
    assert metrics["cas_n"] == 1000 and "cas" not in metrics["vae"] and "the VAE is unconditional" in md
    assert np.isfinite([v for part in ("gan", "vae", "floor") for v in metrics[part].values()]).all()
    # the floor is far better than a 60-iteration model: the yardstick separates real from generated
    assert metrics["floor"]["fd"] < metrics["gan"]["fd"] and metrics["floor"]["fd"] < metrics["vae"]["fd"]


def test_sample_figures_and_samples(pipeline):
    proj, _ = pipeline
    with np.load(proj / "samples" / "gan.npz") as z:
        x, labels = z["x"], z["labels"]
    assert x.shape == (1000, 28, 28, 1) and x.min() >= -1 and x.max() <= 1 and x.std() > 0.05
    assert set(np.unique(labels)) == set(range(10))     # conditional GAN draws every class
    grid = np.asarray(Image.open(proj / "reports" / "figures" / "gan" / "grid.png").convert("L"))
    assert grid.shape[0] > 100 and grid.shape[1] > 100


def test_metrics_diff_shows_every_metric_against_the_published_run(pipeline):
    """The clone's HEAD holds the committed default-run metrics: `dvc metrics diff` compares with them."""
    proj, env = pipeline
    r = subprocess.run(["dvc", "metrics", "diff", "--json"], cwd=proj, capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    diff = json.loads(r.stdout)["metrics/evaluate.json"]
    for key in ("gan.fd", "gan.kid", "gan.recall", "gan.detector_accuracy", "vae.fd", "vae.elbo", "floor.fd"):
        assert diff[key]["old"] is not None and diff[key]["new"] is not None, key
    assert diff["n"] == {"old": 10000, "new": 1000, "diff": -9000}
    p = subprocess.run(["dvc", "params", "diff", "--json"], cwd=proj, capture_output=True, text=True, env=env)
    assert json.loads(p.stdout)["params.yaml"]["train.epochs"] == {"old": 9000, "new": 60, "diff": -8940}


def test_noop_repro_runs_nothing(pipeline):
    proj, env = pipeline
    r = subprocess.run(["dvc", "repro"], cwd=proj, capture_output=True, text=True, env=env)
    assert r.returncode == 0 and "Running stage" not in r.stdout
    st = subprocess.run(["dvc", "status"], cwd=proj, capture_output=True, text=True, env=env)
    assert "up to date" in st.stdout
