"""Any training length for the price of the new iterations: the wall time of `dvc exp run -S train.epochs=TO`
after a finished pipeline run of FROM iterations (TO longer or shorter), or of a queued sweep over several
lengths (`--epochs-to 3000,6000,12000`: one queued experiment per length, run one at a time), starting from the
stored states vs the same command from scratch.

    .venv/bin/python benchmarks/bench_extend.py [--epochs-from 60] [--epochs-to 100[,N...]] [--full]
        [--data ../shared/data] [--keep DIR] [--base DIR] [--skip-cache-baseline]

Setup (not timed): the project as git has it is copied into a temporary folder (--keep: into DIR,
kept), params.yaml gets train.epochs = FROM (and, without --full, the small sizes of the tests'
smoke pipeline for everything else), `dvc repro` runs the whole pipeline from the local mirror
(--data, GENLAB_MIRROR) with a run store inside the copy, and the result is committed. The copy is
then duplicated (hard-linked DVC cache). --base DIR skips that setup: DIR is a project whose
pipeline has already run at train.epochs = FROM (for example this workspace after `dvc repro`); it is
copied (workspace, git, DVC cache hard-linked; not .venv) and its state committed in the copy, and the
run store it ran with (GENLAB_RUN_STORE, default ~/.cache/genlab/runs) is copied as the bench's store.
  stored        the command as is: train_gan and train_vae start from the newest state at or below each
                length (the workspace's checkpoints or the run store: the FROM run's snapshot points and
                end), and evaluate takes the quality-curve rows of snapshots already scored from the
                score cache
  stored, no score cache   the same with the store's scores/ left out (the baseline of the cache;
                --skip-cache-baseline leaves this arm out)
  from scratch  the same command after emptying checkpoints/train_gan and checkpoints/train_vae
                (`dvc commit`ed empty, so `exp run` cannot check the old ones out of the cache)
                and with the run store off: every training starts at iteration 0
Each arm works on its own copy of the project and of the store. All run the downstream stages too
(sample, evaluate, report), as a user's command does. Printed: the wall times side by side, each as a
share of scratch's, how many trainings started from a stored state, the curve rows reused, and whether
each run's metrics (metrics/evaluate.json, metrics/curves) are byte-identical to scratch's (they must be).
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from genlab.evaluation.score_cache import FOLDER as SCORES
from genlab.identity import tree_digest
from genlab.training.checkpoint import run_store

ROOT = Path(__file__).resolve().parents[1]
# the tests' smoke sizes (tests/conftest.py SMOKE), train.epochs aside
SMOKE = {
    "train": {"log_every": 20, "ckpt_every": 30, "batch_size": 64, "snapshot_every": 20},
    "vae": {"prior_components": 3},
    "evaluator": {"epochs": 2, "warmup_epochs": 1, "filters": [8, 16], "feature_dim": 32},
    "sample": {"n": 1000},
    "evaluate": {"n_samples": 1000, "iw_k": 4, "kid_subset_size": 200, "kid_subsets": 10,
                 "two_sample_max_iter": 50, "pixel_detector_epochs": 1, "curve_n": 500,
                 "min_evaluator_accuracy": {"fashion_mnist": 0.5, "mnist": 0.5, "url": 0.0, "image_folder": 0.0}},
    "cas": {"n": 1000, "epochs": 2},
}
GIT = ["git", "-c", "user.name=bench", "-c", "user.email=bench@localhost", "-c", "commit.gpgsign=false"]


def run(cmd, cwd, env):
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        sys.exit(f"bench_extend: {' '.join(cmd)} failed in {cwd}:\n{r.stdout[-2000:]}{r.stderr[-2000:]}")
    return r.stdout + r.stderr


def copy_project(dest):
    """The project as a clean clone has it (tracked + untracked, not ignored), one git commit."""
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           check=True, capture_output=True).stdout.decode().split("\0")
    for f in filter(None, files):
        if (ROOT / f).is_file():
            (dest / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / f, dest / f)
    subprocess.run(["git", "init", "-q"], cwd=dest, check=True)
    commit(dest, "bench_extend: the project")


def commit(proj, message):
    subprocess.run(GIT + ["add", "-A"], cwd=proj, check=True)
    subprocess.run(GIT + ["commit", "-q", "--allow-empty", "-m", message], cwd=proj, check=True)


def duplicate(src, dest):
    """A copy of a project (workspace, git, DVC cache hard-linked: cache files are never changed)."""
    def copy(s, d):
        if "/.dvc/cache/" in s:
            os.link(s, d)
        else:
            shutil.copy2(s, d)
    shutil.copytree(src, dest, symlinks=True, copy_function=copy,
                    ignore=shutil.ignore_patterns(".venv", "__pycache__", "*.egg-info", ".pytest_cache"))
    return dest


def set_params(proj, epochs, full):
    params = yaml.safe_load((proj / "params.yaml").read_text())
    if not full:
        for section, values in SMOKE.items():
            params[section].update(values)
    params["train"]["epochs"] = epochs
    (proj / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


STARTED = re.compile(r"^train_(gan|vae): (continuing the finished run|nothing to train|starting from iteration)", re.M)


def command(proj, lengths, env):
    """The timed command in proj: `dvc exp run -S` of one length, or one queued experiment per length run
    one at a time. Returns (seconds, trainings started from a stored state, curve rows reused,
    {length: digest of metrics/})."""
    t0 = time.perf_counter()
    if len(lengths) == 1:
        out = run(["dvc", "exp", "run", "-S", f"train.epochs={lengths[0]}"], proj, env)
        seconds, logs = time.perf_counter() - t0, {lengths[0]: out}
    else:
        for n in lengths:
            run(["dvc", "exp", "run", "--queue", "-n", f"len-{n}", "-S", f"train.epochs={n}"], proj, env)
        t0 = time.perf_counter()
        run(["dvc", "exp", "run", "--run-all", "-j", "1"], proj, env)     # = dvc queue start, waiting for the end
        seconds, logs = time.perf_counter() - t0, {}
        for n in lengths:
            logs[n] = run(["dvc", "queue", "logs", f"len-{n}"], proj, env)
    metrics = {}
    for n in lengths:
        if len(lengths) > 1:
            run(["dvc", "exp", "apply", f"len-{n}"], proj, env)
        metrics[n] = tree_digest(proj / "metrics")    # evaluate.json, the curves
    text = "\n".join(logs.values())
    return (seconds, len(STARTED.findall(text)),
            sum(int(m) for m in re.findall(r"\((\d+) from the score cache\)", text)), metrics)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs-from", type=int, default=60, help="iterations of the finished run")
    ap.add_argument("--epochs-to", default="100", help="iterations of the timed `dvc exp run -S` (several, comma-"
                    "separated: a queued sweep)")
    ap.add_argument("--full", action="store_true", help="params.yaml's sizes (default: the tests' smoke sizes)")
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"), help="the dataset mirror")
    ap.add_argument("--keep", help="work in this folder and keep it (default: a temporary folder, removed)")
    ap.add_argument("--base", help="a project whose pipeline already ran at --epochs-from: skip the set-up run")
    ap.add_argument("--skip-cache-baseline", action="store_true",
                    help="leave out the 'stored, no score cache' arm (saves its run)")
    args = ap.parse_args()
    try:
        lengths = [int(v) for v in args.epochs_to.split(",")]
    except ValueError:
        sys.exit(f"bench_extend: --epochs-to must be whole numbers, comma-separated, got {args.epochs_to!r}")
    if args.epochs_from <= 0 or min(lengths) <= 0 or lengths == [args.epochs_from]:
        sys.exit("bench_extend: need --epochs-from > 0 and --epochs-to > 0, other than --epochs-from")

    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-extend-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        base = work / "base"
        env = dict(os.environ, GENLAB_MIRROR=str(args.data), GENLAB_RUN_STORE=str(work / "store"))
        env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
        if args.base:
            duplicate(Path(args.base), base)
            store = run_store()   # the run store the base's pipeline kept its runs and curve rows in, copied
            if store is not None and store.is_dir():
                shutil.copytree(store, work / "store", ignore=shutil.ignore_patterns("*.tmp-*"))
            epochs = yaml.safe_load((base / "params.yaml").read_text())["train"]["epochs"]
            if epochs != args.epochs_from or run(["dvc", "status", "-q"], base, env).strip():
                sys.exit(f"bench_extend: {args.base} must hold a finished pipeline at train.epochs={args.epochs_from} "
                         f"(it has {epochs}; `dvc status` must be clean)")
            commit(base, f"bench_extend: the finished pipeline of {args.base}")
        else:
            base.mkdir()
            copy_project(base)
            set_params(base, args.epochs_from, args.full)
            print(f"bench_extend: dvc repro at train.epochs={args.epochs_from} "
                  f"({'full' if args.full else 'smoke'} sizes) in {base} ...", flush=True)
            run(["dvc", "repro"], base, env)
            commit(base, f"bench_extend: pipeline at {args.epochs_from} iterations")

        def stored(name, scores):
            """The command on a copy of base with a copy of the run store (without its score cache unless
            `scores`)."""
            store = work / f"store-{name}"
            if (work / "store").is_dir():
                shutil.copytree(work / "store", store)
                if not scores:
                    shutil.rmtree(store / SCORES, ignore_errors=True)
            return command(duplicate(base, work / name), lengths, dict(env, GENLAB_RUN_STORE=str(store)))

        ext = stored("stored", scores=True)
        plain = None if args.skip_cache_baseline else stored("stored-no-score-cache", scores=False)
        scratch = duplicate(base, work / "scratch")
        for stage in ("train_gan", "train_vae"):
            shutil.rmtree(scratch / "checkpoints" / stage)
            (scratch / "checkpoints" / stage).mkdir(parents=True)
        run(["dvc", "commit", "-f", "train_gan", "train_vae"], scratch, env)
        commit(scratch, "bench_extend: no checkpoints")
        t_scratch, restarted, _, reference = command(scratch, lengths, dict(env, GENLAB_RUN_STORE="off"))

        what = (f"dvc exp run -S train.epochs={lengths[0]}" if len(lengths) == 1 else
                f"dvc exp run --queue -S train.epochs={{{','.join(map(str, lengths))}}} + dvc queue start -j 1")
        print(f"\n`{what}` after a finished {args.epochs_from}-iteration pipeline "
              f"({'full' if args.full else 'smoke'} sizes)")
        print(f"{'run':<32} {'wall time':>10} {'of scratch':>11}  trainings from a stored state  curve rows reused  "
              "metrics = scratch's")
        print(f"{'from scratch (run store off)':<32} {t_scratch:9.1f}s {100.0:10.1f}%  {restarted:>28}  {0:>17}  yes")
        bad = bool(restarted)
        arms = ([("stored, no score cache", plain)] if plain else []) + [("stored", ext)]
        for label, (t, started, reused, metrics) in arms:
            same = metrics == reference
            print(f"{label:<32} {t:9.1f}s {100 * t / t_scratch:10.1f}%  {started:>23} of {2 * len(lengths)}  "
                  f"{reused:>17}  {'yes' if same else 'NO'}")
            bad |= not same
        if bad:
            sys.exit("bench_extend: a run's metrics differ from scratch's, or scratch started from a stored state")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
