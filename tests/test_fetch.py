"""fetch against a real HTTP server on 127.0.0.1 serving the real Fashion-MNIST files."""

import gzip
import hashlib
import http.server
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from conftest import copy_project, own_lines, tool_env
from genlab.data import datasets
from genlab.data import fetch as fetch_mod
from genlab.data.fetch import fetch
from genlab.data.readers import load_raw
from genlab.errors import GenlabError

FILES = list(datasets.BUILTIN["fashion_mnist"].files)


class _Handler(http.server.SimpleHTTPRequestHandler):
    fail_first = {}      # path -> number of 500s to answer before serving
    short = set()        # paths answered with a Content-Length larger than the body

    def log_message(self, *args):
        pass

    def do_GET(self):
        left = self.fail_first.get(self.path, 0)
        if left:
            self.fail_first[self.path] = left - 1
            self.send_error(500, "injected")
            return
        if self.path in self.short:
            body = Path(self.translate_path(self.path)).read_bytes()[:1000]
            self.send_response(200)
            self.send_header("Content-Length", "5000")
            self.end_headers()
            self.wfile.write(body)
            return
        super().do_GET()


@pytest.fixture
def server(tmp_path):
    """An HTTP server on 127.0.0.1 serving tmp_path/www; yields (base URL, www path)."""
    www = tmp_path / "www"
    www.mkdir()
    _Handler.fail_first, _Handler.short = {}, set()
    handler = lambda *a, **k: _Handler(*a, directory=str(www), **k)  # noqa: E731
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}", www
    srv.shutdown()
    srv.server_close()


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch):
    monkeypatch.setattr(fetch_mod, "BACKOFF_S", 0.01)
    monkeypatch.setattr(fetch_mod, "TIMEOUT_S", 5)


def mirror_copy(shared_data, www):
    shutil.copytree(shared_data / "fashion-mnist", www / "fashion-mnist")
    return www / "fashion-mnist"


def assert_nothing_left(out):
    assert not out.exists()
    assert not list(out.parent.glob(f".{out.name}.tmp-*"))


def test_http_mirror_fetches_and_verifies(server, shared_data, tmp_path):
    url, www = server
    mirror_copy(shared_data, www)
    out = tmp_path / "raw"
    sources = fetch("fashion_mnist", out, mirror=url, log=lambda m: None)
    assert all(s.startswith(f"mirror {url}") for s in sources.values())
    arrays = load_raw(out)
    assert arrays["x_train"].shape == (60000, 28, 28) and arrays["x_test"].shape == (10000, 28, 28)
    for name, digest in datasets.BUILTIN["fashion_mnist"].files.items():
        assert hashlib.sha256((out / name).read_bytes()).hexdigest() == digest


def test_output_is_identical_whatever_the_source(server, shared_data, tmp_path):
    """Folder mirror, HTTP mirror, and a recompressed / uncompressed copy give the same bytes."""
    url, www = server
    src = mirror_copy(shared_data, www)
    fetch("fashion_mnist", tmp_path / "a", mirror=url, log=lambda m: None)
    other = tmp_path / "other" / "fashion-mnist"
    other.mkdir(parents=True)
    for name in FILES:
        payload = gzip.decompress((src / f"{name}.gz").read_bytes())
        if "labels" in name:
            (other / name).write_bytes(payload)                      # served uncompressed
        else:
            (other / f"{name}.gz").write_bytes(gzip.compress(payload, compresslevel=1))  # recompressed
    fetch("fashion_mnist", tmp_path / "b", mirror=str(other.parent), log=lambda m: None)
    for f in sorted(p.name for p in (tmp_path / "a").iterdir()):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_corrupt_or_truncated_copy_is_refused(server, shared_data, tmp_path, damage):
    url, www = server
    folder = mirror_copy(shared_data, www)
    target = folder / "train-labels-idx1-ubyte.gz"
    blob = bytearray(target.read_bytes())
    if damage == "flip":
        payload = bytearray(gzip.decompress(bytes(blob)))
        payload[5000] ^= 0x01                       # one label changed, valid gzip
        target.write_bytes(gzip.compress(bytes(payload)))
        expect = "has sha256"
    else:
        target.write_bytes(bytes(blob[: len(blob) // 2]))
        expect = "corrupt or truncated gzip"
    out = tmp_path / "raw"
    with pytest.raises(GenlabError, match=expect):
        fetch("fashion_mnist", out, mirror=url, log=lambda m: None)
    assert_nothing_left(out)


def test_404_is_refused_with_a_hint(server, shared_data, tmp_path):
    url, www = server
    folder = mirror_copy(shared_data, www)
    (folder / "t10k-images-idx3-ubyte.gz").unlink()
    out = tmp_path / "raw"
    with pytest.raises(GenlabError, match=r"could not get t10k-images-idx3-ubyte .*HTTP 404.*GENLAB_MIRROR"):
        fetch("fashion_mnist", out, mirror=url, log=lambda m: None)
    assert_nothing_left(out)


def test_transient_500_is_retried(server, shared_data, tmp_path):
    url, www = server
    mirror_copy(shared_data, www)
    _Handler.fail_first = {"/fashion-mnist/train-labels-idx1-ubyte.gz": 2}
    logs = []
    fetch("fashion_mnist", tmp_path / "raw", mirror=url, log=logs.append)
    assert sum("retrying" in m for m in logs) == 2
    assert len(load_raw(tmp_path / "raw")["y_train"]) == 60000


def test_persistent_500_and_short_reads_give_up(server, shared_data, tmp_path):
    url, www = server
    mirror_copy(shared_data, www)
    _Handler.fail_first = {"/fashion-mnist/t10k-labels-idx1-ubyte.gz": 99}
    with pytest.raises(GenlabError, match="HTTP 500.*gave up after"):
        fetch("fashion_mnist", tmp_path / "raw", mirror=url, log=lambda m: None)
    _Handler.fail_first = {}
    _Handler.short = {"/fashion-mnist/t10k-labels-idx1-ubyte.gz"}
    with pytest.raises(GenlabError, match="closed after 1000 of 5000 bytes"):
        fetch("fashion_mnist", tmp_path / "raw", mirror=url, log=lambda m: None)
    assert_nothing_left(tmp_path / "raw")


def test_no_network_and_no_mirror(monkeypatch, tmp_path):
    ds = datasets.BUILTIN["fashion_mnist"]
    offline = datasets.Dataset(**{**ds.__dict__, "urls": ("http://dataset-host.invalid/",), "local_dirs": ()})
    monkeypatch.setitem(datasets.BUILTIN, "fashion_mnist", offline)
    with pytest.raises(GenlabError, match="cannot resolve host.*set GENLAB_MIRROR"):
        fetch("fashion_mnist", tmp_path / "raw", mirror="", log=lambda m: None)
    assert_nothing_left(tmp_path / "raw")


def test_user_url_npz(server, fmnist_raw, tmp_path):
    url, www = server
    np.savez(www / "tiny.npz", x_train=fmnist_raw["x_train"][:50], y_train=fmnist_raw["y_train"][:50],
             x_test=fmnist_raw["x_test"][:20], y_test=fmnist_raw["y_test"][:20])
    digest = hashlib.sha256((www / "tiny.npz").read_bytes()).hexdigest()
    fetch("url", tmp_path / "raw", url=f"{url}/tiny.npz", sha256=digest, mirror="", log=lambda m: None)
    arrays = load_raw(tmp_path / "raw")
    np.testing.assert_array_equal(arrays["x_train"], fmnist_raw["x_train"][:50])
    with pytest.raises(GenlabError, match="data.sha256 must be"):
        fetch("url", tmp_path / "raw2", url=f"{url}/tiny.npz", sha256="", mirror="")
    with pytest.raises(GenlabError, match="has sha256"):
        fetch("url", tmp_path / "raw3", url=f"{url}/tiny.npz", sha256="0" * 64, mirror="", log=lambda m: None)
    assert_nothing_left(tmp_path / "raw3")


def test_mnist_npz_is_verified_against_the_keras_digest(tmp_path, shared_data):
    """An mnist.npz that is not the published one (here built from the real MNIST test set) is refused."""
    from genlab.data.readers import read_idx
    folder = tmp_path / "mirror" / "mnist"
    folder.mkdir(parents=True)
    x = read_idx(shared_data / "mnist-test" / "t10k-images-idx3-ubyte.gz")
    y = read_idx(shared_data / "mnist-test" / "t10k-labels-idx1-ubyte.gz")
    np.savez(folder / "mnist.npz", x_train=x, y_train=y, x_test=x, y_test=y)
    with pytest.raises(GenlabError, match="mnist.npz from mirror .* expected 731c5ac6"):
        fetch("mnist", tmp_path / "raw", mirror=str(tmp_path / "mirror"), log=lambda m: None)


def test_unknown_name():
    message = "data.name must be one of fashion_mnist, mnist, url, image_folder, got 'cifar'"
    with pytest.raises(GenlabError, match=message):
        fetch("cifar", "unused", mirror="")


def test_stage_prints_one_clear_line(tmp_path):
    """The fetch stage with a bad param: exit 1, one `error:` line, no traceback, no output."""
    proj = copy_project(tmp_path / "proj")
    params = (proj / "params.yaml").read_text().replace("name: fashion_mnist", "name: 7", 1)
    (proj / "params.yaml").write_text(params)
    r = subprocess.run([sys.executable, "-m", "stages.fetch", "--out", "data/raw"], cwd=proj,
                       capture_output=True, text=True, env=tool_env())
    assert r.returncode == 1
    assert own_lines(r.stderr) == [
        "error: data.name must be one of 'fashion_mnist', 'mnist', 'url', 'image_folder', got 7"]
    assert not (proj / "data" / "raw").exists()
