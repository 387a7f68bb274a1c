"""reports/report.html (genlab.outputs.report.html_report): the report as one self-contained page. From
small Markdown, images become data URIs and local links stay relative; the report stage run by its
dvc.yaml command on the committed results writes report.html beside report.md, and headless Chromium
(tests/browser.py) opens it from disk: no console error, no request beyond the file itself, every image
decoded, every link resolves."""

import json
import shlex
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
import yaml

from browser import browser_page
from conftest import ROOT, project_files, tool_env, write_files
from genlab.outputs.report import html_report

PNG = ROOT / "docs" / "example-gan-classes.png"


class Refs(HTMLParser):
    """Every <img src> and <a href> of a page."""

    def __init__(self):
        super().__init__()
        self.src, self.href = [], []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img":
            self.src.append(a.get("src", ""))
        elif tag == "a":
            self.href.append(a.get("href", ""))


def refs(page_html):
    r = Refs()
    r.feed(page_html)
    return r


def test_html_report_embeds_images_and_keeps_links_relative(tmp_path):
    md_dir, html_dir = tmp_path / "reports", tmp_path / "site"
    (md_dir / "figures").mkdir(parents=True)
    html_dir.mkdir()
    shutil.copy(PNG, md_dir / "figures" / "grid.png")
    (md_dir / "docs").mkdir()
    (md_dir / "docs" / "index.html").write_text("<p>docs</p>")
    text = ("# Generative models on fashion_mnist\n\n| metric | GAN |\n|---|---|\n| FD | 8.34 |\n\n"
            "![gan samples](figures/grid.png)\n\n[Data Docs](docs/index.html), [DVC](https://dvc.org)\n")
    page = html_report(text, md_dir, html_dir, title="Generative models on fashion_mnist")
    r = refs(page)
    assert r.src == ["data:image/png;base64," + __import__("base64").b64encode(PNG.read_bytes()).decode()]
    assert r.href == ["../reports/docs/index.html", "https://dvc.org"]
    assert "<table>" in page and "<td>8.34</td>" in page and "<title>Generative models on fashion_mnist</title>" in page
    assert "<script" not in page and "http" not in page.replace("https://dvc.org", "")   # nothing fetched


def run_report_stage(tmp_path):
    """The report stage, by its dvc.yaml command, in a folder holding the committed results (metrics,
    dvclive curves, validation, studies) and the few pipeline outputs git does not hold: meta.json,
    a figure per model, a Data Docs index."""
    proj = tmp_path / "proj"
    rels = ("params.yaml", "metrics/", "dvclive/", "reports/validation.json", "studies/spread/results.json",
            "studies/augmentation/results.json")
    write_files({f: v for f, v in project_files().items() if f.startswith(rels)}, proj)   # as committed
    (proj / "data" / "processed").mkdir(parents=True)
    (proj / "data" / "processed" / "meta.json").write_text(json.dumps({
        "dataset": "fashion_mnist", "shape": [28, 28, 1], "range": [-1.0, 1.0], "n_classes": 10,
        "class_names": [f"c{k}" for k in range(10)], "counts": {"train": 54000, "val": 6000, "test": 10000}}))
    for m in ("gan", "vae"):
        (proj / "reports" / "figures" / m).mkdir(parents=True)
        shutil.copy(PNG, proj / "reports" / "figures" / m / "grid.png")
    (proj / "reports" / "data_docs").mkdir()
    (proj / "reports" / "data_docs" / "index.html").write_text("<!doctype html><title>Data Docs</title><p>ok</p>")
    cmd = shlex.split(yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["report"]["cmd"])
    assert cmd[:3] == ["python", "-m", "stages.report"] and "--html" in cmd
    r = subprocess.run([sys.executable, *cmd[1:]], cwd=proj, capture_output=True, text=True, timeout=300,
                       env=tool_env(PYTHONPATH=str(ROOT)))
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip() == "report: reports/report.md, reports/report.html"
    return proj


@pytest.mark.slow   # the report stage in a subprocess
def test_report_stage_writes_a_page_that_opens_offline(tmp_path):
    proj = run_report_stage(tmp_path)
    report = proj / "reports" / "report.html"
    page = report.read_text()
    md = (proj / "reports" / "report.md").read_text()
    r = refs(page)
    # Every image of report.md is in the page, embedded: the figures and both training-curve panels.
    assert len(r.src) == md.count("![") >= 4 and all(s.startswith("data:image/png;base64,") for s in r.src)
    for href in r.href:
        if not urlparse(href).scheme:
            assert (report.parent / unquote(href.split("#")[0])).exists(), href
    assert "## " not in page and "<h2>Metrics</h2>" in page and "<table>" in page
    with browser_page(tmp_path) as (browser, errors):
        requests = []
        browser.on("request", lambda q: requests.append(q.url))
        browser.goto(report.as_uri())
        decoded = browser.evaluate("[...document.images].map(i => i.complete && i.naturalWidth > 0)")
        assert decoded and all(decoded), decoded
        links = browser.evaluate("[...document.links].map(a => a.href)")
        assert any(h.endswith("data_docs/index.html") for h in links), links
        for href in links:
            if href.startswith("file:"):
                assert Path(unquote(urlparse(href).path)).exists(), href
        assert errors == [], errors
        assert [u for u in requests if not u.startswith("data:")] == [report.as_uri()], requests


@pytest.mark.slow
def test_the_pipelines_report_page(smoke_pipeline, tmp_path):
    """The smoke pipeline's report.html (dvc repro, every stage): every figure of report.md embedded, and the
    page opens from disk with every image decoded and no console error."""
    report = smoke_pipeline[0] / "reports" / "report.html"
    md = (report.parent / "report.md").read_text()
    r = refs(report.read_text())
    assert len(r.src) == md.count("![") >= 8 and all(s.startswith("data:image/png;base64,") for s in r.src)
    with browser_page(tmp_path) as (browser, errors):
        browser.goto(report.as_uri())
        assert all(browser.evaluate("[...document.images].map(i => i.complete && i.naturalWidth > 0)"))
        for href in browser.evaluate("[...document.links].map(a => a.href)"):
            if href.startswith("file:"):
                assert Path(unquote(urlparse(href).path)).exists(), href
        assert errors == [], errors
