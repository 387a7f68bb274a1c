"""What every experiment pays after training: sample, evaluate and report at the defaults, on a project
whose pipeline has run (`dvc repro`), stage by stage, and where evaluate's time goes.

    .venv/bin/python benchmarks/bench_scoring.py --project DIR [--repeat 2] [--profile] [--cold]

Each repeat runs `dvc repro --force --single-item` of sample@gan, sample@vae, evaluate and report in
DIR (the same commands `dvc exp run` runs after a training), timing each one's wall clock. The stages
are deterministic, so their outputs come back byte for byte: the script checks that dvc.lock and
metrics/ are unchanged afterwards (it must print "outputs unchanged: yes"). --profile also runs
evaluate's command once under cProfile and prints the seconds of its parts (the VAE's bounds, the
sample metrics, the detectors, CAS, nearest-training distances, imports). evaluate takes the quality-
curve rows of this run's snapshots from the run store's score cache when it holds them (the first run
fills it if the pipeline's own evaluate did not run on this machine); --cold turns the store off
(GENLAB_RUN_STORE=off) so every snapshot is scored again, as after a training that made new ones.
Needs a quiet machine: the figures are wall times.
"""

import argparse
import os
import pstats
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from genlab import identity

STAGES = ("sample@gan", "sample@vae", "evaluate", "report")
# evaluate's parts: (label, file suffix, function name) as cProfile names them
PARTS = (
    ("VAE test bounds (ELBO, IW bound)", "evaluation/elbo.py", "vae_bounds"),
    ("  of which the decoder", "models/vae.py", "decode_logits"),
    ("model metrics (FD, KID, P/R, detectors, NN distances)", "evaluation/scoring.py", "score_models"),
    ("  feature-space k-NN (precision/recall)", "evaluation/metrics.py", "precision_recall"),
    ("  pixel nearest training image", "evaluation/detect.py", "nearest_train_distances"),
    ("  pixel detector", "evaluation/detect.py", "pixel_two_sample_accuracy"),
    ("  feature detector", "evaluation/detect.py", "two_sample_accuracy"),
    ("  KID", "evaluation/metrics.py", "kid"),
    ("classification accuracy score", "evaluation/cas.py", "cas_scores"),
    ("quality curves (rows from the score cache)", "evaluation/curves.py", "model_curves"),
)


def state(project):
    """Digest of what the stages must leave as they found it."""
    return identity.file_digest(project / "dvc.lock"), identity.tree_digest(project / "metrics")


def profile_evaluate(project, env):
    cmd = yaml.safe_load((project / "dvc.yaml").read_text())["stages"]["evaluate"]["cmd"].split()
    assert cmd[:3] == ["python", "-m", "stages.evaluate"], cmd
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "evaluate.prof"
        args = [c if c != "metrics/evaluate.json" else str(Path(tmp) / "evaluate.json") for c in cmd[3:]]
        args = [a if a != "metrics/curves" else str(Path(tmp) / "curves") for a in args]
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "cProfile", "-o", str(out), "-m", "stages.evaluate", *args],
                       cwd=project, env=env, check=True, capture_output=True)
        wall = time.perf_counter() - t
        stats = pstats.Stats(str(out)).stats
    cum = {}
    for (file, _, name), (_, _, _, ct, _) in stats.items():
        for label, suffix, fn in PARTS:
            if name == fn and file.endswith(suffix):
                cum[label] = max(cum.get(label, 0.0), ct)
    imports = max((ct for (file, _, name), (*_, ct, _) in stats.items() if name == "_find_and_load"), default=0.0)
    print(f"\nevaluate under cProfile: {wall:.1f} s wall (the profiler adds a little)")
    for label, _, _ in PARTS:
        if label in cum:
            print(f"  {label:<58} {cum[label]:7.1f} s")
    print(f"  {'imports (TensorFlow, Keras, scikit-learn, ...)':<58} {imports:7.1f} s")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--project", required=True, help="a project whose pipeline has run (dvc status clean)")
    ap.add_argument("--repeat", type=int, default=2, help="timed runs of each stage (default 2)")
    ap.add_argument("--profile", action="store_true", help="also profile evaluate's parts once")
    ap.add_argument("--cold", action="store_true", help="run store off: score every snapshot's curve rows again")
    args = ap.parse_args()
    project = Path(args.project).resolve()
    bin_dir = str(Path(sys.executable).parent)
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}", PYTHONPATH=str(project))
    if args.cold:
        env["GENLAB_RUN_STORE"] = "off"
    before = state(project)
    times = {s: [] for s in STAGES}
    for _ in range(args.repeat):
        for s in STAGES:
            t = time.perf_counter()
            subprocess.run(["dvc", "repro", "--force", "--single-item", s], cwd=project, env=env, check=True,
                           capture_output=True)
            times[s].append(time.perf_counter() - t)
    print(f"{'stage (dvc repro -f -s)':<24} " + " ".join(f"{'run ' + str(i + 1):>8}" for i in range(args.repeat))
          + f" {'best':>8}")
    for s in STAGES:
        print(f"{s:<24} " + " ".join(f"{t:8.1f}" for t in times[s]) + f" {min(times[s]):8.1f}")
    total = [sum(times[s][i] for s in STAGES) for i in range(args.repeat)]
    print(f"{'all four':<24} " + " ".join(f"{t:8.1f}" for t in total) + f" {min(total):8.1f}")
    print(f"outputs unchanged: {'yes' if state(project) == before else 'NO (dvc.lock or metrics/ changed)'}")
    if args.profile:
        profile_evaluate(project, env)


if __name__ == "__main__":
    main()
