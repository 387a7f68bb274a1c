"""Seed spread (opt-in, not part of `dvc repro`): the default pipeline run with several training seeds as
a queued DVC sweep, and per metric of metrics/evaluate.json the mean and standard deviation over the
seeds. Writes studies/spread/results.json (read by the report stage) and table.md.

    python -m studies.spread              # queue a `dvc exp run` per missing seed, run the queue, collect
    python -m studies.spread collect      # only collect finished experiments (no queueing)
    python -m studies.spread diff main    # a change against REV, metric by metric, beside the seed noise (--md)

The workspace's own run (params.yaml's value of the key; `dvc status` must be clean) is one of the seeds;
every other seed is an experiment whose params.yaml differs from the workspace's in the key only
(`dvc exp run --queue -S train.seed=N`, then `dvc queue start`). See docs/experiments.md, "Seed noise".
"""

import argparse
import difflib
import json
import re
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import yaml

from genlab import config, stage
from genlab.errors import GenlabError
from studies import check_keys, flat_keys

METRICS = "metrics/evaluate.json"


STUDY, DOC = "studies/spread.yaml", "docs/experiments.md, Seed noise"


def read_settings(study, params, path=STUDY):
    """(key, seeds) of the spread: section of the study file at path, checked against params.yaml."""
    check_keys(study, path, "spread", ("key", "seeds"), DOC)
    key = config.get(study, "spread.key", str)
    seeds = config.get(study, "spread.seeds", list)
    if len(seeds) < 3 or len(set(seeds)) != len(seeds) or not all(
            isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds):
        raise GenlabError(f"spread.seeds must be at least three different integers >= 0, got {seeds!r}")
    node = params
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            close = difflib.get_close_matches(key, sorted(flat_keys(params)), n=1)
            raise GenlabError(f"spread.key {key!r} is not a key of params.yaml: "
                              + (f"did you mean {close[0]}?" if close else "name a seed, e.g. train.seed"))
        node = node[part]
    if not isinstance(node, int) or isinstance(node, bool):
        raise GenlabError(f"spread.key {key!r} holds {node!r} in params.yaml, not an integer seed")
    return key, seeds, node


def run(cmd, check=True):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if check and r.returncode != 0:
        raise GenlabError(f"`{' '.join(cmd)}` failed: {(r.stderr or r.stdout).strip().splitlines()[-1:]}")
    return r


def require_clean_workspace():
    """The workspace's metrics must belong to its params and code: `dvc status` of evaluate and every
    stage before it reports nothing (the report, downstream, reads this study's results)."""
    r = run(["dvc", "status", "--with-deps", "evaluate", "--json"])
    if json.loads(r.stdout or "{}"):
        raise GenlabError("the workspace's pipeline is not up to date (`dvc status` lists changes): run `dvc repro` "
                          "first, so that its metrics are the run of its own seed")
    if not Path(METRICS).exists():
        raise GenlabError(f"{METRICS} not found: run `dvc repro` first")


def experiments(params, key, seeds):
    """{seed: (experiment commit, metrics)} of the newest DVC experiment per seed whose params.yaml
    differs from params in key only."""
    from genlab.evaluation.spread import params_differences
    refs = run(["git", "for-each-ref", "refs/exps", "--sort=creatordate",
                "--format=%(objectname) %(refname)"]).stdout.split("\n")
    found = {}
    for line in filter(None, refs):
        sha, ref = line.split(" ", 1)
        if len(ref.split("/")) != 5:   # refs/exps/<xx>/<baseline rest>/<name>; not celery/ or runs/ bookkeeping
            continue
        shown = run(["git", "show", f"{sha}:params.yaml"], check=False)
        metrics = run(["git", "show", f"{sha}:{METRICS}"], check=False)
        if shown.returncode or metrics.returncode:
            continue
        p = yaml.safe_load(shown.stdout)
        value = p
        for part in key.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if value in seeds and not params_differences(p, params, ignore={key}):
            found[value] = (sha, json.loads(metrics.stdout))   # sorted oldest first: the newest wins
    return found


def start_queue():
    """`dvc queue start -j 1`: one experiment at a time."""
    run(["dvc", "queue", "start", "-j", "1"])


def no_worker(status):
    """True when `dvc queue status` says no worker is running or waiting ("Worker status: 0 active, 0 idle")."""
    m = re.search(r"Worker status:\s*(\d+)\s*active,\s*(\d+)\s*idle", status)
    return bool(m) and m.groups() == ("0", "0")


def wait_for_queue(poll=10.0, restarts=3):
    """Until `dvc queue status` lists no queued or running task; returns its last output. DVC's worker can
    stop between two experiments with tasks still queued (seen with DVC 3.67: the second of two ~12-minute
    experiments stayed "Queued" with "0 active, 0 idle"); then it is started again, at most `restarts` times,
    instead of waiting for ever."""
    while True:
        status = run(["dvc", "queue", "status"]).stdout
        if not any(word in status for word in ("Queued", "Running")):
            return status
        if "Running" not in status and no_worker(status):
            if restarts <= 0:
                raise GenlabError("DVC's queue worker keeps stopping with experiments queued: run `dvc queue start` "
                                  "and then `python -m studies.spread collect`")
            restarts -= 1
            print("spread: the queue's worker stopped with experiments still queued: starting it again",
                  file=sys.stderr, flush=True)
            start_queue()
        time.sleep(poll)


def collect(params, key, seeds, own):
    """{seed: {"rev", "metrics"}} for every seed: the workspace's own and the experiments'."""
    runs = {own: {"rev": "workspace " + run(["git", "rev-parse", "--short", "HEAD"]).stdout.strip(),
                  "metrics": json.loads(Path(METRICS).read_text())}} if own in seeds else {}
    for seed, (sha, metrics) in experiments(params, key, seeds).items():
        if seed != own:
            runs[seed] = {"rev": sha[:10], "metrics": metrics}
    return runs


def write_results(out, key, seeds, runs, params, started):
    from genlab.evaluation.spread import RULE, summarize
    from genlab.io import atomic_dir, write_json
    from genlab.outputs.report import spread_table
    results = {"date": date.today().isoformat(), "command": "python -m studies.spread", "key": key,
               "seeds": sorted(runs), "rule": RULE,
               "runs": {str(s): runs[s] for s in sorted(runs)},
               "stats": summarize({s: runs[s]["metrics"] for s in sorted(runs)}),
               "params": params}
    if started is not None:
        results["seconds"] = round(time.perf_counter() - started)
    with atomic_dir(out) as tmp:
        write_json(Path(tmp) / "results.json", results)
        (Path(tmp) / "table.md").write_text(spread_table(results) + "\n")
    print(spread_table(results))
    print(f"spread: {len(runs)} seeds of {key}; results -> {out}")


def diff(rev, spread_path, md):
    """Print the metrics' change from rev to the workspace with the seed sd and a verdict per metric."""
    from genlab.evaluation.spread import RULE, diff_rows, params_differences
    if not Path(spread_path).exists():
        raise GenlabError(f"{spread_path} not found: run `python -m studies.spread` first")
    spread = json.loads(Path(spread_path).read_text())
    shown = run(["git", "show", f"{rev}:params.yaml"], check=False)
    if shown.returncode:
        raise GenlabError(f"params.yaml of {rev!r} cannot be read: name a git revision (branch, tag or commit)")
    differ = params_differences(yaml.safe_load(shown.stdout), spread["params"], ignore={spread["key"]})
    changes = json.loads(run(["dvc", "metrics", "diff", rev, "--json"]).stdout or "{}")
    title = f"Seed noise: changes from {rev} beside the spread over {len(spread['seeds'])} training seeds"
    if differ:
        print(f"{title}: not available, the spread ({spread_path}) was measured at params that differ from "
              f"{rev}'s in {', '.join(differ[:8])}{' …' if len(differ) > 8 else ''}")
        return
    rows = diff_rows(changes, spread["stats"])
    if not rows:
        print(f"{title}: no metric of {METRICS} changed.")
        return
    head = ["metric", rev, "workspace", "change", "seed sd", "verdict"]
    cells = [[k, f"{o:.4g}", f"{n:.4g}", f"{c:+.4g}", "–" if sd is None else f"{sd:.3g}", v or "no spread"]
             for k, o, n, c, sd, v in rows]
    if md:
        print(f"{title} ({spread['date']}).\n")
        print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
        for c in cells:
            print("| " + " | ".join(c) + " |")
        print(f"\n{RULE}")
    else:
        print(title)
        widths = [max(len(r[i]) for r in [head, *cells]) for i in range(len(head))]
        for c in [head, *cells]:
            print("  ".join(v.ljust(w) for v, w in zip(c, widths)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("action", nargs="?", default="run", choices=["run", "collect", "diff"])
    ap.add_argument("rev", nargs="?", help="diff: the git revision to compare the workspace with (e.g. main)")
    ap.add_argument("--md", action="store_true", help="diff: a Markdown table (the CI comment)")
    ap.add_argument("--study", default=STUDY, help="the spread's own numbers")
    ap.add_argument("--out", default="studies/spread", help="output folder (results.json, table.md)")
    args = ap.parse_args()
    if args.action == "diff":
        if not args.rev:
            raise GenlabError("diff needs a revision: python -m studies.spread diff main")
        return diff(args.rev, Path(args.out) / "results.json", args.md)
    params = stage.read_params()
    key, seeds, own = read_settings(stage.read_params(args.study), params, args.study)
    require_clean_workspace()
    started = None
    runs = collect(params, key, seeds, own)
    missing = [s for s in seeds if s not in runs]
    if missing and args.action == "run":
        started = time.perf_counter()
        for seed in missing:
            run(["dvc", "exp", "run", "--queue", "-S", f"{key}={seed}"])
            print(f"spread: queued {key}={seed}", file=sys.stderr, flush=True)
        print("spread: `dvc queue start` running one experiment at a time (follow it with `dvc queue status` "
              "and `dvc queue logs <name>`)", file=sys.stderr, flush=True)
        start_queue()
        wait_for_queue()
        runs = collect(params, key, seeds, own)
        missing = [s for s in seeds if s not in runs]
        if missing:
            raise GenlabError(f"no finished experiment for {key} = {missing}: see `dvc queue status` and "
                              "`dvc queue logs <name>` for the failure")
    elif missing:
        raise GenlabError(f"no finished experiment for {key} = {missing}: run `python -m studies.spread` to queue them")
    write_results(args.out, key, seeds, runs, params, started)


if __name__ == "__main__":
    stage.run(main)
