"""The fault matrix of issue 7: every fault is injected into the real stages (mostly `dvc repro` in a
temporary clone) and the outcome asserted.

  - Ctrl-C, SIGTERM, kill -9 to `dvc repro` of train_gan / train_vae / train_evaluator (3 x 3), then a
    truncated newest checkpoint (3): resume from the last good point, same final step count
  - disk full (file-size limit) in normalize / train_evaluator / train_gan (3); ENOSPC injected into
    the write, fsync and rename of atomic files and folders (3 x 2); read-only output folder (2)
  - downloads cut mid-body (with a length, chunked: retried; without a length: refused, gzip or raw),
    fetch killed mid-download (5)
  - two `dvc repro` at once (1); divergence with the previous results restored (1)
  - 606 mutated, forged or empty IDX / IDX.gz / npz / compressed npz files in a child interpreter
  - the evaluator stopped mid-run and resumed at the library level, its newest checkpoint damaged or of
    other params (3): bit-identical weights
  - two full smoke-size pipeline runs: byte-identical metrics files (1)

Most tests share one clone whose data stages were reproduced on a small real slice (3,000 training
+ 1,000 test Fashion-MNIST images, served as a user .npz from a file:// URL) with tiny networks and
a checkpoint every few iterations; each test copies that clone, so the tests are independent.
"""

import errno
import functools
import gzip
import hashlib
import http.server
import io
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

import conftest
from conftest import ROOT, copy_project, tool_env
from genlab.params import Evaluator

ITERATIONS, EVAL_EPOCHS = 400, 8
FAULT_PARAMS = {
    "train": {"epochs": ITERATIONS, "batch_size": 32, "log_every": 20, "ckpt_every": 20, "snapshot_every": 100},
    # convolutional nets: no XLA compilation on a CPU, so every run starts fast
    "gan": {"arch": "dcgan", "filters": 4, "latent_dim": 16},
    "vae": {"arch": "conv", "filters": 4, "latent_dim": 4},
    "evaluator": {"epochs": EVAL_EPOCHS, "warmup_epochs": 1, "filters": [4, 8], "feature_dim": 16,
                  "batch_size": 64},
    # within the slice's 1,000 test images: check_data, run before every training stage, checks them
    "sample": {"n": 1000},
    "evaluate": {"n_samples": 1000, "kid_subset_size": 200, "curve_n": 200, "pixel_detector_epochs": 1},
    "cas": {"n": 1000, "epochs": 2},
}
STAGES = ("train_gan", "train_vae", "train_evaluator")
MODEL = {"train_gan": "models/gan", "train_vae": "models/vae", "train_evaluator": "models/evaluator"}


def set_params(proj, changes):
    params = yaml.safe_load((proj / "params.yaml").read_text())
    for section, values in changes.items():
        params[section].update(values)
    (proj / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


dvc = functools.partial(conftest.dvc, check=True)   # every dvc call here must succeed unless check=False


@pytest.fixture(scope="session")
def prepared(tmp_path_factory, fmnist_raw):
    """A clone with fetch, validate, normalize and check_data reproduced on the small slice and FAULT_PARAMS
    set (check_data too, so an interrupted training run leaves dvc.lock as it was). Built once per test run
    (shared_once); read-only: tests work on a copy (clone)."""
    def build(root):
        root.mkdir(parents=True)
        npz = root / "small.npz"
        np.savez(npz, x_train=fmnist_raw["x_train"][:3000], y_train=fmnist_raw["y_train"][:3000],
                 x_test=fmnist_raw["x_test"][:1000], y_test=fmnist_raw["y_test"][:1000])
        digest = hashlib.sha256(npz.read_bytes()).hexdigest()
        proj = copy_project(root / "proj")
        set_params(proj, {"data": {"name": "url", "url": npz.as_uri(), "sha256": digest}, **FAULT_PARAMS})
        dvc(proj, "repro", "check_data")
        return str(proj)
    return Path(conftest.shared_once(tmp_path_factory, "faults-prepared", build))


@pytest.fixture
def clone(prepared, tmp_path):
    """A private copy of the prepared clone (its DVC cache and git history included)."""
    dest = tmp_path / "proj"
    shutil.copytree(prepared, dest, symlinks=True)
    return dest


def tmp_leftovers(proj, outside=()):
    """Temporary siblings of atomic writes (`.<name>.tmp-*`) anywhere but .dvc/, .git/ and `outside`."""
    skip = (".dvc", ".git") + tuple(outside)
    return [p for p in proj.rglob("*.tmp-*") if p.relative_to(proj).parts[0] not in skip
            and not str(p.relative_to(proj)).startswith(tuple(outside))]


def group_alive(pgid):
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


def progress(proj, stage):
    """The newest resume point on disk: the newest checkpoint's iteration (one engine: every training)."""
    d = proj / "checkpoints" / stage
    steps = [int(p.name[5:]) for p in d.glob("ckpt-*") if p.name[5:].isdigit()] if d.is_dir() else []
    return max(steps, default=0)


def default_ctrl_c():
    """preexec_fn: SIGINT back to its default action. A shell that starts the test suite in the
    background (`bash .ci/run &`, as CI harnesses do) makes it ignored, an ignored signal stays ignored
    across exec, and `dvc repro` would then never see the Ctrl-C the test sends."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def interrupt(proj, stage, sig, after):
    """`dvc repro stage` in its own process group; once a resume point newer than `after` is on disk,
    send `sig` to the whole group (dvc and the stage), wait until every process of it has exited."""
    proc = subprocess.Popen(["dvc", "repro", stage], cwd=proj, env=tool_env(), start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=default_ctrl_c)
    deadline = time.time() + 240
    while progress(proj, stage) <= after and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, "the stage finished (or failed) before it could be interrupted:\n" + proc.stdout.read()
    os.killpg(proc.pid, sig)
    out, _ = proc.communicate(timeout=120)
    deadline = time.time() + 60
    while group_alive(proc.pid) and time.time() < deadline:   # the stage may outlive a killed dvc
        time.sleep(0.05)
    assert not group_alive(proc.pid)
    assert proc.returncode != 0, out
    return out


def resumed_from(stage, out):
    total = r"\d+" if stage == "train_evaluator" else ITERATIONS
    found = re.findall(rf"{stage}: resuming from iteration (\d+) of {total}", out)
    assert len(found) == 1, out
    return int(found[0])


def corrupt_newest(proj, stage):
    """Truncate the newest resume point; return the point training must fall back to."""
    d = proj / "checkpoints" / stage
    ckpts = sorted(d.glob("ckpt-*"))
    state = ckpts[-1] / "state.npz"
    state.write_bytes(state.read_bytes()[: state.stat().st_size // 2])
    return int(ckpts[-2].name[5:])


@pytest.mark.slow   # dvc and stage subprocesses in a clone
@pytest.mark.parametrize("stage", STAGES)
def test_interrupted_training_resumes_and_finishes(clone, stage):
    """SIGINT, then SIGTERM, then SIGKILL to `dvc repro <stage>`: each next run resumes from the last
    resume point (> 0), an interrupted run leaves no output DVC could cache, a truncated newest
    checkpoint is reported and the previous one used, and the last run reaches the full step count."""
    proj = clone
    lock = (proj / "dvc.lock").read_text()
    model = proj / MODEL[stage]
    point, outputs = 0, []
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
        out = interrupt(proj, stage, sig, after=point)
        outputs.append(out)
        if point:
            assert resumed_from(stage, out) == point
        if sig != signal.SIGKILL:
            # a checkpoint is saved on the way out, unless the signal came just after one was written
            now = progress(proj, stage)
            assert (f"{stage}: interrupted at iteration {now}; checkpoint saved, run the stage again to resume" in out
                    or f"{stage}: interrupted at iteration {now}; run the stage again to resume from its "
                       f"checkpoint at iteration {now}" in out), out
        saved = progress(proj, stage)
        assert saved > point
        point = saved
        assert not model.exists()                       # DVC removed it; nothing half-written
        assert not tmp_leftovers(proj, outside=["checkpoints"])
        assert (proj / "dvc.lock").read_text() == lock  # DVC recorded (and cached) nothing
    fallback = corrupt_newest(proj, stage)
    r = dvc(proj, "repro", stage)
    out = r.stdout + r.stderr
    outputs.append(out)
    assert re.search(r"warning: checkpoint \S+ is corrupt", out), out
    assert resumed_from(stage, out) == fallback > 0
    assert not any("Traceback" in o for o in outputs), outputs
    assert not tmp_leftovers(proj)
    assert "up to date" in dvc(proj, "status", stage).stdout
    if stage == "train_evaluator":
        info = json.loads((model / "evaluator.json").read_text())
        assert [h["epoch"] for h in info["history"]] == list(range(1, EVAL_EPOCHS + 1))
        assert json.loads((proj / "metrics" / "evaluator.json").read_text())["test_accuracy"] > 0.5
    else:
        live = proj / "dvclive" / stage
        assert json.loads((live / "metrics.json").read_text())["step"] == ITERATIONS
        first = "d_loss" if stage == "train_gan" else "loss"
        tsv = (live / "plots" / "metrics" / f"{first}.tsv").read_text().splitlines()
        assert [int(line.split("\t")[0]) for line in tsv[1:]] == list(range(20, ITERATIONS + 1, 20))
        assert (model / "config.json").exists()


HELD = """
import os, signal, time
from genlab.training.loop import interrupts_deferred
signal.signal(signal.SIGINT, signal.default_int_handler)   # a background job starts with Ctrl-C ignored
seen = []
try:
    with interrupts_deferred() as check:
        os.kill(os.getpid(), signal.SIGINT)
        try:
            time.sleep(0.2)              # where TensorFlow's Python code would run: a bare `except:`
        except BaseException as e:
            seen.append("landed in the bare except: " + type(e).__name__)
        seen.append("the chunk ended")
        check()
        seen.append("went on after check()")
except KeyboardInterrupt:
    seen.append("KeyboardInterrupt at check()")
seen.append(signal.getsignal(signal.SIGINT) is signal.default_int_handler)
signal.signal(signal.SIGINT, signal.SIG_IGN)
with interrupts_deferred():
    seen.append(signal.getsignal(signal.SIGINT) is signal.SIG_IGN)
    seen.append(signal.getsignal(signal.SIGTERM) is signal.SIG_DFL)
print(seen)
"""


@pytest.mark.slow   # TensorFlow in a process of its own
def test_an_interrupt_waits_for_the_end_of_the_chunk():
    """Ctrl-C raised where it lands could fall inside TensorFlow's Python code, whose bare `except:` turned it
    into a TypeError (train_evaluator died with a traceback and no checkpoint, 2026-12-05): the training holds
    it until its chunk ends and raises it there; handlers that do not raise (ignored, SIGTERM's default) stay."""
    r = subprocess.run([sys.executable, "-c", HELD], cwd=ROOT, capture_output=True, text=True,
                       env=tool_env(PYTHONPATH=str(ROOT)))
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip().splitlines()[-1] == str(["the chunk ended", "KeyboardInterrupt at check()", True, True,
                                                     True]), r.stdout


# ---- disk full, read-only output folder ------------------------------------------------------------

STAGE_ARGS = {
    "normalize": ["--raw", "data/raw", "--validated", "data/validated.json", "--out", "data/processed"],
    "train_gan": ["--data", "data/processed", "--model", "models/gan", "--checkpoints", "checkpoints/train_gan",
                  "--live", "dvclive/train_gan"],
    "train_evaluator": ["--data", "data/processed", "--model", "models/evaluator", "--checkpoints",
                        "checkpoints/train_evaluator", "--metrics", "metrics/evaluator.json"],
}


def run_stage(proj, stage, preexec_fn=None):
    return subprocess.run([sys.executable, "-m", f"stages.{stage}", *STAGE_ARGS[stage]], cwd=proj, env=tool_env(),
                          capture_output=True, text=True, preexec_fn=preexec_fn, timeout=600)


def file_size_limit(nbytes):
    """preexec_fn: a file-size limit (ulimit -f). Writing beyond it fails with EFBIG (Python ignores
    SIGXFSZ), the same code path as a full disk (ENOSPC)."""
    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, nbytes))


def snapshot(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(Path(folder).rglob("*")) if p.is_file()}


def one_error_line(r, *fragments):
    assert r.returncode == 1, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) >= 1 and lines[-1].startswith("error: "), r.stderr
    assert "Traceback" not in r.stderr, r.stderr
    for fragment in fragments:
        assert fragment in lines[-1], lines[-1]
    return lines[-1]


@pytest.mark.slow   # dvc and stage subprocesses in a clone
@pytest.mark.parametrize("stage, limit, message", [
    ("normalize", 1 << 20, "a file could not be written"),          # np.save of the training images
    ("train_evaluator", 100_000, "File too large"),                 # a checkpoint write (np.savez)
    ("train_gan", 300_000, "the model models/gan needs about"),    # checkpoints fit, the model does not
])
def test_disk_full_is_one_clear_line_and_leaves_nothing_partial(clone, stage, limit, message):
    before = snapshot(clone / "data" / "processed")
    r = run_stage(clone, stage, preexec_fn=file_size_limit(limit))
    line = one_error_line(r, message, "free some disk space", "then run the stage again")
    assert not tmp_leftovers(clone), line
    assert snapshot(clone / "data" / "processed") == before      # the previous output is intact
    assert not (clone / MODEL.get(stage, "models/none")).exists()
    if stage == "train_gan":  # its checkpoints were written whole: with room again, only the model is left
        r = run_stage(clone, stage)
        assert r.returncode == 0 and f"resuming from iteration {ITERATIONS} of {ITERATIONS}" in r.stderr, r.stderr
        assert (clone / "models" / "gan" / "config.json").exists()


def drop_dac_override():
    """preexec_fn: as root, give up CAP_DAC_OVERRIDE/CAP_DAC_READ_SEARCH so file modes apply."""
    if os.geteuid() == 0:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        for cap in (1, 2):                       # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
            if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP: gone after exec
                raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


@pytest.mark.slow   # dvc and stage subprocesses in a clone
@pytest.mark.parametrize("stage, folder", [("normalize", "data"), ("train_evaluator", "checkpoints")])
def test_read_only_output_folder_is_one_clear_line(clone, stage, folder):
    before = snapshot(clone / "data" / "processed")
    (clone / folder).mkdir(exist_ok=True)
    os.chmod(clone / folder, 0o555)
    try:
        r = run_stage(clone, stage, preexec_fn=drop_dac_override)
    finally:
        os.chmod(clone / folder, 0o755)
    if r.returncode == 0:
        pytest.skip("this user can write into read-only folders")
    one_error_line(r, "Permission denied", "make the output folder writable")
    assert snapshot(clone / "data" / "processed") == before
    assert not tmp_leftovers(clone) and not (clone / "models" / "evaluator").exists()


@pytest.mark.parametrize("fail_at", ["write", "fsync", "rename"])
def test_atomic_writes_leave_nothing_when_the_disk_fills(tmp_path, monkeypatch, fail_at):
    """ENOSPC injected into each step of genlab.io's atomic writes: the old file/folder stays, no temp."""
    from genlab import io as gio
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "old.txt").write_text("old")
    (tmp_path / "m.json").write_text('{"old": 1}')

    def full(*args, **kwargs):
        if args and hasattr(args[-1], "write"):
            args[-1].write("{")                      # half a file, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")
    if fail_at == "write":
        monkeypatch.setattr(gio.json, "dump", full)
    elif fail_at == "fsync":
        monkeypatch.setattr(gio.os, "fsync", full)
    else:
        monkeypatch.setattr(gio.os, "replace", full)
        monkeypatch.setattr(Path, "rename", full)
    with pytest.raises(OSError, match="No space left"):
        gio.write_json(tmp_path / "m.json", {"new": 1})
    with pytest.raises(OSError, match="No space left"):
        with gio.atomic_dir(tmp_path / "out") as d:
            (d / "new.txt").write_text("new")
            if fail_at != "rename":
                full()
    monkeypatch.undo()
    assert (tmp_path / "m.json").read_text() == '{"old": 1}'
    assert snapshot(tmp_path / "out") == {"old.txt": b"old"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "out"]


def test_os_errors_become_one_line():
    from genlab.stage import os_error_line
    assert os_error_line(OSError(errno.ENOSPC, "No space left on device", "models/gan")) == (
        "No space left on device (models/gan): free some disk space, then run the stage again; "
        "no partial output was kept")
    assert os_error_line(OSError("2116800 requested and\n249968 written")).startswith(
        "a file could not be written or read (2116800 requested and 249968 written): the disk may be full")


# ---- interrupted downloads ---------------------------------------------------------------------------

class _Flaky(http.server.BaseHTTPRequestHandler):
    """Serves files[path]; the first len(plan[path]) requests of a path misbehave as planned:
    "length": Content-Length sent, the connection closed after half the body;
    "chunked": chunked encoding, closed after half the body without the last chunk;
    "close": no length (the body ends when the connection closes), closed after half the body;
    "stall": half the body, then wait until `release` is set."""
    files, plan, release = {}, {}, threading.Event()
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        body = self.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        todo = self.plan.get(self.path) or ["ok"]
        how = todo.pop(0) if self.plan.get(self.path) else "ok"
        half = body[: len(body) // 2]
        self.send_response(200)
        if how == "chunked":
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(half), half))
        elif how == "close":
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(half)
        else:
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body if how == "ok" else half)
            if how == "stall":
                self.wfile.flush()
                self.release.wait(60)
        self.close_connection = True


@pytest.fixture
def flaky_server(tmp_path):
    _Flaky.files, _Flaky.plan, _Flaky.release = {}, {}, threading.Event()
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Flaky)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    _Flaky.release.set()
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def small_npz(fmnist_raw):
    import io as pyio
    buf = pyio.BytesIO()
    np.savez(buf, x_train=fmnist_raw["x_train"][:200], y_train=fmnist_raw["y_train"][:200],
             x_test=fmnist_raw["x_test"][:50], y_test=fmnist_raw["y_test"][:50])
    return buf.getvalue()


@pytest.mark.parametrize("how", ["length", "chunked"])
def test_download_cut_mid_body_is_retried(flaky_server, small_npz, tmp_path, monkeypatch, how):
    """Cut twice in the middle of the body, then served whole: two retries, then the verified file."""
    from genlab.data import fetch as fetch_mod
    from genlab.data.readers import load_raw
    monkeypatch.setattr(fetch_mod, "BACKOFF_S", 0.01)
    _Flaky.files = {"/d.npz.gz": gzip.compress(small_npz)}
    _Flaky.plan = {"/d.npz.gz": [how, how]}
    logs = []
    digest = hashlib.sha256(small_npz).hexdigest()
    fetch_mod.fetch("url", tmp_path / "raw", url=f"{flaky_server}/d.npz.gz", sha256=digest, mirror="", log=logs.append)
    assert sum("retrying" in m for m in logs) == 2, logs
    assert len(load_raw(tmp_path / "raw")["y_train"]) == 200
    assert hashlib.sha256((tmp_path / "raw" / "dataset.npz").read_bytes()).hexdigest() == digest


def test_download_cut_without_length_is_refused_then_the_next_run_succeeds(flaky_server, small_npz, tmp_path,
                                                                          monkeypatch):
    """A body whose end cannot be told from a closed connection: the truncated gzip (or the payload
    digest) gives it away; nothing is written, and the next run, with the server healed, succeeds."""
    from genlab.data import fetch as fetch_mod
    from genlab.errors import GenlabError
    monkeypatch.setattr(fetch_mod, "BACKOFF_S", 0.01)
    digest = hashlib.sha256(small_npz).hexdigest()
    out = tmp_path / "raw"
    for blob, expect in ((gzip.compress(small_npz), "corrupt or truncated gzip"), (small_npz, "has sha256")):
        _Flaky.files = {"/d.npz.gz": blob}
        _Flaky.plan = {"/d.npz.gz": ["close"]}
        with pytest.raises(GenlabError, match=expect):
            fetch_mod.fetch("url", out, url=f"{flaky_server}/d.npz.gz", sha256=digest, mirror="", log=lambda m: None)
        assert not out.exists() and not list(tmp_path.glob(".raw.tmp-*"))
    fetch_mod.fetch("url", out, url=f"{flaky_server}/d.npz.gz", sha256=digest, mirror="", log=lambda m: None)
    assert hashlib.sha256((out / "dataset.npz").read_bytes()).hexdigest() == digest


@pytest.mark.slow   # dvc and stage subprocesses in a clone
def test_fetch_killed_mid_download_keeps_the_old_data_and_the_next_run_cleans_up(clone, flaky_server, fmnist_raw):
    """kill -9 of the fetch stage while the body is arriving: data/raw is untouched (the download goes
    to a temporary sibling); the next run removes that leftover and fetches the verified file."""
    import io as pyio
    buf = pyio.BytesIO()   # 4.7 MB: more than the 1 MiB read size, so part of it reaches the disk
    np.savez(buf, x_train=fmnist_raw["x_train"][:6000], y_train=fmnist_raw["y_train"][:6000],
             x_test=fmnist_raw["x_test"][:50], y_test=fmnist_raw["y_test"][:50])
    small_npz = buf.getvalue()
    digest = hashlib.sha256(small_npz).hexdigest()
    set_params(clone, {"data": {"name": "url", "url": f"{flaky_server}/d.npz", "sha256": digest}})
    _Flaky.files = {"/d.npz": small_npz}
    _Flaky.plan = {"/d.npz": ["stall"]}
    before = snapshot(clone / "data" / "raw")
    proc = subprocess.Popen([sys.executable, "-m", "stages.fetch", "--out", "data/raw"], cwd=clone, env=tool_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and not any(p.stat().st_size for p in clone.glob("data/.raw.tmp-*/*.download")):
        time.sleep(0.02)
    proc.kill()
    proc.communicate(timeout=60)
    assert list(clone.glob("data/.raw.tmp-*")), "the download was not in progress"
    assert snapshot(clone / "data" / "raw") == before
    _Flaky.release.set()
    r = run_stage_cmd(clone, ["stages.fetch", "--out", "data/raw"])
    assert r.returncode == 0, r.stderr
    assert not list(clone.glob("data/.raw.tmp-*"))
    assert hashlib.sha256((clone / "data" / "raw" / "dataset.npz").read_bytes()).hexdigest() == digest


def run_stage_cmd(proj, args):
    return subprocess.run([sys.executable, "-m", *args], cwd=proj, env=tool_env(), capture_output=True, text=True,
                          timeout=600)


# ---- two `dvc repro` at once, divergence -------------------------------------------------------------

@pytest.mark.slow   # dvc and stage subprocesses in a clone
def test_second_concurrent_repro_is_refused_and_the_first_is_unharmed(clone):
    first = subprocess.Popen(["dvc", "repro", "train_vae"], cwd=clone, env=tool_env(), start_new_session=True,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 240
    while progress(clone, "train_vae") == 0 and first.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert first.poll() is None, first.stdout.read()
    second = dvc(clone, "repro", check=False)
    assert second.returncode != 0
    # DVC holds its repo lock while it plans and records, and a read/write lock on every dep and out
    # of a running stage: the second run meets one of the two
    message = " ".join((second.stderr + second.stdout).split())
    assert ("Unable to acquire lock. Most likely another DVC process is running" in message
            or re.search(r"is busy, it is being blocked by: \(PID \d+\): \S*dvc repro train_vae", message)), message
    assert "Running stage" not in second.stdout
    out, _ = first.communicate(timeout=600)
    assert first.returncode == 0, out
    assert "resuming" not in out and "interrupted" not in out
    assert json.loads((clone / "dvclive" / "train_vae" / "metrics.json").read_text())["step"] == ITERATIONS
    assert "up to date" in dvc(clone, "status", "train_vae").stdout


@pytest.mark.slow   # dvc and stage subprocesses in a clone
def test_divergence_stops_clearly_and_the_previous_results_can_be_restored(clone):
    """A huge learning rate: one error line naming the iteration and the loss, no model written.
    What DVC does: before running a stage it deletes the stage's outputs (cached ones stay in its
    cache, git-tracked ones in git) and records nothing for a failed stage, so `git checkout` +
    `dvc checkout` bring back the previous results byte for byte."""
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    dvc(clone, "repro", "train_gan")
    subprocess.run(git + ["add", "-A"], cwd=clone, check=True)
    subprocess.run(git + ["commit", "-qm", "good run"], cwd=clone, check=True)
    results = {d: snapshot(clone / d) for d in ("models/gan", "dvclive/train_gan")}
    lock = (clone / "dvc.lock").read_text()
    set_params(clone, {"gan": {"lr": 1.0e12}})
    r = dvc(clone, "repro", "train_gan", check=False)
    out = r.stdout + r.stderr
    assert r.returncode != 0 and "Traceback" not in out
    assert re.search(r"^error: training diverged at iteration 1: g_loss is nan; lower gan.lr", out, re.M), out
    assert not (clone / "models" / "gan").exists()                 # deleted by DVC, not written again
    assert not list((clone / "dvclive" / "train_gan").rglob("*.json"))
    # nothing recorded for the failed run (check_params, which passed the new value, records it)
    without_check = lambda text: {k: v for k, v in yaml.safe_load(text)["stages"].items() if k != "check_params"}  # noqa: E731
    assert without_check((clone / "dvc.lock").read_text()) == without_check(lock)
    subprocess.run(["git", "checkout", "-q", "--", "params.yaml", "dvclive"], cwd=clone, check=True)
    dvc(clone, "checkout", "train_gan")
    assert {d: snapshot(clone / d) for d in results} == results


# ---- mutated data files, in a separate interpreter ---------------------------------------------------

FUZZ = r'''
import gzip, io, sys, zipfile
import numpy as np
from genlab.errors import GenlabError
from genlab.data.readers import read_idx, read_npz

x, y = np.load(sys.argv[1])["x"], np.load(sys.argv[1])["y"]
idx = bytes([0, 0, 8, 3]) + b"".join(int(d).to_bytes(4, "big") for d in x.shape) + x.tobytes()
buf = io.BytesIO()
np.savez(buf, x_train=x, y_train=y, x_test=x[:5], y_test=y[:5])
zbuf = io.BytesIO()
np.savez_compressed(zbuf, x_train=x, y_train=y, x_test=x[:5], y_test=y[:5])
goods = [(idx, read_idx, "m.idx"), (gzip.compress(idx), read_idx, "m.gz"),
         (buf.getvalue(), read_npz, "m.npz"), (zbuf.getvalue(), read_npz, "m.npz")]
rng = np.random.default_rng(1)
counts = {"loaded": 0, "refused": 0}
def attempt(blob, reader, name):
    p = sys.argv[2] + "/" + name
    open(p, "wb").write(blob)
    try:
        reader(p)
        counts["loaded"] += 1
    except GenlabError:
        counts["refused"] += 1
for i in range(int(sys.argv[3])):
    good, reader, name = goods[i % len(goods)]
    b = bytearray(good)
    head = rng.random() < 0.5            # half the mutations hit the headers (where the sizes are)
    for _ in range(rng.integers(1, 6)):
        b[rng.integers(64 if head else len(b))] = rng.integers(256)
    if rng.random() < 0.3:
        b = b[: rng.integers(len(b))]
    attempt(bytes(b), reader, name)
# forged headers: sizes whose product overflows 64 bits, or far larger than the file
for dims in ([0x10000] * 4, [0xFFFFFFFF] * 3, [1 << 31, 2]):
    attempt(bytes([0, 0, 8, len(dims)]) + b"".join(d.to_bytes(4, "big") for d in dims), read_idx, "f.idx")
attempt(b"", read_idx, "e.idx"); attempt(b"", read_npz, "e.npz"); attempt(b"PK\x03\x04", read_npz, "z.npz")
print(counts["loaded"], counts["refused"])
'''


def test_mutated_idx_and_npz_files_load_or_are_refused_never_crash_or_hang(tmp_path, fmnist_raw):
    """600 byte-mutated IDX, IDX.gz, .npz and compressed .npz files plus 6 forged or empty ones, read in a
    child interpreter with a time limit: every one loads or raises GenlabError (no other exception,
    no crash of the interpreter, no hang)."""
    np.savez(tmp_path / "src.npz", x=fmnist_raw["x_test"][:20], y=fmnist_raw["y_test"][:20])
    r = subprocess.run([sys.executable, "-c", FUZZ, str(tmp_path / "src.npz"), str(tmp_path), "600"],
                       cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    loaded, refused = map(int, r.stdout.split())
    assert loaded + refused == 606 and refused > 300, r.stdout


# ---- the evaluator's checkpoints (library level, a small real slice) -------------------------------

EVAL_PARAMS = Evaluator.of(filters=[4, 8], feature_dim=16, dropout=0.3, epochs=3, warmup_epochs=1, batch_size=64,
                           lr=0.003, seed=0)
EVAL_STEPS = 1280 // 64   # iterations per epoch


@pytest.fixture(scope="session")
def eval_slice(fmnist_small):
    (x, y), (xv, yv) = fmnist_small["train"], fmnist_small["test"]
    return x[:1280], y[:1280], xv[:200], yv[:200]


@pytest.fixture(scope="session")
def uninterrupted(eval_slice):
    from genlab.evaluation.evaluator import train_evaluator
    model, info = train_evaluator(*eval_slice, EVAL_PARAMS, n_classes=10, out=io.StringIO())
    return [w.numpy() for w in model.weights], info


class _StopAt(io.StringIO):
    """Progress output that raises KeyboardInterrupt (as Ctrl-C would) when the line of `step` is printed."""
    def __init__(self, step):
        super().__init__()
        self.step = step

    def write(self, text):
        if text.startswith(f"train_evaluator {self.step}/"):
            raise KeyboardInterrupt
        return super().write(text)


@pytest.mark.slow   # four evaluator trainings
@pytest.mark.parametrize("damage, resumes_at, message", [
    (None, 2 * EVAL_STEPS, None),
    ("truncate the newest", EVAL_STEPS, "is corrupt"),
    ("other params", 0, "made with other params"),
])
def test_evaluator_resumes_from_its_last_good_checkpoint(eval_slice, uninterrupted, tmp_path, damage, resumes_at,
                                                         message):
    """Interrupted at the end of epoch 2 of 3 (a checkpoint is written on the way out), damaged, resumed:
    the resume point is the last good checkpoint, and the result is bit-identical to an uninterrupted run."""
    from genlab.evaluation.evaluator import train_evaluator
    ckpt = tmp_path / "ckpt"
    with pytest.raises(KeyboardInterrupt):
        train_evaluator(*eval_slice, EVAL_PARAMS, n_classes=10, ckpt_dir=ckpt, out=_StopAt(2 * EVAL_STEPS))
    newest = sorted(ckpt.glob("ckpt-*"))[-1]
    assert newest.name == f"ckpt-{2 * EVAL_STEPS:09d}"
    if damage == "truncate the newest":
        state = newest / "state.npz"
        state.write_bytes(state.read_bytes()[:1000])
    elif damage == "other params":
        with pytest.raises(KeyboardInterrupt):   # the same folder, a run of other params
            train_evaluator(*eval_slice, EVAL_PARAMS.replace(lr=0.002), n_classes=10, ckpt_dir=ckpt,
                            out=_StopAt(EVAL_STEPS))
    out = io.StringIO()
    model, info = train_evaluator(*eval_slice, EVAL_PARAMS, n_classes=10, ckpt_dir=ckpt, out=out)
    logs = out.getvalue()
    if resumes_at:
        assert f"train_evaluator: resuming from iteration {resumes_at} of {3 * EVAL_STEPS}" in logs, logs
    else:
        assert "resuming" not in logs, logs
    if message:
        assert message in logs, logs
    weights, reference = [w.numpy() for w in model.weights], uninterrupted[0]
    assert all(np.array_equal(a, b) for a, b in zip(weights, reference))
    assert [h["loss"] for h in info["history"]] == [h["loss"] for h in uninterrupted[1]["history"]]
    assert info["train"]["best_epoch"] == uninterrupted[1]["train"]["best_epoch"]


# ---- determinism -------------------------------------------------------------------------------------

METRICS_FILES = ["metrics/evaluate.json", "metrics/evaluator.json", "dvclive/train_gan/metrics.json",
                 "dvclive/train_vae/metrics.json"]


def without_timestamps(tsv):
    """A dvclive curve without its wall-clock `timestamp` column (the one thing that must differ)."""
    rows = [line.split("\t") for line in tsv.splitlines()]
    keep = [i for i, name in enumerate(rows[0]) if name != "timestamp"]
    return [[row[i] for i in keep] for row in rows]


@pytest.mark.slow   # the smoke pipeline twice
def test_two_smoke_runs_give_byte_identical_metrics(smoke_pipeline, cml_workflow):
    """The whole pipeline at smoke size twice, from scratch in two clones (both runs are shared with other
    tests: the first is conftest.smoke_pipeline, run with a run store of its own, the second the CML
    workflow's run on a pull-request branch with the same params, without one), same seeds, same machine:
    the metrics files are byte-identical, and so are the curves but for their timestamps."""
    first, second = smoke_pipeline[0], Path(cml_workflow[0]["clone"])
    for name in METRICS_FILES:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
    curves = sorted(p.relative_to(first) for p in first.glob("dvclive/*/plots/metrics/*.tsv"))
    assert len(curves) >= 10
    for name in curves:
        assert without_timestamps((first / name).read_text()) == without_timestamps((second / name).read_text()), name
