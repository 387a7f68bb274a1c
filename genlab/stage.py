"""Helpers shared by the stage scripts: run a stage's main() with user-facing errors."""

import errno
import json
import os
import platform
import signal
import sqlite3
import sys
from pathlib import Path

import yaml

from genlab.errors import GenlabError

# What check_params validated in this run: the digest of params.yaml's values (dvc.yaml: its output).
PARAMS_RECORD = "data/params-validated.json"
PARAMS_CHANGED = ("params.yaml changed while the pipeline ran (it is not what check_params validated at the start "
                  "of this run: another `dvc exp run` or an edit wrote it), so this stage stopped and DVC records "
                  "nothing of it: set params.yaml to the values you want (`git checkout params.yaml` for the "
                  "committed ones) and run `dvc exp run` (or `dvc repro`) again")
_checked = []   # the digest read_params compared, for the same check at the stage's end (run)


def params_digest(params):
    """The digest of params.yaml's values (comments and layout aside), as check_params records it."""
    from genlab.identity import digest
    return digest(params)


def _validated(record=PARAMS_RECORD):
    """The digest check_params recorded, when a stage runs under DVC (DVC_STAGE set) and the record exists;
    None otherwise (a stage run by hand uses params.yaml as it is)."""
    if not os.environ.get("DVC_STAGE") or not Path(record).is_file():
        return None
    try:
        return str(json.loads(Path(record).read_text())["params_digest"])
    except (OSError, ValueError, KeyError, TypeError):
        raise GenlabError(f"{record} is unreadable: run `dvc repro` (check_params writes it)") from None


def check_unchanged(params):
    """Under DVC: refuse params that are not the ones check_params validated in this run (issue 26)."""
    validated = _validated()
    if validated is not None and params_digest(params) != validated:
        raise GenlabError(PARAMS_CHANGED)
    if validated is not None:
        _checked.append(validated)


def read_params(path="params.yaml"):
    """Read params.yaml as a dict (stages call this; the library itself never does). Under DVC, the
    pipeline's params.yaml must hold what check_params validated at the start of the run (check_unchanged)."""
    params = load_params(path)
    if Path(path) == Path("params.yaml"):    # not a study's own file
        check_unchanged(params)
    return params


def load_params(path="params.yaml"):
    """params.yaml as a dict, with no check against check_params's record (check_params itself)."""
    p = Path(path)
    if not p.exists():
        raise GenlabError(f"{path} not found: run the stage from the project root (dvc repro does)")
    try:
        params = yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        raise GenlabError(f"{path} is not valid YAML ({e.__class__.__name__}): fix the file") from None
    if not isinstance(params, dict):
        raise GenlabError(f"{path} must hold a mapping of sections, got {type(params).__name__}")
    return params


def limit_threads():
    """GENLAB_THREADS=N caps the CPU threads of the stage: TensorFlow's pools (intra- and inter-op) and
    numpy's, scipy's and scikit-learn's (BLAS, OpenMP), e.g. 1 per job when `dvc queue start -j 2` runs two
    experiments on two cores. Unset: each library's default (a thread per core)."""
    value = os.environ.get("GENLAB_THREADS", "")
    if not value:
        return
    if not value.isdigit() or int(value) < 1:
        raise GenlabError(f"GENLAB_THREADS must be a positive integer, got {value!r}: unset it or fix it")
    # TensorFlow reads these when it creates its thread pools, i.e. at its first operation; a BLAS or OpenMP
    # library loaded later reads the last two as it loads.
    for var in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = value
    # The ones already loaded (numpy's OpenBLAS: a stage imports numpy before it runs) read them only as they
    # loaded, so they are capped where they are. Held for the whole process, like the variables above.
    from threadpoolctl import threadpool_limits
    threadpool_limits(int(value))


_OS_HINTS = {
    errno.ENOSPC: "free some disk space",
    errno.EDQUOT: "free some disk space (the disk quota is exceeded)",
    errno.EFBIG: "free some disk space or raise the file-size limit (ulimit -f)",
    errno.EROFS: "make the output folder writable",
    errno.EACCES: "make the output folder writable (or fix the permissions of the file named)",
    errno.EPERM: "make the output folder writable (or fix the permissions of the file named)",
}


def os_error_line(e):
    """One line for an OSError (disk full, read-only folder, ...): what failed, where, what to do."""
    what = " ".join((e.strerror or str(e) or type(e).__name__).split())
    if e.errno is None:  # numpy, h5py: no errno, only a message
        what = f"a file could not be written or read ({what})"
    where = f" ({e.filename})" if e.filename else ""
    hint = _OS_HINTS.get(e.errno, "the disk may be full or the folder read-only: free some disk space or "
                                  "make the output folder writable")
    return f"{what}{where}: {hint}, then run the stage again; no partial output was kept"


def quiet_native_logs():
    """Keep TensorFlow's native (C++) log lines off stderr, so a stage's stderr holds only its own
    lines on every CPU. GENLAB_TF_LOG=1 leaves them on.

    TF_CPP_MIN_LOG_LEVEL is not enough: some lines (oneDNN's notice on Intel CPUs, absl's
    "All log messages before absl::InitializeLog()") are written before TensorFlow reads it. So the
    process's file descriptor 2, which native code writes to, goes to /dev/null, and Python's
    sys.stderr (tracebacks, warnings, the stage's own lines) keeps the original stream on a copy of it.
    Call before TensorFlow is imported; stages import it inside main(), after this has run."""
    if os.environ.get("GENLAB_TF_LOG", "") not in ("", "0"):
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.stderr.flush()
    own = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
    sys.stderr = os.fdopen(own, "w", buffering=1, errors="backslashreplace")


def pin_cpu_kernels():
    """TensorFlow's oneDNN kernels on every x86-64 CPU, unless TF_ENABLE_ONEDNN_OPTS is set.

    TensorFlow turns them on by itself only on CPUs with AVX-512 VNNI or BF16 (recent Xeons, EPYC
    Zen 4), so two machines could run different kernels and get different last bits; pinned, every x86
    machine runs the same kernel library. Measured with `benchmarks/bench_train.py --onednn`: the conv
    GAN 1.11x and the conv VAE 1.33x faster with them on (benchmarks/README.md). Call before importing TF."""
    if platform.machine().lower() in ("x86_64", "amd64"):
        os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")


def sigterm_as_interrupt():
    """Make SIGTERM (what `kill` and job schedulers send) raise KeyboardInterrupt, like Ctrl-C, so a
    training stage writes its checkpoint before it stops. Call from a stage's main thread."""
    signal.signal(signal.SIGTERM, signal.default_int_handler)


def run(main):
    """Call main(); a GenlabError, or an OSError such as a full disk or a read-only folder, becomes
    one line on stderr and exit status 1 (outputs are written atomically, so none is left partial)."""
    quiet_native_logs()
    pin_cpu_kernels()
    try:
        limit_threads()
        main()
        if _checked and params_digest(load_params()) != _checked[0]:   # changed while the stage ran
            raise GenlabError(PARAMS_CHANGED)
    except GenlabError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    except OSError as e:
        print(f"error: {os_error_line(e)}", file=sys.stderr)
        sys.exit(1)
    except sqlite3.OperationalError as e:  # DVC's state database (opened by dvclive) on a full disk
        print(f"error: {os_error_line(OSError(None, f'a database write failed: {e}'))}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
