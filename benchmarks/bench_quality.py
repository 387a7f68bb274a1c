"""Quality per CPU-minute: this project's default GAN and VAE against the recipes people would copy,
each trained for the same wall-clock budget, scored with the project's evaluate metrics.

    .venv/bin/python benchmarks/bench_quality.py [--minutes 5] [--n 10000] [--data ../shared/data/fashion-mnist]
        [--evaluator benchmarks/results/evaluator] [--iw-k K] [--bounds-n N] [--only NAME ...]
        [--variant NAME=key=value[,key=value...]] [--against test|val]
        [--out benchmarks/results/bench_quality]

Models (each trained in its own process, one after the other, on the same data):
  recipe_mlp_gan   the original recipe's MLP GAN (genlab.models.gan mlp = its networks; batch 128, Adam 2e-4/0.5,
                   unconditional), in this project's compiled loop (XLA, as the pipeline runs MLPs)
  reference_dcgan  the common tutorial DCGAN (benchmarks/references.py), batch 64, same loop
  default_gan      this project's GAN as params.yaml sets it (what `dvc repro` trains)
  reference_vae    the Keras "Variational AutoEncoder" example (latent 2), batch 128, same loop
  default_vae      this project's VAE as params.yaml sets it
  --variant NAME=gan.ema=0.999,gan.loss=hinge   an extra row: the default model with params changed
                   (keys gan.*, vae.* or train.batch_size; the family follows from the keys)

Data: Fashion-MNIST from --data, scaled to params normalize.range and split into train/validation
exactly as the normalize stage does (54,000 training images); the test split is the yardstick
(--against val: the 6,000 validation images instead, for choosing a default: choices are never made on test).
Time: each model trains for --minutes of wall time, counted from the end of its first compiled call
(one iteration: tracing and compilation, reported as warm-up, are not charged); data loading, model
building, sampling and scoring are outside the budget. The 1-minute load average before and after
each model's training is recorded, so a disturbed run shows in the table.
Scoring: --n images per model (conditional GANs draw classes uniformly) against the first --n test
images with one evaluator (genlab.evaluation.scoring.score_models, params evaluate.*), beside the real-vs-real
floor; VAEs also get the test ELBO and the importance-weighted bound (genlab.evaluation.elbo.vae_bounds,
evaluate.iw_k samples, pixels binarized at evaluate.binarize_threshold) on the same test images
(or the first --bounds-n of them). KID uses subsets of min(evaluate.kid_subset_size, N) images.
The evaluator is --evaluator if it exists, else one trained here with params evaluator.* and cached
there. Writes <out>.md (the table) and <out>.json (every number).
"""

import argparse
import dataclasses
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "fashion-mnist"
RESULTS = ROOT / "benchmarks" / "results"
MODELS = {
    "recipe_mlp_gan": ("gan", "the original recipe's MLP GAN"),
    "reference_dcgan": ("gan", "tutorial DCGAN"),
    "default_gan": ("gan", "this project's default GAN"),
    "reference_vae": ("vae", "Keras example conv VAE"),
    "default_vae": ("vae", "this project's default VAE"),
}
CHUNK_SECONDS = 2.0
SPLITS = {"test": "test", "val": "validation"}


def load1():
    return round(os.getloadavg()[0], 2)


def read_params(overrides=None):
    """params.yaml of this checkout with dotted-key overrides applied."""
    import yaml
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for key, value in (overrides or {}).items():
        node = params
        *parents, last = key.split(".")
        for p in parents:
            node = node[p]
        if last not in node:
            raise SystemExit(f"--variant: {key} is not a key of params.yaml")
        node[last] = value
    return params


def load_data(data_dir, params):
    """{"meta", "train", "val", "test"} like the normalize stage's output, from the raw .gz files."""
    import numpy as np

    from genlab.data.normalize import scale, split_indices
    from genlab.data.readers import read_idx
    d = Path(data_dir)
    value_range = params["normalize"]["range"]
    x = read_idx(d / "train-images-idx3-ubyte.gz")
    y = read_idx(d / "train-labels-idx1-ubyte.gz").astype(np.int32)
    train_idx, val_idx = split_indices(len(y), params["normalize"]["val_fraction"], params["normalize"]["seed"])
    out = {"meta": {"dataset": "fashion_mnist", "shape": [28, 28, 1], "range": [float(v) for v in value_range],
                    "n_classes": 10},
           "train": (scale(x[train_idx], value_range), y[train_idx]),
           "val": (scale(x[val_idx], value_range), y[val_idx]),
           "test": (scale(read_idx(d / "t10k-images-idx3-ubyte.gz"), value_range),
                    read_idx(d / "t10k-labels-idx1-ubyte.gz").astype(np.int32))}
    return out


def scored_images(dataset, against, n):
    """The first n images of the split the generated ones are scored against (test, or val for choosing)."""
    x = dataset[against][0]
    if n > len(x):
        raise SystemExit(f"bench_quality: --n/--bounds-n {n:,} exceed the {len(x):,} {SPLITS[against]} images: "
                         f"give at most {len(x)}")
    return x[:n]


def build(name, family, params, dataset):
    """(task, batch_size, jit_compile, description) for one benchmark row."""
    from references import (
        DCGAN,
        DCGAN_BATCH,
        RECIPE_MLP,
        RECIPE_MLP_BATCH,
        VAE_EXAMPLE,
        VAE_EXAMPLE_BATCH,
        ReferenceDCGAN,
        ReferenceVAE,
    )

    from genlab.models.vae import VAE, vae_config
    from genlab.params import read
    from genlab.training.devices import use_xla
    from genlab.training.gan import GanTask, gan_task
    from genlab.training.vae import VaeTask

    seed = read(params, "train").seed
    value_range = dataset["meta"]["range"]
    (x, y), (x_val, _) = dataset["train"], dataset["val"]
    if name == "recipe_mlp_gan":
        task = gan_task(dataset, RECIPE_MLP, seed=seed)
        return task, RECIPE_MLP_BATCH, use_xla("mlp"), "mlp 100-128-784, uncond., Adam 2e-4/0.5, batch 128"
    if name == "reference_dcgan":
        task = GanTask(ReferenceDCGAN(value_range), x, y, DCGAN, seed)
        return task, DCGAN_BATCH, use_xla("dcgan"), "7x7x128-ConvT64-ConvT1 / Conv64-Conv128, batch 64"
    if name == "reference_vae":
        task = VaeTask(ReferenceVAE(value_range), x, x_val, VAE_EXAMPLE, seed)
        return task, VAE_EXAMPLE_BATCH, use_xla("conv"), "Conv32-Conv64-Dense16, latent 2, batch 128"
    batch = read(params, "train").batch_size
    if family == "gan":
        g = read(params, "gan")
        desc = (f"{g.arch}, filters {g.filters}, {'cond.' if g.conditional else 'uncond.'}, "
                f"loss {g.loss}, lr {g.lr:g}/{g.d_lr or g.lr:g}, Adam ({g.beta_1:g}, {g.beta_2:g}), ema {g.ema:g}, "
                f"batch {batch}")
        return gan_task(dataset, g, seed=seed), batch, use_xla(g.arch), desc
    v = read(params, "vae")
    cfg = vae_config(v, shape=dataset["meta"]["shape"], value_range=value_range)
    desc = (f"{v.arch}, filters {v.filters}, latent {v.latent_dim}, lr {v.lr:g}, batch {batch}, samples from "
            + (f"a {v.prior_components}-component code mixture" if v.prior == "gmm" else "N(0, I)")
            + f", decoded at temperature {v.temperature:g}")
    task = VaeTask(VAE(cfg), x, x_val, v, seed)
    return task, batch, use_xla(v.arch), desc


def train_for(task, batch, jit, seconds, seed):
    """Run the task's compiled steps for `seconds` of wall time after the first (compiling) call."""
    import tensorflow as tf

    from genlab.training.loop import CompiledSteps, TrainSettings
    settings = TrainSettings(iterations=10 ** 9, batch_size=batch, seed=seed, log_every=10 ** 9, ckpt_every=10 ** 9)
    steps = CompiledSteps(task, settings, jit)
    t0 = time.perf_counter()
    steps.run(tf.constant(1, tf.int32)).numpy()
    warmup = time.perf_counter() - t0
    start, done, chunk = time.perf_counter(), 0, 1
    while True:
        left = seconds - (time.perf_counter() - start)
        if left <= 0:
            break
        t0 = time.perf_counter()
        steps.run(tf.constant(chunk, tf.int32)).numpy()
        done += chunk
        rate = chunk / max(time.perf_counter() - t0, 1e-6)
        left = seconds - (time.perf_counter() - start)
        chunk = max(1, int(rate * min(CHUNK_SECONDS, left)))
    elapsed = time.perf_counter() - start
    error = steps.divergence()
    if error:
        raise SystemExit(str(error))
    return {"iterations": done + 1, "train_s": elapsed, "warmup_s": warmup, "it_s": done / max(elapsed, 1e-9),
            "losses": steps.read_means()}


def child(name, overrides, args):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np

    from genlab.data.processed import to_unit
    from genlab.evaluation.elbo import vae_bounds
    from genlab.training.loop import set_determinism

    family = MODELS[name][0] if name in MODELS else overrides.pop("__family__")
    params = read_params(overrides)
    t0 = time.perf_counter()
    dataset = load_data(args.data, params)
    load_s = time.perf_counter() - t0
    seed = params["train"]["seed"]
    set_determinism(seed)
    task, batch, jit, desc = build(name, family, params, dataset)
    row = {"name": name, "family": family, "desc": desc, "overrides": overrides, "batch": batch, "xla": bool(jit),
           "data_load_s": load_s, "load_before": load1()}
    row.update(train_for(task, batch, jit, args.minutes * 60.0, seed))
    row["load_after"] = load1()
    task.finish()  # GAN with ema: the averaged generator; VAE, vae.prior gmm: its code mixture; AE: code Gaussian
    model = task.model
    t0 = time.perf_counter()
    x = model.generate(args.n, seed=params["sample"]["seed"])
    np.save(Path(args.samples) / f"{name}.npy", x)
    row["sample_s"] = time.perf_counter() - t0
    if family == "vae" and model.variational:
        t0 = time.perf_counter()
        ev = params["evaluate"]
        x_bounds = scored_images(dataset, args.against, args.bounds_n or args.n)
        row.update(vae_bounds(model.encode, model.decode_logits, to_unit(x_bounds, dataset["meta"]["range"]),
                              k=args.iw_k or ev["iw_k"], threshold=ev["binarize_threshold"], seed=ev["seed"]))
        row["bounds_s"] = time.perf_counter() - t0
    print(json.dumps(row), flush=True)


def run_child(name, overrides, args, samples):
    cmd = [sys.executable, __file__, "--child", name, "--overrides", json.dumps(overrides), "--data", args.data,
           "--minutes", str(args.minutes), "--n", str(args.n), "--samples", samples, "--iw-k", str(args.iw_k),
           "--bounds-n", str(args.bounds_n), "--against", args.against]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if out.returncode or not lines:
        raise SystemExit(f"bench_quality: {name} failed:\n{out.stderr[-3000:]}{out.stdout[-1000:]}")
    return json.loads(lines[-1])


def parse_variant(text):
    """"NAME=key=value,key=value" -> (NAME, {key: value}, family)."""
    import yaml
    name, _, rest = text.partition("=")
    overrides = {}
    for item in filter(None, rest.split(",")):
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--variant {text!r}: expected NAME=key=value[,key=value...]")
        overrides[key.strip()] = yaml.safe_load(value)
    families = {k.split(".")[0] for k in overrides} - {"train"}
    if not name or name in MODELS or len(families) != 1 or not families <= {"gan", "vae"}:
        raise SystemExit(f"--variant {text!r}: give a new NAME and keys of one family (gan.* or vae.*)")
    return name, overrides, families.pop()


def evaluator_for(args, params, dataset):
    """The evaluator (loaded, or trained with params evaluator.* and cached) and its test accuracy."""
    from genlab.evaluation.evaluator import (
        accuracy,
        load_evaluator,
        load_evaluator_info,
        save_evaluator,
        train_evaluator,
    )
    from genlab.params import Evaluator
    path = Path(args.evaluator)
    if not (path / "evaluator.json").exists():
        e = params["evaluator"]
        print(f"bench_quality: training the evaluator ({e['epochs']} epochs) -> {path}", flush=True)
        (x, y), (xv, yv), (xt, yt) = dataset["train"], dataset["val"], dataset["test"]
        model, info = train_evaluator(x, y, xv, yv, Evaluator.of(**e), n_classes=10)
        info.update(dataset="fashion_mnist", input_range=dataset["meta"]["range"],
                    test_accuracy=accuracy(model, xt, yt), n_test=len(xt))
        save_evaluator(model, path, info)
    info = load_evaluator_info(path)
    if info.get("dataset") != "fashion_mnist":
        raise SystemExit(f"bench_quality: {path} was trained on {info.get('dataset')!r}, not fashion_mnist")
    return load_evaluator(path), info["test_accuracy"]


def fmt(v, spec):
    return "–" if v is None or (isinstance(v, float) and not math.isfinite(v)) else format(v, spec)


def table(rows, scores, meta):
    split = SPLITS[meta['against']]
    lines = [f"Equal wall time: {meta['minutes']:g} min of training per model (after compilation), "
             f"N = {meta['n']:,} generated vs {split} images, evaluator test accuracy "
             f"{meta['evaluator_accuracy']:.4f}; VAE bounds on {meta['bounds_n']:,} binarized {split} "
             f"images, IW bound with k = {meta['iw_k']}; "
             f"{meta['cpus']} CPUs, {meta['when']}.", "",
             "| model | iterations | it/s | FD | KID | precision | recall | classes | detector acc. "
             f"| pixel detector | {meta['against']} ELBO | IW bound | load before→after |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        s = scores[r["name"]]
        lines.append(f"| {r['name']} ({r['desc']}) | {r['iterations']:,} | {r['it_s']:.1f} | {s['fd']:.2f} "
                     f"| {s['kid']:.3f} | {s['precision']:.3f} | {s['recall']:.3f} | {s['classes_covered']} "
                     f"| {s['detector_accuracy']:.3f} | {fmt(s.get('pixel_detector_accuracy'), '.3f')} "
                     f"| {fmt(r.get('elbo'), '.1f')} | {fmt(r.get('iw_bound'), '.1f')} "
                     f"| {r['load_before']:.1f}→{r['load_after']:.1f} |")
    f = scores["floor"]
    lines.append(f"| real-vs-real floor (training images) | | | {f['fd']:.2f} | {f['kid']:.3f} "
                 f"| {f['precision']:.3f} | {f['recall']:.3f} | {f['classes_covered']} | {f['detector_accuracy']:.3f} "
                 f"| {fmt(f.get('pixel_detector_accuracy'), '.3f')} | | | |")
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=5.0, help="training wall time per model")
    ap.add_argument("--n", type=int, default=10000, help="images generated per model and test images scored")
    ap.add_argument("--data", default=str(DEFAULT_DATA), help="folder with Fashion-MNIST *-ubyte.gz")
    ap.add_argument("--evaluator", default=str(RESULTS / "evaluator"), help="evaluator folder (trained if absent)")
    ap.add_argument("--min-evaluator-accuracy", type=float, default=None,
                    help="refuse a weaker evaluator (default: params evaluate.min_evaluator_accuracy.fashion_mnist)")
    ap.add_argument("--iw-k", type=int, default=0, help="samples of the IW bound (default: params evaluate.iw_k)")
    ap.add_argument("--bounds-n", type=int, default=0,
                    help="test images for the VAE bounds (default: --n; the IW bound costs iw_k decodes per image)")
    ap.add_argument("--jobs", type=int, default=1,
                    help="models trained at once (default 1; more only for smoke tests: they share the CPU)")
    ap.add_argument("--against", choices=list(SPLITS), default="test",
                    help="the split scored against: test (the yardstick, default) or val (for choosing a default)")
    ap.add_argument("--only", nargs="+", choices=list(MODELS), help="run only these rows (default: all)")
    ap.add_argument("--variant", action="append", default=[], metavar="NAME=key=value[,key=value]",
                    help="an extra row: the project's default model with these params changed")
    ap.add_argument("--out", default=str(RESULTS / "bench_quality"), help="writes OUT.md and OUT.json")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--overrides", default="{}", help=argparse.SUPPRESS)
    ap.add_argument("--samples", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args.child, json.loads(args.overrides), args)
    if args.minutes <= 0 or args.n < 2:
        raise SystemExit("bench_quality: --minutes must be > 0 and --n >= 2")

    params = read_params()
    dataset = load_data(args.data, params)
    scored_images(dataset, args.against, max(args.n, args.bounds_n))  # too many images stop here, before any training
    runs = [(name, {}) for name in (args.only or MODELS)]
    for text in args.variant:
        name, overrides, family = parse_variant(text)
        read_params(overrides)  # unknown keys stop here, before any training
        runs.append((name, dict(overrides, __family__=family)))
    print(f"bench_quality: {os.cpu_count()} CPUs, load {load1()}; {args.minutes:g} min per model, "
          f"N = {args.n}; rows: {', '.join(n for n, _ in runs)}", flush=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_quality-") as samples:
        with ThreadPoolExecutor(max(1, args.jobs)) as pool:
            futures = [pool.submit(run_child, name, overrides, args, samples) for name, overrides in runs]
            for f in futures:  # in table order, each as soon as it is done
                r = f.result()
                rows.append(r)
                print(f"  {r['name']}: {r['iterations']} iterations in {r['train_s']:.0f} s ({r['it_s']:.1f} it/s, "
                      f"warm-up {r['warmup_s']:.1f} s), load {r['load_before']} -> {r['load_after']}", flush=True)
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import numpy as np

        from genlab.evaluation.evaluator import check_gate
        from genlab.evaluation.scoring import score_models
        from genlab.params import read
        evaluator, acc = evaluator_for(args, params, dataset)
        gate = (args.min_evaluator_accuracy if args.min_evaluator_accuracy is not None
                else params["evaluate"]["min_evaluator_accuracy"]["fashion_mnist"])
        check_gate(acc, gate, "fashion_mnist")
        x_test = scored_images(dataset, args.against, args.n)
        generated = {r["name"]: np.load(Path(samples) / f"{r['name']}.npy") for r in rows}
        t0 = time.perf_counter()
        settings = read(params, "evaluate")  # KID subsets cannot be larger than N (smoke runs)
        settings = dataclasses.replace(settings, kid_subset_size=min(settings.kid_subset_size, args.n))
        scores = score_models(evaluator, generated, x_test, dataset["train"][0],
                              value_range=dataset["meta"]["range"], settings=settings)
    meta = {"minutes": args.minutes, "n": args.n, "against": args.against,
            "iw_k": args.iw_k or params["evaluate"]["iw_k"],
            "bounds_n": args.bounds_n or args.n, "evaluator_accuracy": acc, "cpus": os.cpu_count(),
            "when": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "score_s": time.perf_counter() - t0,
            "command": " ".join(["benchmarks/bench_quality.py"] + sys.argv[1:])}
    md = table(rows, scores, meta)
    print(md)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text(f"`{meta['command']}`\n\n" + md)
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": rows, "scores": scores}, indent=1))
    print(f"bench_quality: wrote {out.with_suffix('.md')} and {out.with_suffix('.json')}; load {load1()}")


if __name__ == "__main__":
    main()
