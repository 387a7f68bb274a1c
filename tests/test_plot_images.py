"""`genlab plots` (genlab/outputs/plot_images.py): `dvc plots diff REV --json` of this project, run in a
clean clone whose workspace curves differ from HEAD's, rendered to one valid PNG per curve plot of
dvc.yaml (both revisions drawn) and a Markdown section whose links resolve; bad input is one line.
tests/test_cml_workflow.py checks that the images reach the pull-request comment."""

import re
import subprocess
import sys

import numpy as np
import pytest
import yaml
from PIL import Image

from conftest import ROOT, copy_project, copy_tree, dvc, own_lines, tool_env


def curve_plots():
    """Titles of dvc.yaml's top-level plots that are curves (a mapping), not image folders."""
    return [next(iter(p)) for p in yaml.safe_load((ROOT / "dvc.yaml").read_text())["plots"] if isinstance(p, dict)]


def genlab_plots(proj, *args):
    return subprocess.run([sys.executable, "-m", "genlab.command", "plots", *args], cwd=proj, capture_output=True,
                          text=True, env=tool_env(), timeout=300)


@pytest.mark.slow   # dvc plots diff in subprocesses
def test_plots_diff_becomes_images_and_markdown(tmp_path):
    proj = copy_project(tmp_path / "proj")
    tsv = proj / "dvclive" / "train_gan" / "plots" / "metrics" / "g_loss.tsv"
    lines = tsv.read_text().splitlines()
    tsv.write_text("\n".join([lines[0]] + [re.sub(r"\t([\d.]+)$", lambda m: f"\t{2 * float(m[1]):.4f}", ln)
                                           for ln in lines[1:]]) + "\n")   # this "branch": g_loss doubled
    r = dvc(proj, "plots", "diff", "HEAD", "--json", check=True)
    (proj / "reports" / "plots-diff.json").write_text(r.stdout)
    r = genlab_plots(proj, "reports/plots-diff.json", "reports/plots-diff", "--md", "reports/plots-diff.md")
    titles = curve_plots()
    assert r.returncode == 0 and r.stdout.strip() == \
        f"genlab plots: {len(titles)} plots -> reports/plots-diff, reports/plots-diff.md", r.stdout + r.stderr
    md = (proj / "reports" / "plots-diff.md").read_text()
    links = re.findall(r"!\[([^]]*)\]\(([^)]*)\)", md)
    assert [t for t, _ in links] == titles
    for _, link in links:
        img = np.asarray(Image.open(proj / "reports" / link).convert("RGB"), dtype=np.float32)
        assert img.shape[0] > 200 and img.shape[1] > 300 and img.std() > 5, link
    # Both revisions are drawn: the legend of the changed plot names the workspace and HEAD.
    spec = [e for e in __import__("json").loads((proj / "reports" / "plots-diff.json").read_text())["data"]
            ["GAN losses"] if e["type"] == "vega"][0]
    assert {"workspace", "HEAD"} <= {v["rev"] for v in spec["content"]["data"]["values"]}


def test_bad_plots_json_is_one_line(tmp_path):
    (tmp_path / "p.json").write_text("[1, 2]")
    r = genlab_plots(ROOT, str(tmp_path / "p.json"), str(tmp_path / "out"), "--md", str(tmp_path / "p.md"))
    assert r.returncode == 1 and own_lines(r.stderr) == [
        f"error: {tmp_path / 'p.json'} is not the output of `dvc plots diff REV --json` (no plots in it)"]
    assert not (tmp_path / "out").exists() and not (tmp_path / "p.md").exists()


@pytest.mark.slow
def test_dvclive_sample_grids_are_image_plots(smoke_pipeline, tmp_path):
    """In a reproduced project `dvc plots show` lists each sample grid dvclive logged as an image plot, one per
    logged iteration (what VS Code and DVC Studio show with a slider)."""
    import json
    proj, env, _ = smoke_pipeline
    proj = copy_tree(proj, tmp_path / "proj")            # dvc runs in it: not in the shared pipeline
    data = json.loads(dvc(proj, "plots", "show", "--json", env=env, check=True).stdout)["data"]
    for model in ("gan", "vae"):
        folder = proj / "dvclive" / f"train_{model}" / "plots" / "images" / "samples"
        logged = sorted(p.name for p in folder.glob("*.png"))
        shown = sorted(k.rsplit("/", 1)[1] for k, v in data.items()
                       if k.startswith(f"dvclive/train_{model}/plots/images/") and v[0]["type"] == "image")
        assert len(logged) >= 2 and shown == logged, (logged, shown)
