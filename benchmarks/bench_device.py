"""Training speed of every architecture on the device present: one command, comparable numbers.

Times this project's compiled training loop (genlab.training.loop.CompiledSteps, as the stages run it) on
the real Fashion-MNIST training images (all 60,000), batch --batch (default 128), and prints
iterations/s and images/s per configuration:
  gan_mlp, gan_dcgan (conditional, 32 filters), vae_mlp (hidden 512), vae_conv (16 filters)
                      the default settings (train.xla auto, float32, one device)
  *_stream            the same with train.data_in_memory false (batches read from a memory-mapped .npy)
  *_bf16, *_fp16      mixed precision (only where a GPU is present; ignored on a CPU)
  *_mirrored          train.strategy mirrored over all GPUs (only with 2 or more GPUs), or with
                      --cpu-devices N over N logical CPU devices (shows the cost of the replicas'
                      all-reduce on one CPU, not a speed-up)
Each configuration runs in its own process; --rounds rounds go round-robin over the configurations
and the best and median rates are reported (on a shared machine the best is the least disturbed).
The table, the device description and the load average are printed and written to
benchmarks/results/bench_device-<host>-<UTC time>.md (and .json).

    python benchmarks/bench_device.py [--seconds 10] [--rounds 3] [--batch 128] [--only NAME ...]
                                      [--cpu-devices N] [--data ../shared/data/fashion-mnist]
"""

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "fashion-mnist"
RESULTS = ROOT / "benchmarks" / "results"
BASE = ["gan_mlp", "gan_dcgan", "vae_mlp", "vae_conv"]


def parse_name(name):
    """'gan_dcgan_fp16' -> (family, arch, {"mixed_precision": .., "strategy": .., "data_in_memory": ..})."""
    family, arch, *rest = name.split("_")
    extra = rest[0] if rest else ""
    return family, arch, {"mixed_precision": extra if extra in ("bf16", "fp16") else "none",
                          "strategy": "mirrored" if extra == "mirrored" else "default",
                          "data_in_memory": extra != "stream"}


def device_info():
    """(description, n_gpus) of this machine, as TensorFlow sees it."""
    import tensorflow as tf
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        names = [tf.config.experimental.get_device_details(g).get("device_name", g.name) for g in gpus]
        return f"{len(gpus)} GPU: " + ", ".join(names), len(gpus)
    model = platform.processor() or "CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"CPU: {model}, {os.cpu_count()} logical CPUs", 0


def load(data_dir):
    import numpy as np

    from genlab.data.readers import read_idx
    x = read_idx(Path(data_dir) / "train-images-idx3-ubyte.gz").astype(np.float32)[..., None] / 127.5 - 1.0
    y = read_idx(Path(data_dir) / "train-labels-idx1-ubyte.gz").astype(np.int32)
    return x, y


def child(name, args):
    """One configuration: print one JSON line with its rate."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if args.cpu_devices:
        os.environ["GENLAB_CPU_DEVICES"] = str(args.cpu_devices)
    import numpy as np
    import tensorflow as tf

    from genlab.models.gan import GAN, gan_config
    from genlab.models.vae import VAE, vae_config
    from genlab.params import Gan, Vae
    from genlab.training import devices
    from genlab.training.gan import GanTask
    from genlab.training.loop import CompiledSteps, TrainSettings, set_determinism
    from genlab.training.vae import VaeTask

    family, arch, device_params = parse_name(name)
    x, y = load(args.data)
    if not device_params["data_in_memory"]:   # what normalize writes, memory-mapped (deleted at exit)
        tmp = tempfile.TemporaryDirectory(prefix="bench-device-")
        np.save(Path(tmp.name) / "x.npy", x)
        x = np.load(Path(tmp.name) / "x.npy", mmap_mode="r")
    settings = TrainSettings(iterations=10 ** 9, batch_size=args.batch, seed=0, log_every=10 ** 9,
                             ckpt_every=10 ** 9, xla="auto", **device_params)
    placement = devices.Placement(settings, arch)
    set_determinism(0)
    shape, value_range = [28, 28, 1], [-1.0, 1.0]
    with placement.scope():
        if family == "gan":
            gan = Gan.of(arch=arch, conditional=arch == "dcgan", latent_dim=100, hidden=128, filters=32, lr=2e-4,
                         beta_1=0.5, beta_2=0.999, d_lr=0.0, loss="ns", ema=0.0)
            model = GAN(gan_config(gan, shape=shape, n_classes=10, value_range=value_range))
            if placement.replicas > 1:
                devices.sync_batch_norm(model)
            task = GanTask(model, x, y, gan, 0, in_memory=settings.data_in_memory, optimizer=placement.optimizer)
        else:
            vae = Vae.of(arch=arch, variant="vae", latent_dim=16, beta=1.0, hidden=512, filters=16, lr=1e-3,
                         prior="normal", prior_components=10, temperature=1.0)
            task = VaeTask(VAE(vae_config(vae, shape=shape, value_range=value_range)), x, x[:1000], vae, 0,
                           in_memory=settings.data_in_memory, optimizer=placement.optimizer)
        steps = CompiledSteps(task, settings, placement.jit_compile, placement)
        chunk = [1]

        def call():
            t0 = time.perf_counter()
            steps.run(tf.constant(chunk[0], tf.int32)).numpy()
            done = chunk[0]
            chunk[0] = max(1, int(chunk[0] / max(time.perf_counter() - t0, 1e-6) * 1.0))  # ~1 s per call
            return done

        t0 = time.perf_counter()
        call()
        warmup = time.perf_counter() - t0
        call()
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < args.seconds:
            n += call()
        rate = n / (time.perf_counter() - t0)
        if not all(np.isfinite(v) for v in steps.read_means().values()):
            raise SystemExit(f"{name}: non-finite losses")
    print(json.dumps({"name": name, "it_s": rate, "images_s": rate * args.batch, "warmup_s": warmup,
                      "xla": placement.jit_compile, "replicas": placement.replicas,
                      "precision": placement.precision, "notes": placement.notes}))


def run_child(name, args):
    cmd = [sys.executable, __file__, "--child", name, "--data", args.data, "--seconds", str(args.seconds),
           "--batch", str(args.batch), "--cpu-devices", str(args.cpu_devices)]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if out.returncode or not lines:
        print(f"{name}: failed\n{out.stderr[-2000:]}", flush=True)
        return None
    return json.loads(lines[-1])


def configurations(n_gpus, cpu_devices):
    names = list(BASE) + ["gan_dcgan_stream", "vae_conv_stream"]
    if n_gpus:
        names += [f"{b}_{p}" for b in BASE for p in ("bf16", "fp16")]
    if n_gpus > 1 or cpu_devices > 1:
        names += [f"{b}_mirrored" for b in BASE]
    return names


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(DEFAULT_DATA), help="folder with Fashion-MNIST train-*-ubyte.gz")
    ap.add_argument("--seconds", type=float, default=10.0, help="timed seconds per configuration and round")
    ap.add_argument("--rounds", type=int, default=3, help="rounds over all configurations (round-robin)")
    ap.add_argument("--batch", type=int, default=128, help="global batch (train.batch_size)")
    ap.add_argument("--cpu-devices", type=int, default=0,
                    help="split the CPU into N logical devices and add the *_mirrored configurations")
    ap.add_argument("--only", nargs="*", help="run only these configurations (e.g. gan_dcgan vae_conv_fp16)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args.child, args)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    device, n_gpus = device_info()
    names = args.only or configurations(n_gpus, args.cpu_devices)
    load_before = os.getloadavg()[0]
    header = (f"{device}; load average {load_before:.2f}; batch {args.batch}; {args.seconds:g} s per configuration, "
              f"{args.rounds} rounds; TensorFlow {__import__('tensorflow').__version__}")
    print(header, flush=True)
    runs = {name: [] for name in names}
    for _ in range(args.rounds):
        for name in names:
            r = run_child(name, args)
            if r:
                runs[name].append(r)
    rows = ["| configuration | replicas | precision | xla | best it/s | median it/s | images/s (best) | warm-up s |",
            "|---|---|---|---|---|---|---|---|"]
    results = []
    for name, rs in runs.items():
        if not rs:
            continue
        rates = sorted(r["it_s"] for r in rs)
        best, median = rates[-1], rates[len(rates) // 2]
        r0 = rs[0]
        rows.append(f"| {name} | {r0['replicas']} | {r0['precision']} | {'on' if r0['xla'] else 'off'} | "
                    f"{best:.1f} | {median:.1f} | {best * args.batch:,.0f} | {min(r['warmup_s'] for r in rs):.1f} |")
        results.append({"name": name, "best_it_s": best, "median_it_s": median, "images_s": best * args.batch,
                        **{k: r0[k] for k in ("replicas", "precision", "xla", "notes")}})
    footer = f"load average after: {os.getloadavg()[0]:.2f}"
    table = "\n".join(rows)
    print(table + "\n" + footer)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = f"bench_device-{socket.gethostname()}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
    (RESULTS / f"{stem}.md").write_text(f"{header}\n\n{table}\n\n{footer}\n")
    (RESULTS / f"{stem}.json").write_text(json.dumps({"device": device, "load_before": load_before,
                                                      "batch": args.batch, "seconds": args.seconds,
                                                      "rounds": args.rounds, "results": results}, indent=1))
    print(f"written: {RESULTS / stem}.md and .json")


if __name__ == "__main__":
    main()
