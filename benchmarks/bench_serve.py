"""Latency of `genlab serve`: a 16-image grid request (and an interpolation and an edit) against a
running server, as the page makes them.

    .venv/bin/python benchmarks/bench_serve.py [--models DIR] [--iterations 300] [--requests 50] [--n 16]

--models DIR is a folder holding gan/, vae/, meta.json and data/ (normalize's layout); without it (or
when DIR is empty) models with params.yaml's gan and vae sections (the default architectures: latency
depends on the networks' size, not on how long they trained) are trained here for --iterations on the
first 20,000 real Fashion-MNIST training images and kept in DIR (a temporary folder without --models).
The server runs in a subprocess on 127.0.0.1 (GENLAB_THREADS is passed on); each endpoint is asked
--requests times after 3 warm-up requests, each with another seed. Prints the median, 10th and 90th
percentile wall-clock milliseconds per request.
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
import yaml

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "fashion-mnist"


def make_models(folder, iterations, data_dir):
    """Train the default-architecture GAN and VAE briefly into folder (gan/, vae/, meta.json, data/)."""
    from genlab.data.datasets import BUILTIN
    from genlab.data.readers import read_idx
    from genlab.params import read_all
    from genlab.training.gan import train_gan
    from genlab.training.loop import TrainSettings, load_training_data
    from genlab.training.vae import train_vae

    d = Path(data_dir)
    x = read_idx(d / "train-images-idx3-ubyte.gz")[:20000].astype(np.float32)[..., None] / 127.5 - 1.0
    y = read_idx(d / "train-labels-idx1-ubyte.gz")[:20000].astype(np.int32)
    data = folder / "data"
    data.mkdir(parents=True, exist_ok=True)
    for split, (a, b) in {"train": (x[2000:], y[2000:]), "val": (x[:2000], y[:2000])}.items():
        np.save(data / f"{split}_x.npy", a)
        np.save(data / f"{split}_y.npy", b)
    meta = {"dataset": "fashion_mnist", "shape": [28, 28, 1], "range": [-1.0, 1.0], "n_classes": 10,
            "class_names": list(BUILTIN["fashion_mnist"].class_names), "counts": {"train": 18000, "val": 2000}}
    for f in (data / "meta.json", folder / "meta.json"):
        f.write_text(json.dumps(meta))
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    train, gan, vae = read_all(params, "train", "gan", "vae")
    settings = TrainSettings(iterations=iterations, batch_size=train.batch_size, seed=0, log_every=100,
                             ckpt_every=iterations)
    dataset = load_training_data(data, ["train", "val"])
    train_gan(dataset, folder / "gan", folder / "ck" / "gan", folder / "live" / "gan", gan=gan, settings=settings)
    train_vae(dataset, folder / "vae", folder / "ck" / "vae", folder / "live" / "vae", vae=vae, settings=settings)


def start(folder):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "genlab.command", "serve", str(folder / "gan"), str(folder / "vae"),
           "--port", str(port), "--meta", str(folder / "meta.json"), "--data", str(folder / "data")]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    print(proc.stdout.readline().strip())
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            urllib.request.urlopen(url + "/api/models", timeout=5).read()
            return proc, url
        except OSError:
            time.sleep(0.1)
    proc.kill()
    sys.exit("error: the server did not answer")


def timed(make_request, requests):
    """Milliseconds of `requests` calls (after 3 warm-up calls): (median, p10, p90)."""
    for i in range(3):
        make_request(10_000 + i)
    times = []
    for i in range(requests):
        t0 = time.perf_counter()
        make_request(i)
        times.append(1000 * (time.perf_counter() - t0))
    return np.median(times), np.percentile(times, 10), np.percentile(times, 90)


def upload(url, png_bytes, fields):
    """POST a multipart form with one image file."""
    boundary = "genlabbench"
    body = b"".join(f"--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n".encode()
                    for k, v in fields.items())
    body += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"x.png\"\r\n"
             "Content-Type: image/png\r\n\r\n").encode() + png_bytes + f"\r\n--{boundary}--\r\n".encode()
    req = urllib.request.Request(url, data=body, headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    return urllib.request.urlopen(req, timeout=60).read()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", help="folder with gan/, vae/, meta.json, data/ (trained here when empty)")
    ap.add_argument("--iterations", type=int, default=300, help="training iterations when models are trained here")
    ap.add_argument("--requests", type=int, default=50)
    ap.add_argument("--n", type=int, default=16, help="images per grid")
    ap.add_argument("--data", default=str(DEFAULT_DATA), help="Fashion-MNIST .gz folder (for training)")
    args = ap.parse_args()
    folder = Path(args.models or tempfile.mkdtemp(prefix="bench_serve_"))
    if not (folder / "gan").is_dir():
        t0 = time.perf_counter()
        make_models(folder, args.iterations, args.data)
        print(f"models trained for {args.iterations} iterations in {time.perf_counter() - t0:.0f} s -> {folder}")
    proc, url = start(folder)
    try:
        from genlab.command import grid_png
        x = np.load(folder / "data" / "val_x.npy", mmap_mode="r")[:1]
        image = grid_png((x + 1.0) / 2.0, 1, scale=1)

        def get(path, **kw):
            return urllib.request.urlopen(f"{url}{path}?{urllib.parse.urlencode(kw)}", timeout=60).read()
        rows = [
            (f"grid of {args.n} (GAN, class Sneaker)",
             lambda i: get("/api/generate", model="gan", cls="Sneaker", seed=i, n=args.n)),
            (f"grid of {args.n} (VAE)", lambda i: get("/api/generate", model="vae", seed=i, n=args.n)),
            ("interpolation, 9 frames (GAN)",
             lambda i: get("/api/interpolate", model="gan", src="Sandal", dst="Ankle boot", seed=i, steps=9)),
            ("edit of an upload, 7 frames (VAE)",
             lambda i: upload(url + "/api/edit", image, {"model": "vae", "to": "Bag", "steps": 7})),
        ]
        print(f"{'request':40s} {'median ms':>10s} {'p10':>8s} {'p90':>8s}   ({args.requests} requests each)")
        for name, make_request in rows:
            med, p10, p90 = timed(make_request, args.requests)
            print(f"{name:40s} {med:10.1f} {p10:8.1f} {p90:8.1f}")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


if __name__ == "__main__":
    main()
