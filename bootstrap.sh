#!/usr/bin/env bash
# One-command set-up, then run. Safe to run again: it only installs what changed.
#   bash bootstrap.sh repro [dvc repro args]   install, fetch prerequisites, run the pipeline
#   bash bootstrap.sh test  [pytest args]      install, run the test suite
#   bash bootstrap.sh install                  install only
#   bash bootstrap.sh stamp                    print the install stamp these files need (tests/workflow_runner.py)
# The virtual environment lives in .venv/ at the project root (Python 3.11).
set -euo pipefail
cd "$(dirname "$0")"
mode="${1:-install}"; shift || true

# PYTHON, when set, is the interpreter to use, and nothing else: a wrong path stops here. Unset, the
# first python3.11 on PATH is used, else python3 (checked to be 3.11 below).
if [ -n "${PYTHON+set}" ]; then
  PY="$PYTHON"
  if ! command -v "$PY" >/dev/null 2>&1 || [ -d "$(command -v "$PY")" ] || [ ! -x "$(command -v "$PY")" ]; then
    echo "error: PYTHON=$PY is not an executable Python: set PYTHON=/path/to/python3.11, or unset it to use python3.11 from PATH" >&2
    exit 1
  fi
else
  PY=python3.11
  command -v "$PY" >/dev/null || PY=python3
fi
if ! "$PY" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
  echo "error: Python 3.11 is required (found $("$PY" --version 2>&1)); set PYTHON=/path/to/python3.11" >&2
  exit 1
fi

# 1. Virtual environment with the pinned requirements (skipped when nothing changed: the stamp names what the
# venv was installed from; `bash bootstrap.sh stamp` prints the one these files need, and installs nothing).
gpu=0
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then gpu=1; fi
stamp=".venv/.installed-$( (cat requirements.txt requirements-gpu.txt constraints.txt pyproject.toml; echo "gpu=$gpu") | sha256sum | cut -c1-16)"
if [ "$mode" = stamp ]; then echo "$stamp"; exit 0; fi
[ -x .venv/bin/python ] || "$PY" -m venv .venv
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  if [ "$gpu" = 1 ]; then
    echo "bootstrap: GPU found, installing the CUDA build of TensorFlow" >&2
    .venv/bin/python -m pip uninstall --quiet --yes tensorflow-cpu >/dev/null 2>&1 || true
    .venv/bin/python -m pip install --quiet -c constraints.txt -r <(grep -v '^tensorflow-cpu' requirements.txt) -r requirements-gpu.txt
  else
    .venv/bin/python -m pip install --quiet -c constraints.txt -r requirements.txt
  fi
  # The genlab package itself, editable: `import genlab` works from anywhere, and edits take effect.
  .venv/bin/python -m pip install --quiet --no-deps -e . >/dev/null 2>&1 || .venv/bin/python -m pip install --no-deps -e .
  rm -f .venv/.installed-*; touch "$stamp"
fi
export PATH="$PWD/.venv/bin:$PATH"

# 2. The default dataset offline: Debian's dataset-fashion-mnist, where apt-get may be used.
install_dataset_package() {
  [ -d /usr/share/datasets/fashion-mnist ] && return 0
  command -v apt-get >/dev/null || return 0
  local sudo=""
  if [ "$(id -u)" != 0 ]; then sudo -n true 2>/dev/null && sudo="sudo -n" || return 0; fi
  echo "bootstrap: installing Debian's dataset-fashion-mnist (offline copy of the default dataset)" >&2
  { $sudo apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1 ||
    { $sudo apt-get update -qq >/dev/null 2>&1 && $sudo apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1; }; } ||
    echo "bootstrap: could not install dataset-fashion-mnist; fetch will download instead" >&2
}

# 3. The browser the browser tests drive (tests/browser.py): Debian's chromium, where apt-get may be used.
install_browser() {
  [ -x /usr/bin/chromium ] && return 0
  command -v apt-get >/dev/null || return 0
  local sudo=""
  if [ "$(id -u)" != 0 ]; then sudo -n true 2>/dev/null && sudo="sudo -n" || return 0; fi
  echo "bootstrap: installing Debian's chromium (headless browser for tests/test_serve.py, tests/test_report_html.py)" >&2
  { $sudo apt-get install -y -qq chromium >/dev/null 2>&1 ||
    { $sudo apt-get update -qq >/dev/null 2>&1 && $sudo apt-get install -y -qq chromium >/dev/null 2>&1; }; } ||
    echo "bootstrap: could not install chromium; the browser tests will say so (and fail under CI=true)" >&2
}

# 4. The test run's workers (pytest-xdist): one more than the cores, at most 4 (each holds a TensorFlow; the
# pipeline tests spend part of their time waiting on DVC, subprocess start-up and the disk, which the extra
# worker fills); GENLAB_TEST_WORKERS sets another number (0 = no workers, everything in this process). How the
# tests are shared between them: tests/conftest.py (pytest_xdist_make_scheduler).
test_workers() {
  local n="${GENLAB_TEST_WORKERS:-$(( $(nproc 2>/dev/null || echo 1) + 1 ))}"
  if ! [[ "$n" =~ ^[0-9]+$ ]]; then
    echo "error: GENLAB_TEST_WORKERS must be a whole number >= 0, got '$n'" >&2; exit 2
  fi
  [ -n "${GENLAB_TEST_WORKERS:-}" ] || [ "$n" -le 4 ] || n=4
  echo "$n"
}

case "$mode" in
  install) ;;
  repro) install_dataset_package; exec dvc repro "$@" ;;
  test) install_browser; workers=$(test_workers); exec python -m pytest -n "$workers" --dist loadscope --no-loadscope-reorder "$@" ;;
  *) echo "error: unknown mode '$mode': use repro, test or install" >&2; exit 2 ;;
esac
