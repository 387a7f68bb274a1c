"""benchmarks/bench_temperature.py on the smoke pipeline's models (read-only): one row per temperature for
samples and reconstructions beside the floor, each a different set of images; bad arguments stop it with
one line. (Which temperature is best is measured on the default run, benchmarks/README.md, not tested.)"""

import re
import subprocess
import sys

import pytest

from conftest import ROOT, own_lines

pytestmark = pytest.mark.slow   # the smoke pipeline, then the benchmark in a subprocess

SCRIPT = ROOT / "benchmarks" / "bench_temperature.py"


def bench(proj, *args):
    return subprocess.run([sys.executable, str(SCRIPT), "--project", str(proj), *args], cwd=ROOT,
                          capture_output=True, text=True)


def test_every_temperature_is_scored_on_the_validation_split(smoke_pipeline):
    proj = smoke_pipeline[0]
    r = bench(proj, "--n", "300", "--temperatures", "1,0.5")
    assert r.returncode == 0, r.stderr[-2000:]
    rows = {m.group(1): [float(v) for v in m.group(2).split(" | ")]
            for m in re.finditer(r"^\| ((?:samples|reconstructions), T [\d.]+|real-vs-real floor) \| (.+) \|$",
                                 r.stdout, re.M)}
    assert list(rows) == ["samples, T 1", "reconstructions, T 1", "samples, T 0.5", "reconstructions, T 0.5",
                          "real-vs-real floor"], r.stdout
    assert "300 images per row against as many validation images" in r.stdout
    # the same codes at another temperature are other images: their Frechet distance differs
    assert rows["samples, T 1"][0] != rows["samples, T 0.5"][0]
    assert rows["reconstructions, T 1"][0] != rows["reconstructions, T 0.5"][0]
    assert rows["real-vs-real floor"][0] < min(v[0] for k, v in rows.items() if k != "real-vs-real floor")


def test_bad_arguments_stop_with_one_line(smoke_pipeline):
    proj = smoke_pipeline[0]
    for args, message in ((["--temperatures", "1,0"], "--temperatures must be numbers > 0"),
                          (["--n", "100000"], "exceeds the 6000 validation images"),
                          (["--n", "300", "--train-n", "100"], "--train-n must be between --n (300)")):
        r = bench(proj, *args)
        assert r.returncode != 0 and message in r.stderr, r.stderr[-2000:]
        assert len(own_lines(r.stderr)) == 1, r.stderr[-2000:]
