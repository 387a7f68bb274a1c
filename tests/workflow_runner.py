"""Run .github/workflows/cml.yaml's own `run:` steps, in order and as written, on this machine.

A local stand-in for the GPU runner: a bare "origin" repository whose `main` is the project as
committed, a pull-request branch on it (the caller's change, e.g. smoke-size params), a fresh clone of
that branch, and stand-ins for what the runner's actions provide: `uses:` steps are not run (the clone
is the checkout, the project's .venv is the set-up Python), `cml` is a script that records the comment
it would post, and `apt-get` refuses (so bootstrap.sh uses the mirror instead of installing packages).
Each `run:` step runs as GitHub Actions runs it, `bash --noprofile --norc -eo pipefail`, with its
`env:` (secrets become "stand-in").

    python tests/workflow_runner.py WORK_DIR [--params section.key=value ...]
returns (prints) a JSON summary: the steps run with their exit codes, and the recorded comment's path.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

from conftest import project_files, write_files

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / ".github" / "workflows" / "cml.yaml"
GIT = ["git", "-c", "user.name=runner", "-c", "user.email=runner@localhost", "-c", "commit.gpgsign=false"]

CML = """#!/usr/bin/env bash
# Stand-in for CML: records the comment it would post.
set -euo pipefail
echo "$*" >> "$RECORD_DIR/cml-args.txt"
file="${@: -1}"
cp "$file" "$RECORD_DIR/comment.md"
base=$(dirname "$file")
grep -o '!\\[[^]]*\\]([^)]*)' "$file" | sed 's/.*](\\(.*\\))/\\1/' | while read -r img; do
  if [ -f "$base/$img" ]; then out=published; else out=missing; fi
  echo "$img" >> "$RECORD_DIR/$out.txt"
done
touch "$RECORD_DIR/published.txt" "$RECORD_DIR/missing.txt"
"""


def steps(workflow=WORKFLOW):
    """The workflow's steps, in order: (name, run script or None for `uses:`, env)."""
    wf = yaml.safe_load(Path(workflow).read_text())
    (job,) = wf["jobs"].values()
    return [(s.get("name") or s.get("uses"), s.get("run"), s.get("env") or {}) for s in job["steps"]]


def expressions(value):
    """${{ ... }} in an env value: secrets and vars get a stand-in value."""
    return re.sub(r"\$\{\{[^}]*\}\}", "stand-in", str(value))


def set_params(path, overrides):
    params = yaml.safe_load(path.read_text())
    for key, value in overrides.items():
        node = params
        *parents, leaf = key.split(".")
        for p in parents:
            node = node[p]
        node[leaf] = value
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def prepare(work, overrides, files):
    """origin (bare, main = the project), a PR branch with `overrides` in params.yaml, a fresh clone.
    files: conftest.project_files() (code from the working tree, the published run from HEAD)."""
    src = work / "src"
    write_files(files, src)
    run = lambda *a, cwd=src: subprocess.run(list(a), cwd=cwd, check=True, capture_output=True)  # noqa: E731
    run("git", "init", "-q", "-b", "main")
    run(*GIT, "add", "-A")
    run(*GIT, "commit", "-qm", "main")
    run("git", "clone", "-q", "--bare", str(src), str(work / "origin.git"), cwd=work)
    run("git", "remote", "add", "origin", str(work / "origin.git"))
    run("git", "checkout", "-q", "-b", "pr")
    set_params(src / "params.yaml", overrides)
    run(*GIT, "commit", "-qam", "pr: change params")
    run("git", "push", "-q", "origin", "pr")
    clone = work / "clone"
    run("git", "clone", "-q", "--branch", "pr", str(work / "origin.git"), str(clone), cwd=work)
    venv = Path(sys.executable).parents[1]
    os.symlink(venv, clone / ".venv")   # the set-up Python: this venv
    # bootstrap.sh installs into .venv when its stamp is missing, `pip install -e .` included, which would point
    # this venv's `genlab` at the temporary clone: refuse a venv older than the files instead.
    stamp = subprocess.run(["bash", "bootstrap.sh", "stamp"], cwd=clone, check=True, capture_output=True,
                           text=True).stdout.strip()
    if not (clone / stamp).exists():
        raise RuntimeError(f"{venv} was installed from other requirements*.txt/constraints.txt/pyproject.toml "
                           f"(no {Path(stamp).name}): run `bash bootstrap.sh install`, then the tests again")
    bin_dir = work / "bin"
    bin_dir.mkdir()
    (bin_dir / "cml").write_text(CML)
    (bin_dir / "apt-get").write_text("#!/bin/sh\necho 'apt-get: not on this runner' >&2\nexit 100\n")
    for tool in ("cml", "apt-get"):
        (bin_dir / tool).chmod(0o755)
    return clone, bin_dir


def run_workflow(work, overrides, files, env=None, timeout=1800):
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    clone, bin_dir = prepare(work, overrides, files)
    record = work / "record"
    record.mkdir()
    base_env = dict(env or os.environ)
    base_env.update(PATH=f"{bin_dir}{os.pathsep}{base_env.get('PATH', '')}", RECORD_DIR=str(record), CI="true")
    base_env.pop("VIRTUAL_ENV", None)
    done = []
    for name, script, step_env in steps():
        if script is None:
            done.append({"step": name, "skipped": "uses: (provided by the local runner)"})
            continue
        r = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script], cwd=clone,
                           env={**base_env, **{k: expressions(v) for k, v in step_env.items()}},
                           capture_output=True, text=True, timeout=timeout)
        (record / f"step{len(done)}.log").write_text(r.stdout + r.stderr)
        done.append({"step": name, "returncode": r.returncode})
        if r.returncode:
            break
    return {"steps": done, "record": str(record), "clone": str(clone)}


def main():
    import argparse
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("work", help="an empty folder to work in")
    ap.add_argument("--params", nargs="*", default=[], help="section.key=value changes on the PR branch")
    args = ap.parse_args()
    overrides = {k: yaml.safe_load(v) for k, v in (p.split("=", 1) for p in args.params)}
    print(json.dumps(run_workflow(args.work, overrides, project_files()), indent=1))


if __name__ == "__main__":
    main()
