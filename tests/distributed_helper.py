"""Run by tests/test_distributed.py in a subprocess (logical devices and multi-worker clusters must be
set up before TensorFlow starts): trains a small GAN or VAE on a real Fashion-MNIST slice with the
given train.* settings and writes the final weights and the logged losses to an .npz.

    python tests/distributed_helper.py OUT.npz WORKDIR FAMILY key=value ...
FAMILY: gan (MLP recipe networks, BatchNorm in the generator) | gan_options (the same with gan.loss hinge,
gan.ema 0.9, gan.d_lr 2e-3) | gan_dcgan | vae (MLP) | vae_conv;
key=value: TrainSettings fields (strategy=mirrored, data_in_memory=false, iterations=20, ...) and
kill_at=N (stop with an exception at the log of iteration N, like kill -9: for resume tests).
Environment: GENLAB_CPU_DEVICES, TF_CONFIG as for the stages; GENLAB_TEST_DATA as for conftest.
"""

import json
import os
import sys
from pathlib import Path

import numpy as np

from conftest import ROOT, shared_data_dir  # this script's folder, tests/, is first on sys.path

sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

N_TRAIN, N_VAL = 2000, 500


class Killed(BaseException):
    pass


def real_slice(processed):
    """The first N_TRAIN training and N_VAL test images in the processed layout, also saved as .npy
    (normalize's layout) in `processed` so that the streaming path can memory-map them."""
    from genlab.data.readers import read_idx
    d = shared_data_dir() / "fashion-mnist"
    x = read_idx(d / "train-images-idx3-ubyte.gz")[:N_TRAIN].astype(np.float32)[..., None] / 127.5 - 1.0
    y = read_idx(d / "train-labels-idx1-ubyte.gz")[:N_TRAIN].astype(np.int32)
    xv = read_idx(d / "t10k-images-idx3-ubyte.gz")[:N_VAL].astype(np.float32)[..., None] / 127.5 - 1.0
    yv = read_idx(d / "t10k-labels-idx1-ubyte.gz")[:N_VAL].astype(np.int32)
    processed.mkdir(parents=True, exist_ok=True)
    for split, (a, b) in {"train": (x, y), "val": (xv, yv)}.items():
        np.save(processed / f"{split}_x.npy", a)
        np.save(processed / f"{split}_y.npy", b)
    meta = {"dataset": "fashion_mnist", "shape": [28, 28, 1], "range": [-1.0, 1.0], "n_classes": 10,
            "counts": {"train": N_TRAIN, "val": N_VAL}}
    (processed / "meta.json").write_text(json.dumps(meta))


def parse(value):
    return {"true": True, "false": False}.get(value, int(value) if value.lstrip("-").isdigit() else value)


def main():
    out, work, family = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    opts = dict(a.split("=", 1) for a in sys.argv[4:])
    kill_at = int(opts.pop("kill_at", 0))
    settings = dict(iterations=20, batch_size=64, seed=1, log_every=5, ckpt_every=10)
    settings.update({k: parse(v) for k, v in opts.items()})
    processed = work / "processed"
    if not (processed / "meta.json").exists():
        real_slice(processed)

    from genlab.training.loop import TrainSettings, load_training_data
    settings = TrainSettings(**settings)
    dataset = load_training_data(processed, ["train", "val"], in_memory=settings.data_in_memory)
    logged = []

    def on_log(step, values):
        logged.append([step] + [values[k] for k in sorted(values)])
        if step == kill_at:
            raise Killed()

    dirs = dict(model_dir=work / "model", ckpt_dir=work / "ckpt", live_dir=work / "live")
    try:
        if family.startswith("gan"):
            from genlab.params import Gan
            from genlab.training.gan import train_gan
            arch = "dcgan" if family == "gan_dcgan" else "mlp"
            options = dict(loss="hinge", ema=0.9, d_lr=2e-3) if family == "gan_options" else dict(loss="ns")
            gan = Gan.of(arch=arch, conditional=arch == "dcgan", latent_dim=16, hidden=64, filters=4, lr=1e-3,
                         beta_1=0.5, beta_2=0.999, **{"d_lr": 0.0, "ema": 0.0, **options})
            model = train_gan(dataset, **dirs, gan=gan, settings=settings, on_log=on_log, out=sys.stderr)
            nets = (model.generator, model.discriminator)
        else:
            from genlab.params import Vae
            from genlab.training.vae import train_vae
            arch = "conv" if family == "vae_conv" else "mlp"
            vae = Vae.of(arch=arch, variant="vae", latent_dim=4, beta=1.0, hidden=64, filters=4, lr=1e-3,
                         prior="normal", prior_components=10, temperature=1.0)
            model = train_vae(dataset, **dirs, vae=vae, settings=settings, on_log=on_log, out=sys.stderr)
            nets = (model.encoder, model.decoder)
    except Killed:
        print(f"killed at {kill_at}", file=sys.stderr)
        return
    weights = [np.asarray(v.numpy()) for net in nets for v in net.variables]
    np.savez(out, logged=np.array(logged, np.float64), **{f"w{i:03d}": w for i, w in enumerate(weights)})


if __name__ == "__main__":
    main()
