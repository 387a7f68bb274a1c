"""GENLAB_THREADS and numpy's BLAS: two jobs at once, as `GENLAB_THREADS=1 dvc queue start -j 2` runs them.

    .venv/bin/python benchmarks/bench_threads.py [--jobs 2] [--repeat 3] [--queries 3000] [--data DIR]

Each job is a process that loads numpy first, as every stage does, then goes through genlab.stage.run (which
applies GENLAB_THREADS) and computes evaluate's nearest-training distances in pixels: --queries images
against the 60,000 real Fashion-MNIST training images of --data (the folder holding fashion-mnist/*.gz;
default ../shared/data), with genlab.evaluation.metrics.knn_sq_dists, k = 1 (the evaluation protocol's
10,000 take ~3x as long). Arms, alternated --repeat times: GENLAB_THREADS unset (every job
a BLAS pool of a thread per core) and GENLAB_THREADS=1. Before threadpoolctl was applied in limit_threads, the
capped arm's BLAS pools were the unset arm's (numpy had loaded its OpenBLAS before the cap was set). Prints each
job's seconds, the arm's wall time and the BLAS pool sizes the jobs reported.
"""

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data"

JOB = """
import sys, time
import numpy as np                                   # first, as in a stage
from threadpoolctl import threadpool_info
from genlab import stage
from genlab.data.readers import read_idx
from genlab.evaluation.metrics import knn_sq_dists

def main():
    ref = read_idx(sys.argv[1]).reshape(60000, -1).astype(np.float32) / 255.0
    query = ref[::-1][:int(sys.argv[2])] + np.float32(0.01)
    t = time.perf_counter()
    knn_sq_dists(query, ref, 1)
    pools = sorted({i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"})
    print(f"{time.perf_counter() - t:.2f} {pools}")

stage.run(main)
"""


def arm(threads, jobs, queries, data):
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                                             "GENLAB_THREADS")}
    if threads:
        env["GENLAB_THREADS"] = threads
    env["PYTHONPATH"] = str(ROOT)
    t = time.perf_counter()
    images = data / "fashion-mnist" / "train-images-idx3-ubyte.gz"
    procs = [subprocess.Popen([sys.executable, "-c", JOB, str(images), str(queries)],
                              env=env, stdout=subprocess.PIPE, text=True) for _ in range(jobs)]
    outs = [p.communicate()[0].split(maxsplit=1) for p in procs]
    wall = time.perf_counter() - t
    if any(p.returncode for p in procs):
        sys.exit("error: a job failed (see above)")
    return wall, [float(o[0]) for o in outs], outs[0][1].strip()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--queries", type=int, default=3000)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    a = ap.parse_args()
    print(f"{a.jobs} jobs at once on {os.cpu_count()} cores, {a.queries} x 60,000 nearest-training distances each")
    print("| arm | run | wall s | each job's s | BLAS threads per job |\n|---|---|---|---|---|")
    for r in range(a.repeat):
        for name, threads in (("GENLAB_THREADS unset", ""), ("GENLAB_THREADS=1", "1")):
            wall, each, pools = arm(threads, a.jobs, a.queries, a.data)
            print(f"| {name} | {r + 1} | {wall:.2f} | {' / '.join(f'{s:.2f}' for s in each)} | {pools} |",
                  flush=True)


if __name__ == "__main__":
    main()
