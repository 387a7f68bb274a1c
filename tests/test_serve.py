"""`genlab serve` (genlab/outputs/serve.py): the API on tiny models trained in the session, and the page
in a real browser (Debian's chromium driven by Playwright, tests/browser.py): it loads with no console
error, every image has decoded pixels, another class changes the picture, the slider moves through an
interpolation, an upload is reconstructed and a bad upload shows its message while the server keeps
serving. GENLAB_SCREENSHOT=docs/serve.png also saves the page's screenshot there (the README's; with
GENLAB_SERVE_MODELS=<the folder bench_serve.py trained> the page shows those models)."""

import base64
import io
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import genlab.command
from browser import browser_page
from conftest import ROOT, own_lines, tool_env


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(models, port, *extra):
    """`genlab serve` in a subprocess; returns (process, base URL) once it says it serves."""
    cmd = [sys.executable, "-m", "genlab.command", "serve", str(models["gan"]), str(models["vae"]),
           "--port", str(port), "--meta", str(models["meta"]), "--data", str(models["data"]), *extra]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=tool_env())
    line = proc.stdout.readline()
    if not line.startswith("genlab serve: http://"):
        proc.kill()
        pytest.fail(f"genlab serve did not start: {line!r} {proc.stderr.read()[-2000:]}")
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):   # the line is printed just before uvicorn binds
        try:
            urllib.request.urlopen(url + "/api/models", timeout=5).read()
            return proc, url
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.1)
    proc.kill()
    pytest.fail("genlab serve printed its address but does not answer")


@pytest.fixture(scope="module")
def models(request):
    """The session's tiny models, or GENLAB_SERVE_MODELS: a folder with gan/, vae/, meta.json and data/ (the
    layout benchmarks/bench_serve.py trains into) for a screenshot of better-looking models."""
    folder = os.environ.get("GENLAB_SERVE_MODELS")
    if not folder:
        return request.getfixturevalue("tiny_models")
    return {"gan": Path(folder) / "gan", "vae": Path(folder) / "vae", "meta": Path(folder) / "meta.json",
            "data": Path(folder) / "data"}


@pytest.fixture(scope="module")
def server(models):
    proc, url = start_server(models, free_port())
    yield url
    proc.terminate()
    proc.wait(timeout=30)


def get(url):
    """(status, body bytes, content type) of a GET, 4xx included."""
    try:
        with urllib.request.urlopen(url, timeout=60) as r:
            return r.status, r.read(), r.headers["Content-Type"]
    except urllib.error.HTTPError as e:
        return e.code, e.read(), e.headers["Content-Type"]


def png(data):
    return np.asarray(Image.open(io.BytesIO(data)))


@pytest.mark.slow   # trains a model to serve
def test_api_generate_is_genlab_generate(server, models, tmp_path):
    from genlab.command import execute, parser
    status, body, kind = get(server + "/api/generate?model=gan&cls=Sneaker&seed=3&n=16")
    assert (status, kind) == (200, "image/png")
    execute(parser().parse_args(["generate", str(models["gan"]), "-n", "16", "--class", "Sneaker",
                                 "--seed", "3", "--scale", "1", "-o", str(tmp_path / "g.png"),
                                 "--meta", str(models["meta"])]))
    np.testing.assert_array_equal(png(body), np.asarray(Image.open(tmp_path / "g.png")))   # the same pixels
    other = get(server + "/api/generate?model=gan&cls=Bag&seed=3&n=16")[1]
    assert not np.array_equal(png(body), png(other))


def test_api_interpolate_and_models(server):
    status, body, _ = get(server + "/api/models")
    models = {m["name"]: m for m in json.loads(body)}
    assert models["gan"]["conditional"] and models["gan"]["classes"][7] == "Sneaker"
    assert models["vae"]["edit"] and models["vae"]["class_ends"]
    for model, src, dst in (("gan", "Sandal", "Ankle boot"), ("gan", "seed:1", "seed:2"), ("vae", "Trouser", "Bag")):
        query = urllib.parse.urlencode({"model": model, "src": src, "dst": dst, "steps": 5})
        status, body, _ = get(server + "/api/interpolate?" + query)
        frames = json.loads(body)["frames"]
        assert status == 200 and len(frames) == 5
        first, last = (png(base64.b64decode(f.split(",", 1)[1])) for f in (frames[0], frames[-1]))
        assert first.shape == (28, 28) and not np.array_equal(first, last)


@pytest.mark.parametrize("query,words", [
    ("model=gan&n=100000", "give 1 to 256 images"),
    ("model=gan&n=0", "give 1 to 256 images"),
    ("model=gan&cls=Unicorn", "unknown class 'Unicorn'"),
    ("model=vae&cls=Bag", "a VAE is unconditional"),
    ("model=nope", "unknown model 'nope'"),
    ("model=gan&seed=abc", "seed: "),
    ("model=gan&seed=-1", "--seed must be a non-negative integer"),
])
def test_api_bad_requests_are_one_line_and_the_server_keeps_serving(server, query, words):
    status, body, kind = get(server + "/api/generate?" + query.replace(" ", "%20"))
    assert (status, kind) == (400, "application/json"), body
    line = json.loads(body)["error"]
    assert words in line and "\n" not in line, line
    assert get(server + "/api/generate?model=gan&n=4")[0] == 200


@pytest.mark.slow   # starts the server in subprocesses
def test_serve_refuses_a_taken_port_and_a_missing_model(tiny_models, tmp_path):
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = subprocess.run([sys.executable, "-m", "genlab.command", "serve", str(tiny_models["gan"]), "--port",
                            str(port)], cwd=ROOT, capture_output=True, text=True, env=tool_env(), timeout=120)
    assert r.returncode == 1 and own_lines(r.stderr) == [
        f"error: cannot listen on 127.0.0.1:{port} (Address already in use): give another --port, or a --host "
        "of this machine"], r.stderr
    r = subprocess.run([sys.executable, "-m", "genlab.command", "serve", str(tmp_path / "nope")], cwd=ROOT,
                       capture_output=True, text=True, env=tool_env(), timeout=120)
    assert r.returncode == 1 and own_lines(r.stderr) == [
        f"error: {tmp_path / 'nope'} is not a folder: give model folders the pipeline wrote (models/gan, models/vae) "
        "or exports of them (genlab export)"]


def test_serve_loads_an_export_like_its_model_folder(tiny_models, tmp_path):
    """`genlab serve exported/gan`: the export carries its genlab model folder (model/), so the page's
    images are those of the folder it was exported from; an export without it is refused in one line."""
    import shutil

    from genlab.command import execute, parser
    from genlab.errors import GenlabError
    from genlab.outputs.serve import Models
    out = tmp_path / "exported-gan"
    execute(parser().parse_args(["export", str(tiny_models["gan"]), str(out), "--meta", str(tiny_models["meta"])]))
    assert json.loads((out / "export.json").read_text())["files"]["model/"].startswith("the genlab model folder")
    served = Models(genlab.command, [out, tiny_models["gan"]], tiny_models["meta"], tiny_models["data"])
    assert list(served.models) == ["exported-gan", "gan"]
    assert served.generate("exported-gan", 16, 3, "Bag") == served.generate("gan", 16, 3, "Bag")
    shutil.rmtree(out / "model")
    with pytest.raises(GenlabError, match="is an export without its model/ folder"):
        Models(genlab.command, [out], tiny_models["meta"], tiny_models["data"])


def decoded_images(page):
    """(src prefix, naturalWidth) of every <img> in the page."""
    return page.evaluate("[...document.images].map(i => [i.src.slice(0, 30), i.naturalWidth])")


def grid_pixels(page):
    """The grid image's pixels as the browser decoded them (drawn on a canvas), as one string."""
    return page.evaluate("""() => {
        const i = document.getElementById('grid'), c = document.createElement('canvas');
        c.width = i.naturalWidth; c.height = i.naturalHeight;
        const x = c.getContext('2d'); x.drawImage(i, 0, 0);
        return Array.from(x.getImageData(0, 0, c.width, c.height).data).join(','); }""")


def test_page_in_a_browser(server, tmp_path):
    with browser_page(tmp_path) as (page, errors):
        page.goto(server + "/")
        page.wait_for_selector("#grid")
        page.wait_for_function("document.getElementById('grid').naturalWidth > 0")
        before = grid_pixels(page)
        old_src = page.eval_on_selector("#grid", "i => i.src")
        page.select_option("#cls", "Bag")
        page.wait_for_function(f"document.getElementById('grid').src !== {json.dumps(old_src)}")
        page.wait_for_function("document.getElementById('grid').complete")
        assert grid_pixels(page) != before, "choosing another class did not change the picture"
        page.click("#go-interpolate")
        page.wait_for_selector("#frame")
        first = page.eval_on_selector("#frame", "i => i.src")
        page.fill("#position", "8")
        page.dispatch_event("#position", "input")
        assert page.eval_on_selector("#frame", "i => i.src") != first
        assert "9 / 9" in page.inner_text("#position-text")
        images = decoded_images(page)
        assert len(images) == 2 and all(w > 0 for _, w in images), images
        page.screenshot(path=str(tmp_path / "serve.png"), full_page=True)
        assert errors == [], errors
    shot = np.asarray(Image.open(tmp_path / "serve.png"))
    assert shot.shape[0] > 400 and shot.std() > 10
    if os.environ.get("GENLAB_SCREENSHOT"):
        Path(os.environ["GENLAB_SCREENSHOT"]).write_bytes((tmp_path / "serve.png").read_bytes())


def test_page_upload_in_a_browser(server, models, tmp_path):
    x = np.load(models["data"] / "val_x.npy")[1]
    Image.fromarray(((x[:, :, 0] + 1) * 127.5 + 0.5).astype(np.uint8)).save(tmp_path / "upload.png")
    Image.new("RGB", (64, 48), "red").save(tmp_path / "big.png")
    (tmp_path / "notes.png").write_text("not an image")
    with browser_page(tmp_path) as (page, errors):
        page.goto(server + "/")
        page.wait_for_selector("#grid")
        page.select_option("#model", "vae")
        page.set_input_files("#upload", str(tmp_path / "notes.png"))
        page.click("#go-edit")
        page.wait_for_function("document.getElementById('edit-error').textContent.length > 0")
        assert page.inner_text("#edit-error") == ("error: notes.png is not a readable image (UnidentifiedImageError): "
                                                  "give a PNG or JPEG")
        page.set_input_files("#upload", str(tmp_path / "big.png"))
        page.click("#go-edit")
        page.wait_for_function("document.getElementById('edit-error').textContent.includes('64x48')")
        assert "this model takes 28x28 images with 1 channel" in page.inner_text("#edit-error")
        page.set_input_files("#upload", str(tmp_path / "upload.png"))   # the server still serves
        page.select_option("#to", "Bag")
        page.click("#go-edit")
        page.wait_for_selector("#edit-frame")
        page.wait_for_function("document.getElementById('edit-frame').naturalWidth > 0")
        assert page.inner_text("#edit-error") == ""
        assert "reconstruction" in page.inner_text("#amount-text")
        page.fill("#amount", "6")
        page.dispatch_event("#amount", "input")
        assert "→ Bag" in page.inner_text("#amount-text")
        assert all(w > 0 for _, w in decoded_images(page))
        # Only the two refused uploads' HTTP 400s reached the console, nothing else.
        assert all("400" in e for e in errors) and len(errors) <= 2, errors


def test_without_a_browser_the_tests_say_so_and_fail_under_ci(monkeypatch, tmp_path):
    import browser
    monkeypatch.setattr(browser, "CHROMIUM", str(tmp_path / "no-chromium"))
    monkeypatch.setattr(browser.shutil, "which", lambda name: None)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=r"^no Chromium at .*no-chromium: the browser tests need "
                                                     r"Debian's chromium \(`apt-get install chromium`"):
        browser.require_browser()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=r"\(CI=true: the browser tests must run\)$"):
        browser.require_browser()


def test_edit_refuses_each_bad_upload_in_one_line(tiny_models):
    from genlab.errors import GenlabError
    from genlab.outputs.serve import MAX_UPLOAD, Models
    served = Models(genlab.command, [tiny_models["vae"]], tiny_models["meta"], tiny_models["data"])

    def upload(img):
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        return buf.getvalue()
    cases = [(upload(Image.new("RGB", (28, 28))), "rgb.png",
              "rgb.png is a RGB image: this model takes greyscale images (1 channel); convert it first"),
             (upload(Image.new("L", (28, 14))), "half.png", "half.png is 28x14 pixels: this model takes 28x28"),
             (b"", "empty.png", "no image was uploaded: choose a PNG or JPEG file first"),
             (b"\0" * (MAX_UPLOAD + 1), "huge.png", "huge.png is 4096 KB: give an image of the model's size")]
    for data, name, words in cases:
        with pytest.raises(GenlabError) as e:
            served.edit("vae", data, name, "Bag", 7)
        assert str(e.value).startswith(words), str(e.value)
    with pytest.raises(GenlabError, match="steps 1000: give 1 to 256 images per request"):
        served.edit("vae", upload(Image.new("L", (28, 28))), "ok.png", "Bag", 1000)
    frames = served.edit("vae", upload(Image.new("L", (28, 28))), "ok.png", "Bag", 7)
    assert len(frames["frames"]) == 7 and frames["to"] == "Bag"
