"""A stage's stderr holds only the project's own lines, on every CPU (genlab.stage.quiet_native_logs).

TensorFlow's oneDNN notice appears on Intel CPUs by default; TF_ENABLE_ONEDNN_OPTS=1 makes it appear on
any x86 CPU, so these tests reproduce the Intel condition wherever they run."""

import subprocess
import sys

import pytest

from conftest import ROOT, own_lines, tool_env

STAGE = ("from genlab import stage\n"
         "from genlab.errors import GenlabError\n"
         "def main():\n"
         "    import tensorflow as tf\n"
         "    x = tf.random.stateless_normal([64, 64], seed=[1, 2])\n"
         "    print('stage: computed', bool(tf.reduce_sum(tf.matmul(x, x)) != 0))\n"
         "    raise GenlabError('x is wrong: fix it')\n"
         "stage.run(main)\n")


def run(code, **env):
    return subprocess.run([sys.executable, "-c", code],
                          cwd=ROOT, capture_output=True, text=True,
                          env=tool_env(PYTHONPATH=str(ROOT), TF_ENABLE_ONEDNN_OPTS="1", **env))


@pytest.mark.slow   # a stage in a subprocess
def test_native_log_lines_stay_off_stderr():
    r = run(STAGE)
    assert r.returncode == 1 and r.stdout == "stage: computed True\n"
    assert r.stderr.splitlines() == ["error: x is wrong: fix it"]


@pytest.mark.slow   # a stage in a subprocess
def test_genlab_tf_log_shows_them():
    """The same run with GENLAB_TF_LOG=1 shows TensorFlow's native lines (so the test above can fail),
    and own_lines, which the other tests use, drops exactly those."""
    r = run(STAGE, GENLAB_TF_LOG="1")
    assert r.returncode == 1
    assert any("oneDNN custom operations are on" in ln for ln in r.stderr.splitlines()), r.stderr
    assert own_lines(r.stderr) == ["error: x is wrong: fix it"]


@pytest.mark.slow   # a stage in a subprocess
def test_a_crash_still_shows_its_traceback():
    r = run(STAGE.replace("raise GenlabError('x is wrong: fix it')", "raise RuntimeError('boom')"))
    assert r.returncode == 1
    assert "Traceback (most recent call last)" in r.stderr and r.stderr.strip().endswith("RuntimeError: boom")


def test_sigterm_becomes_a_keyboard_interrupt():
    """genlab.stage.sigterm_as_interrupt, the one SIGTERM handler of the training stages: `kill` stops
    a stage like Ctrl-C (KeyboardInterrupt), so it can write its checkpoint first."""
    import os
    import signal

    import pytest

    from genlab.stage import sigterm_as_interrupt
    previous = signal.getsignal(signal.SIGTERM)
    try:
        sigterm_as_interrupt()
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGTERM)
            signal.sigtimedwait([], 5)   # the handler runs at once; this only waits if it did not
    finally:
        signal.signal(signal.SIGTERM, previous)
