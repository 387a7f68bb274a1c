"""The CI-reproduced report, run for real: .github/workflows/cml.yaml's `run:` steps in order, as
written, in a fresh clone of a pull-request branch (smoke-size params) against `main` (the project as
committed), with `cml` replaced by a stand-in that records the comment (tests/workflow_runner.py)."""

import re
from pathlib import Path

import pytest
from workflow_runner import steps

from conftest import ROOT

pytestmark = pytest.mark.slow   # the whole pipeline at smoke size (about 3 minutes)


def test_every_run_step_succeeds(cml_workflow):
    result, record = cml_workflow
    ran = [s for s in result["steps"] if "returncode" in s]
    logs = {p.name: p.read_text()[-1500:] for p in record.glob("step*.log")}
    assert len(ran) == sum(1 for _, script, _ in steps() if script) and all(s["returncode"] == 0 for s in ran), \
        (result["steps"], logs)


def test_the_comment_holds_the_diffs_against_main_and_the_report(cml_workflow):
    result, record = cml_workflow
    comment = (record / "comment.md").read_text()
    assert (record / "cml-args.txt").read_text().split() == \
        ["comment", "update", "--target=pr", "--publish", "reports/cml-comment.md"]
    metrics = comment.split("## Metrics: this branch vs main")[1].split("## Params")[0]
    rows = [r for r in metrics.splitlines() if r.startswith("|")]
    assert re.match(r"\| Path +\| Metric +\| main +\| workspace +\| Change", rows[0]), rows[:2]
    metric_names = {r.split("|")[2].strip() for r in rows[2:]}
    assert {"gan.fd", "vae.fd", "gan.recall", "test_accuracy"} <= metric_names, metric_names
    params = comment.split("## Params: this branch vs main")[1]
    assert re.search(r"\| params\.yaml +\| train\.epochs +\| 9000 +\| 60 +\|", params), params[:1500]
    report = (Path(result["clone"]) / "reports" / "report.md").read_text()
    assert report.startswith("# Generative models on") and comment.rstrip().endswith(report.rstrip())


def test_every_image_of_the_report_is_published(cml_workflow):
    result, record = cml_workflow
    published = (record / "published.txt").read_text().split()
    missing = (record / "missing.txt").read_text().split()
    assert missing == [] and len(published) >= 8, (published, missing)
    assert any("figures/gan/" in p for p in published) and any("figures/vae/" in p for p in published)


def test_the_comment_puts_each_change_beside_the_seed_noise(cml_workflow):
    """main is the committed default run, whose params the committed seed spread was measured at: every
    changed metric of evaluate.json gets the spread's sd and a verdict (smoke-size training is far worse)."""
    result, record = cml_workflow
    comment = (record / "comment.md").read_text()
    section = comment.split("Seed noise: changes from main beside the spread over")[1].split("# Generative models")[0]
    rows = {r.split("|")[1].strip(): [c.strip() for c in r.split("|")[2:-1]]
            for r in section.splitlines() if r.startswith("| ") and not r.startswith("| metric")}
    assert {"gan.fd", "gan.recall", "vae.fd"} <= set(rows), section[:1500]
    assert rows["gan.fd"][4] == "beyond noise" and float(rows["gan.fd"][2]) > 0, rows["gan.fd"]
    assert all(r[4] in ("beyond noise", "within noise", "no spread") for r in rows.values())


def test_the_comment_shows_the_curves_of_the_branch_over_main_as_images(cml_workflow):
    """`dvc plots diff main --json` rendered by `genlab plots`: one published PNG per curve plot of dvc.yaml,
    in the comment under its title, drawing both revisions (the smoke branch's and main's)."""
    import json

    import yaml
    result, record = cml_workflow
    comment = (record / "comment.md").read_text()
    section = comment.split("## Curves: this branch over main (dvc plots diff main)")[1].split("# Generative models")[0]
    titles = [next(iter(p)) for p in yaml.safe_load((ROOT / "dvc.yaml").read_text())["plots"] if isinstance(p, dict)]
    images = re.findall(r"!\[([^]]*)\]\((plots-diff/[^)]*\.png)\)", section)
    assert [t for t, _ in images] == titles, section[:2000]
    published = (record / "published.txt").read_text().split()
    assert all(link in published for _, link in images), (images, published)
    diff = json.loads((Path(result["clone"]) / "reports" / "plots-diff.json").read_text())["data"]
    revs = {v["rev"] for e in diff["GAN losses"] if e["type"] == "vega" for v in e["content"]["data"]["values"]}
    assert revs == {"workspace", "main"}, revs
