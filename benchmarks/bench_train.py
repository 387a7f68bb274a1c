"""Training speed: this project's compiled steps vs the original Keras recipe's loop.

Prints iterations/s, images/s and peak memory (max RSS) for
  recipe_gan     the original recipe's loop, ported to Keras 3 as literally as possible:
                 generator.predict + discriminator.train_on_batch x2 + combined.train_on_batch
  gan_mlp        this project's GAN step with the recipe's networks (XLA loop: the default for mlp)
  gan_mlp_noxla  the same without XLA
  gan_dcgan      DCGAN, gan.filters 32, conditional (no XLA on CPU: the default)
  vae_mlp        VAE mlp, hidden 512, latent 16 (XLA)
  vae_conv       VAE conv, filters 16, latent 16 (no XLA on CPU)
  gan_dcgan_xla  (only with --all) DCGAN under XLA, to show why conv nets skip XLA on a CPU
and the ratio gan_mlp / recipe_gan. With --onednn each configuration runs twice, with TensorFlow's
oneDNN operations off and on (TF_ENABLE_ONEDNN_OPTS=0 / 1; TensorFlow's own default depends on the CPU:
on where it has AVX-512 VNNI or BF16, as recent Xeons and EPYC Zen 4 do, off on older CPUs), and the
losses after the warm-up chunk show whether the two give the same numbers. Each configuration runs in
its own process (so max RSS is its own), on the same real Fashion-MNIST training images (all 60,000),
batch 128, for --seconds of timed
work after a warm-up that includes compilation; --rounds rounds go round-robin over the
configurations and the best and median rates are reported (on a shared machine the best is the
least disturbed).

    python benchmarks/bench_train.py [--data ../shared/data/fashion-mnist] [--seconds 10] [--rounds 3]
                                     [--only NAME ...] [--all] [--onednn]
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "fashion-mnist"
BATCH = 128
CONFIGS = ["recipe_gan", "gan_mlp", "gan_mlp_noxla", "gan_dcgan", "vae_mlp", "vae_conv"]
EXTRA = ["gan_dcgan_xla"]


def load(data_dir):
    """Fashion-MNIST training images as float32 (N, 28, 28, 1) in [-1, 1], labels int32."""
    import numpy as np

    from genlab.data.readers import read_idx
    x = read_idx(Path(data_dir) / "train-images-idx3-ubyte.gz").astype(np.float32)[..., None] / 127.5 - 1.0
    y = read_idx(Path(data_dir) / "train-labels-idx1-ubyte.gz").astype(np.int32)
    return x, y


def time_loop(step, seconds, warmup, after_warmup=None):
    """Run step() (which does k iterations and returns k) warmup times, then for `seconds`."""
    t0 = time.perf_counter()
    for _ in range(warmup):
        step()
    first = time.perf_counter() - t0
    if after_warmup:
        after_warmup()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        n += step()
    return n / (time.perf_counter() - t0), first


def bench_recipe(x, seconds):
    """The recipe's networks and loop (Keras 3 spelling: learning_rate=, negative_slope=, Input)."""
    import numpy as np
    from keras.layers import BatchNormalization, Dense, Input, LeakyReLU
    from keras.models import Model, Sequential
    from keras.optimizers import Adam

    X_train = x.reshape(len(x), 784)
    generator = Sequential([Input((100,)), Dense(128), LeakyReLU(negative_slope=0.01), BatchNormalization(),
                            Dense(784, activation="tanh")])
    generator.compile(loss="binary_crossentropy", optimizer=Adam(learning_rate=0.0002, beta_1=0.5))
    discriminator = Sequential([Input((784,)), Dense(128), LeakyReLU(negative_slope=0.01),
                                Dense(1, activation="sigmoid")])
    discriminator.compile(loss="binary_crossentropy", optimizer=Adam(learning_rate=0.0002, beta_1=0.5))
    z = Input(shape=(100,))
    discriminator.trainable = False
    gan = Model(z, discriminator(generator(z)))
    gan.compile(loss="binary_crossentropy", optimizer=Adam(learning_rate=0.0002, beta_1=0.5))
    batch_size = BATCH

    def iteration():
        noise = np.random.normal(0, 1, (batch_size, 100))
        gen_imgs = generator.predict(noise, verbose=0)
        # Keras 3 reads `trainable` when a train function is first built (Keras 2 at compile time):
        # toggling it keeps the recipe's meaning, D trains on its own batches and not in `gan`.
        discriminator.trainable = True
        d_loss_real = discriminator.train_on_batch(X_train[np.random.randint(0, X_train.shape[0], batch_size)],
                                                   np.ones((batch_size, 1)))
        d_loss_fake = discriminator.train_on_batch(gen_imgs, np.zeros((batch_size, 1)))
        0.5 * np.add(d_loss_real, d_loss_fake)
        discriminator.trainable = False
        gan.train_on_batch(noise, np.ones((batch_size, 1)))
        return 1

    return time_loop(iteration, seconds, warmup=3)


def bench_project(name, x, y, seconds):
    import numpy as np
    import tensorflow as tf

    from genlab.models.gan import GAN, gan_config
    from genlab.models.vae import VAE, vae_config
    from genlab.params import Gan, Vae
    from genlab.training.gan import GanTask
    from genlab.training.loop import CompiledSteps, TrainSettings, set_determinism
    from genlab.training.vae import VaeTask

    set_determinism(0)
    settings = TrainSettings(iterations=10 ** 9, batch_size=BATCH, seed=0, log_every=10 ** 9, ckpt_every=10 ** 9)
    shape, value_range = [28, 28, 1], [-1.0, 1.0]
    if name.startswith("gan"):
        arch = "mlp" if "mlp" in name else "dcgan"
        gan = Gan.of(arch=arch, conditional=arch == "dcgan", latent_dim=100, hidden=128, filters=32, lr=2e-4,
                     beta_1=0.5, beta_2=0.999, d_lr=0.0, loss="ns", ema=0.0)
        task = GanTask(GAN(gan_config(gan, shape=shape, n_classes=10, value_range=value_range)), x, y, gan, 0)
        jit = name in ("gan_mlp", "gan_dcgan_xla")
    else:
        arch = name.split("_")[1]
        vae = Vae.of(arch=arch, variant="vae", latent_dim=16, beta=1.0, hidden=512, filters=16, lr=1e-3, prior="normal",
                     prior_components=10, temperature=1.0)
        task = VaeTask(VAE(vae_config(vae, shape=shape, value_range=value_range)), x, x[:1000], vae, 0)
        jit = arch == "mlp"
    steps = CompiledSteps(task, settings, jit)
    chunk = {"gan_mlp": 200, "gan_mlp_noxla": 200, "vae_mlp": 50}.get(name, 2 if "xla" in name else 10)

    def call():
        steps.run(tf.constant(chunk, tf.int32)).numpy()
        return chunk

    losses = {}
    rate, first = time_loop(call, seconds, warmup=1, after_warmup=lambda: losses.update(steps.read_means()))
    if not all(np.isfinite(v) for v in steps.read_means().values()):
        raise SystemExit(f"{name}: non-finite losses")
    return rate, first, jit, {k: float(v) for k, v in losses.items()}


def child(name, data, seconds):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    x, y = load(data)
    if name == "recipe_gan":
        rate, first = bench_recipe(x, seconds)
        jit, losses = False, {}
    else:
        rate, first, jit, losses = bench_project(name, x, y, seconds)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"name": name, "it_s": rate, "images_s": rate * BATCH, "warmup_s": first,
                      "xla": jit, "peak_rss_mb": peak_mb, "losses": losses}))


def run_child(name, args):
    config, _, onednn = name.partition("@onednn")
    env = dict(os.environ, **({"TF_ENABLE_ONEDNN_OPTS": onednn} if onednn else {}))
    out = subprocess.run([sys.executable, __file__, "--child", config, "--data", args.data,
                          "--seconds", str(args.seconds)], capture_output=True, text=True, cwd=ROOT, env=env)
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if out.returncode or not lines:
        print(f"{name}: failed\n{out.stderr[-2000:]}")
        return None
    return json.loads(lines[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(DEFAULT_DATA), help="folder with Fashion-MNIST train-*-ubyte.gz")
    ap.add_argument("--seconds", type=float, default=10.0, help="timed seconds per configuration and round")
    ap.add_argument("--rounds", type=int, default=3,
                    help="rounds over all configurations (round-robin, so a busy machine slows all alike)")
    ap.add_argument("--only", nargs="*", choices=CONFIGS + EXTRA, help="run only these configurations")
    ap.add_argument("--all", action="store_true", help="also run " + ", ".join(EXTRA) + " (one round)")
    ap.add_argument("--onednn", action="store_true",
                    help="run each configuration with TF_ENABLE_ONEDNN_OPTS=0 and =1 and compare speed and losses")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args.child, args.data, args.seconds)
    names = args.only or CONFIGS
    if args.onednn:
        names = [f"{n}@onednn{v}" for n in names for v in ("0", "1")]
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; batch {BATCH}; "
          f"{args.seconds:g} s per configuration, {args.rounds} rounds")
    runs = {name: [] for name in names}
    for _ in range(args.rounds):
        for name in names:
            r = run_child(name, args)
            if r:
                runs[name].append(r)
    if args.all and not args.only:
        for name in EXTRA:
            r = run_child(name, args)
            runs[name] = [r] if r else []
    best, median = {}, {}
    print(f"{'':20s} {'best it/s':>10s} {'median it/s':>12s} {'images/s (best)':>16s} {'warm-up s':>10s} "
          f"{'xla':>5s} {'peak RSS MB':>12s}")
    for name, rs in runs.items():
        if not rs:
            continue
        rates = sorted(r["it_s"] for r in rs)
        best[name], median[name] = rates[-1], rates[len(rates) // 2]
        print(f"{name:20s} {best[name]:10.1f} {median[name]:12.1f} {best[name] * BATCH:16.0f} "
              f"{min(r['warmup_s'] for r in rs):10.1f} {str(rs[0]['xla']):>5s} "
              f"{max(r['peak_rss_mb'] for r in rs):12.0f}", flush=True)
    if args.onednn:
        for name in args.only or CONFIGS:
            off, on = runs.get(f"{name}@onednn0"), runs.get(f"{name}@onednn1")
            if off and on and off[0]["losses"]:
                same = off[0]["losses"] == on[0]["losses"]
                print(f"{name}: oneDNN on/off speed {best[name + '@onednn1'] / best[name + '@onednn0']:.2f}x; "
                      f"losses after the warm-up chunk {'identical' if same else 'differ'} "
                      f"(off {off[0]['losses']}, on {on[0]['losses']})")
    if "recipe_gan" in best and "gan_mlp" in best:
        print(f"speed-up of this project's GAN step over the recipe's loop (same networks, same data): "
              f"{best['gan_mlp'] / best['recipe_gan']:.1f}x best vs best, "
              f"{median['gan_mlp'] / median['recipe_gan']:.1f}x median vs median")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
