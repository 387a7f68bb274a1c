"""The `genlab` command: make images with a model folder the pipeline trained (models/gan, models/vae).

    genlab generate MODEL -n 64 [--class C] [--seed S] -o out.png|out.npz
    genlab interpolate MODEL --from A --to B [--steps 9] [--seed S] -o strip.png|strip.npz
    genlab edit MODEL (--image in.png | --seed S) --to C [--from C] [--steps 5] -o out.png|out.npz
    genlab export MODEL OUT_DIR
    genlab serve MODEL [MODEL ...] [--host 127.0.0.1] [--port 8000]
    genlab plots PLOTS_JSON OUT_DIR --md plots.md     (`dvc plots diff REV --json` as PNG images)
    genlab store [--clear]                            (the run store's entries and sizes; --clear empties it)

A class C is a name from the data's meta.json (`--class Sneaker`, `--class "Ankle boot"`) or an id.
`.png` writes a grid of the images (pixel-exact, `--scale` times larger); `.npz` writes `x` (float32
(N, H, W, C) in [0, 1]) and, where there are any, `labels`. Bad input is one `error:` line, exit 1,
and no file is left half-written.
"""

import argparse
import contextlib
import json
import sys
import weakref
from pathlib import Path

import numpy as np

from genlab.errors import GenlabError

META = "data/processed/meta.json"
DATA = "data/processed"
METRICS, SPREAD, PARAMS = "metrics/evaluate.json", "studies/spread/results.json", "params.yaml"   # model card


class PathOption(argparse.Action):
    """A path option that remembers it was given: a path the user names must exist (check_paths),
    while a default that is absent only loses what it adds (class names, the model card's numbers)."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, values)
        namespace.given = (*getattr(namespace, "given", ()), self.dest)


# what each path option names: (a file or a folder, the fix when it does not exist)
PATHS = {
    "meta": (False, "give the data's meta.json (data/processed/meta.json after `dvc repro normalize`)"),
    "data": (True, "give the training data folder (data/processed after `dvc repro normalize`)"),
    "image": (False, "give the path of a PNG or JPEG image"),
    "metrics": (False, "give the evaluate stage's metrics (metrics/evaluate.json)"),
    "spread": (False, "give the seed spread's results (studies/spread/results.json)"),
    "params": (False, "give the params file of the training (params.yaml)"),
    "plots_json": (False, "give the output of `dvc plots diff REV --json`"),
}


def check_paths(args):
    """One line for the first path the user named that does not exist (or is a folder where a file is
    expected, or the other way round), before any model is loaded."""
    for dest in getattr(args, "given", ()) + (("plots_json",) if args.command == "plots" else ()):
        value = getattr(args, dest)
        is_dir, fix = PATHS[dest]
        option = dest if dest == "plots_json" else "--" + dest
        p = Path(value)
        if not p.exists():
            raise GenlabError(f"{option} {value} does not exist: {fix}")
        if p.is_dir() != is_dir:
            raise GenlabError(f"{option} {value} is {'not a folder' if is_dir else 'a folder'}: {fix}")


def class_names(meta_path, n_classes=None):
    """The class names from meta.json; the ids as strings when it is absent (n_classes known), else None."""
    p = Path(meta_path)
    if p.is_file():
        names = json.loads(p.read_text()).get("class_names")
        if isinstance(names, list) and (n_classes is None or len(names) == n_classes):
            return [str(n) for n in names]
    return [str(k) for k in range(n_classes)] if n_classes else None


# files that tell what else a folder holds: (file or glob, what the folder is)
OTHER_KINDS = (
    ("evaluator.json", "the evaluator (the classifier evaluate scores with, train_evaluator's output)"),
    ("evaluator.weights.h5", "the evaluator (the classifier evaluate scores with, train_evaluator's output)"),
    ("saved_model.pb", "a TensorFlow SavedModel (the export's saved_model/)"),
    ("ckpt-*", "training checkpoints"),
    ("snapshots", "a training's logs (dvclive)"),
    ("train_x.npy", "processed data (normalize's output)"),
    ("*.keras", "Keras model files (an export's .keras files)"),
)


def model_dir(path, command):
    """The genlab model folder at path: a GAN or VAE folder the pipeline wrote, or the model/ of an
    export of one. A folder of another kind is one line naming its kind, for `genlab <command>`."""
    p = Path(path)
    if (p / "export.json").is_file():
        if not (p / "model" / "config.json").is_file():
            raise GenlabError(f"{path} is an export without its model/ folder (made by an older genlab export): "
                              "use the model folder it came from, or export it again")
        return p / "model"
    if (p / "config.json").is_file():
        try:
            family = json.loads((p / "config.json").read_text()).get("family")
        except (OSError, ValueError, AttributeError):
            family = None   # load_model says what is wrong with the file
        if isinstance(family, str) and family not in ("gan", "vae"):
            raise GenlabError(f"{path} holds a model of another kind ({family!r}), which genlab {command} cannot "
                              "use: give a GAN or VAE folder the pipeline wrote (models/gan or models/vae)")
        return p
    for pattern, kind in OTHER_KINDS:
        if any(p.glob(pattern)):
            raise GenlabError(f"{path} holds {kind}, not a GAN or VAE, so genlab {command} cannot use it: "
                              "give a model folder the pipeline wrote (models/gan or models/vae)")
    return p   # load_model: config.json not found, train the model first


def class_id(value, names):
    """A class name (any case) or id -> the id; one clear line for one the model does not know."""
    if names is None:
        raise GenlabError(f"class {value!r}: the class names are in the data's meta.json, which was not found: "
                          "run from the project root after `dvc repro normalize`, or pass --meta")
    lowered = [n.lower() for n in names]
    if value.lower() in lowered:
        return lowered.index(value.lower())
    if value.isdigit() and int(value) < len(names):
        return int(value)
    known = ", ".join(f"{k} {n!r}" if n != str(k) else n for k, n in enumerate(names))
    raise GenlabError(f"unknown class {value!r}: this model knows {known}")


def read_image(path, shape):
    """A PNG/JPEG of exactly the model's image size -> float32 (1, H, W, C) in [0, 1]."""
    from PIL import Image, UnidentifiedImageError
    h, w, c = shape
    try:
        with Image.open(path) as img:
            img.load()
            mode = img.mode
            if img.size != (w, h):
                raise GenlabError(f"{path} is {img.size[0]}x{img.size[1]} pixels: this model takes {w}x{h} "
                                  f"images with {c} channel{'s' if c > 1 else ''}; resize it first")
            if c == 1 and mode not in ("L", "1", "I;16", "I"):
                raise GenlabError(f"{path} is a {mode} image: this model takes greyscale images "
                                  "(1 channel); convert it first")
            if c == 3 and mode not in ("RGB",):
                raise GenlabError(f"{path} is a {mode} image: this model takes RGB images (3 channels); "
                                  "convert it first")
            a = np.asarray(img)
    except (FileNotFoundError, IsADirectoryError):
        raise GenlabError(f"{path} not found: give the path of a PNG or JPEG image") from None
    except (UnidentifiedImageError, OSError) as e:
        raise GenlabError(f"{path} is not a readable image ({type(e).__name__}): give a PNG or JPEG") from None
    scale = 65535.0 if a.dtype == np.uint16 or mode.startswith("I") else (1.0 if a.dtype == bool else 255.0)
    x = a.astype(np.float32) / scale
    return x.reshape(1, h, w, c)


@contextlib.contextmanager
def parents_made(*paths):
    """Create the missing folders above each path, as `mkdir -p` would; if the body fails, remove the
    folders made here again (so a failed command leaves nothing behind)."""
    made = []
    try:
        for path in paths:
            for parent in reversed(Path(path).parents):
                if parent.is_dir():
                    continue
                try:
                    parent.mkdir()
                except OSError as e:
                    raise GenlabError(f"{path}: the folder {parent} cannot be created ({e.strerror}): give an "
                                      "output path whose folders exist or can be created") from None
                made.append(parent)
        yield
    except BaseException:
        for d in reversed(made):
            with contextlib.suppress(OSError):
                d.rmdir()
        raise


def check_out(path):
    """-o names a .png or .npz file: said before any image is drawn."""
    if Path(path).suffix.lower() not in (".png", ".npz"):
        raise GenlabError(f"-o {path}: give a .png (a grid) or .npz (the arrays) file name")


def write_images(path, x01, ncol, labels=None, scale=2):
    """x01 (N, H, W, C) in [0, 1] -> a grid PNG (ncol per row) or an .npz, written atomically (missing
    folders above it are created)."""
    from genlab.io import atomic_file, write_npz
    path = Path(path)
    check_out(path)
    x01 = np.clip(np.asarray(x01, np.float32), 0.0, 1.0)
    with parents_made(path):
        if path.suffix.lower() == ".npz":
            write_npz(path, x=x01, **({} if labels is None else {"labels": np.asarray(labels, np.int32)}))
            return
        with atomic_file(path) as f:
            f.write(grid_png(x01, ncol, scale))


def grid_png(x01, ncol, scale=2):
    """x01 (N, H, W, C) in [0, 1] -> the bytes of a grid PNG, ncol images per row, pixel-exact, scale
    PNG pixels per image pixel."""
    import io

    from PIL import Image

    from genlab.data.mosaic import tile
    mosaic = (tile(np.clip(np.asarray(x01, np.float32), 0.0, 1.0), ncol) * 255.0 + 0.5).astype(np.uint8)
    mosaic = mosaic.repeat(scale, axis=0).repeat(scale, axis=1)
    img = Image.fromarray(mosaic[..., 0] if mosaic.shape[-1] == 1 else mosaic)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def gan_images(model, z, weights=None):
    """The GAN's images, in [0, 1], for codes z (N, latent_dim) and, for a conditional GAN, class
    weights (N, K): a one-hot row is that class, a mix of two rows lies between them. The class enters
    the generator linearly (one-hot joined to z, then a Dense layer), so the layers after that join,
    applied to [z, weights], are the generator itself (tests check it against GAN.generate)."""
    from keras import ops
    z = np.asarray(z, np.float32)
    if not model.conditional:
        return ((ops.convert_to_numpy(model.generator(z, training=False)) + 1.0) * 0.5).astype(np.float32)
    h = _after_join(model.generator)(np.concatenate([z, np.asarray(weights, np.float32)], axis=1), training=False)
    return ((ops.convert_to_numpy(h) + 1.0) * 0.5).astype(np.float32)


_AFTER_JOIN = weakref.WeakKeyDictionary()


def _after_join(generator):
    """The conditional generator from its joined [z, one-hot class] (the layer named z_label in
    genlab.models.gan) to its image: a sub-model of the functional graph, built once per generator."""
    import keras
    sub = _AFTER_JOIN.get(generator)
    if sub is None:
        sub = _AFTER_JOIN[generator] = keras.Model(generator.get_layer("z_label").output, generator.output)
    return sub


def one_hot(k, n_classes, rows=1):
    return np.repeat(np.eye(n_classes, dtype=np.float32)[[k]], rows, axis=0)


def codes(model, n, seed):
    """The codes GAN.generate draws for (n, seed): z ~ N(0, I) from numpy's default_rng(seed)."""
    return np.random.default_rng(seed).standard_normal((n, model.latent_dim)).astype(np.float32)


def vae_class_codes(model, data_dir):
    """Mean code of each class of the training split (data_dir, normalize's output): (K, latent_dim),
    as the pipeline's attribute figure finds them (genlab.outputs.sampling.vae_class_codes)."""
    from genlab.data.processed import load_split, to_unit
    from genlab.outputs.sampling import vae_class_codes as class_codes
    try:
        x, y = load_split(data_dir, "train")
        meta = json.loads((Path(data_dir) / "meta.json").read_text())
    except (OSError, ValueError) as e:
        raise GenlabError(f"a VAE needs the training data to find a class's codes, and {data_dir} cannot be "
                          f"read ({type(e).__name__}): run `dvc repro normalize`, or pass --data") from None
    return class_codes(model, to_unit(x, meta["range"]), y, int(meta["n_classes"]))


def chosen_class(model, args, names):
    """--class as a class id (None without it), refused for a model that cannot generate a chosen class."""
    if args.cls is None:
        return None
    if model.family != "gan":
        raise GenlabError("a VAE is unconditional: it cannot generate a chosen class (drop --class)")
    if not model.conditional:
        raise GenlabError("this GAN is unconditional (gan.conditional: false): it cannot generate a chosen "
                          "class; drop --class, or train it with gan.conditional: true")
    return class_id(args.cls, names)


def generate_images(model, args, names):
    """The images `genlab generate` writes: (x01 (n, H, W, C) in [0, 1], labels or None)."""
    label = chosen_class(model, args, names)
    if model.family == "gan":
        x, labels = model.generate(args.n, args.seed, labels=label, return_labels=True)
    else:
        x, labels = model.generate(args.n, args.seed), None
    from genlab.data.processed import to_unit
    return to_unit(x, model.config["value_range"]), labels


# A large request is drawn and written in chunks of about CHUNK_BYTES of images (a multiple of BATCH, the
# batch generate runs the networks in, so every image is the one a single call gives, bit for bit);
# .npz chunks go straight to the file (constant memory), a .png grid has to be held whole.
BATCH, CHUNK_BYTES = 1000, 64 << 20


def chunk_size(model):
    image_bytes = 4 * int(np.prod(model.config["shape"]))
    return max(BATCH, CHUNK_BYTES // image_bytes // BATCH * BATCH)


def _size(nbytes):
    return f"{nbytes / 2**30:.1f} GiB" if nbytes >= 2**30 else f"{nbytes / 2**20:.1f} MiB"


def check_room(model, args):
    """Refuse, before drawing anything, a request whose output cannot fit: a .png grid is held in memory
    (the images, the tiled mosaic and the PNG), an .npz is written in chunks but must fit on its disk."""
    import shutil

    from genlab.training.budget import available_memory
    n, image = args.n, int(np.prod(model.config["shape"]))
    if Path(args.out).suffix.lower() == ".png":
        need, have = n * image * (20 + 3 * args.scale ** 2), available_memory()
        if have is not None and need > have:
            raise GenlabError(f"-n {n}: a .png grid of {n} images needs about {_size(need)} of memory but "
                              f"{_size(have)} is available: lower -n, or write an .npz (-o images.npz is "
                              "written in chunks, in constant memory)")
        return
    need, folder = n * (4 * image + 4) + (1 << 20), Path(args.out).absolute().parent
    while not folder.exists():
        folder = folder.parent
    have = shutil.disk_usage(folder).free
    if need > have:
        raise GenlabError(f"-n {n}: {args.out} would take about {_size(need)} but {_size(have)} are free on "
                          f"the disk of {folder}: lower -n, or write to a disk with more room")


def _gan_chunks(model, n, seed, label, chunk, codes=True):
    """(codes, labels) in chunks of the draws GAN.generate(n, seed, labels=label) makes: the codes
    first, then (a conditional GAN without a class) the labels from the same generator after all codes.
    codes=False: the labels only (codes None)."""
    rng, after = np.random.default_rng(seed), None
    if model.conditional and label is None:
        after = np.random.default_rng(seed)
        for start in range(0, n, chunk):
            after.standard_normal((min(chunk, n - start), model.latent_dim))
    for start in range(0, n, chunk):
        k = min(chunk, n - start)
        z = rng.standard_normal((k, model.latent_dim)).astype(np.float32) if codes else None
        if not model.conditional:
            yield z, None
        else:
            yield z, (after.integers(0, model.n_classes, k).astype(np.int32) if after is not None
                      else np.full(k, label, np.int32))


def _vae_chunks(model, n, seed, chunk):
    """Codes in chunks of the draws VAE.sample_codes(n, seed) makes (see genlab.models.density.sample_gmm)."""
    gmm, rng = model.config.get("code_gmm"), np.random.default_rng(seed)
    if gmm:
        w = np.asarray(gmm["weights"], np.float64)
        means, chols = np.asarray(gmm["means"], np.float64), np.asarray(gmm["scale_trils"], np.float64)
        eps_rng = np.random.default_rng(seed)
        for start in range(0, n, chunk):   # the components of all n codes are drawn before their noise
            eps_rng.choice(len(w), min(chunk, n - start), p=w / w.sum())
    for start in range(0, n, chunk):
        k = min(chunk, n - start)
        if gmm:
            comp = rng.choice(len(w), k, p=w / w.sum())
            eps = eps_rng.standard_normal((k, means.shape[1]))
            yield (means[comp] + np.einsum("nij,nj->ni", chols[comp], eps)).astype(np.float32)
        else:
            eps = rng.standard_normal((k, model.latent_dim)).astype(np.float32)
            gauss = None if model.variational else model.config.get("code_gaussian")
            yield eps if gauss is None else (np.asarray(gauss["mean"], np.float32)
                                             + eps @ np.asarray(gauss["scale_tril"], np.float32).T)


def image_chunks(model, args, names, chunk):
    """(x01 in [0, 1], labels or None) in chunks of `chunk` images: together exactly generate_images's."""
    from genlab.data.processed import to_unit
    label = chosen_class(model, args, names)
    lo, hi = model.config["value_range"]
    if model.family == "gan":
        for z, labels in _gan_chunks(model, args.n, args.seed, label, chunk):
            x = (model.decode(z, labels, batch_size=BATCH) * (hi - lo) + lo).astype(np.float32)
            yield to_unit(x, model.config["value_range"]), labels
    else:
        for z in _vae_chunks(model, args.n, args.seed, chunk):
            x = (model.decode(z, batch_size=BATCH) * (hi - lo) + lo).astype(np.float32)
            yield to_unit(x, model.config["value_range"]), None


def progress(chunks, n, out=None):
    """Pass the chunks through, saying on stderr how far a long request is: a line when a chunk passes
    a quarter of the request (at most four lines)."""
    out, done, said = out or sys.stderr, 0, 0
    for x01, labels in chunks:
        yield x01, labels
        done += len(x01)
        if 4 * done // n > said:
            said = 4 * done // n
            print(f"genlab generate: {done:,} of {n:,} images ({100 * done // n} %)", file=out, flush=True)


def write_npz_chunks(path, chunks, n, shape, labelled, again):
    """Write x (n, *shape) float32 from chunks of (x01, labels), and labels (int32, drawn again by
    again(): no more than a chunk in memory), as write_npz would (the same bytes), atomically."""
    import zipfile

    from genlab.io import atomic_file
    with atomic_file(path) as f, zipfile.ZipFile(f, "w", zipfile.ZIP_STORED, allowZip64=True) as z:
        entries = [("x", np.float32, (n, *shape), ((np.clip(x, 0.0, 1.0), None) for x, _ in chunks))]
        if labelled:
            entries.append(("labels", np.int32, (n,), ((lab, None) for _, lab in again())))
        for name, dtype, full, parts in entries:
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            with z.open(info, "w", force_zip64=True) as member:
                np.lib.format.write_array_header_1_0(member, {"descr": np.lib.format.dtype_to_descr(
                    np.dtype(dtype)), "fortran_order": False, "shape": full})
                for part, _ in parts:
                    member.write(np.ascontiguousarray(part, dtype).tobytes())


def cmd_generate(model, args, names):
    check_room(model, args)
    chunk = chunk_size(model)
    ncol = args.ncol or int(np.ceil(np.sqrt(args.n)))
    if args.n <= chunk:
        x01, labels = generate_images(model, args, names)
        write_images(args.out, x01, ncol, labels, args.scale)
        return f"{args.n} images -> {args.out}"
    parts = progress(image_chunks(model, args, names, chunk), args.n)
    if Path(args.out).suffix.lower() == ".npz":
        labelled = model.family == "gan" and model.conditional
        label = chosen_class(model, args, names)
        again = lambda: _gan_chunks(model, args.n, args.seed, label, chunk, codes=False)  # noqa: E731
        with parents_made(args.out):
            write_npz_chunks(args.out, parts, args.n, model.config["shape"], labelled, again)
        return f"{args.n} images -> {args.out}"
    x01, labels = np.empty((args.n, *model.config["shape"]), np.float32), []
    start = 0
    for x, lab in parts:
        x01[start:start + len(x)], start = x, start + len(x)
        labels.append(lab)
    write_images(args.out, x01, ncol, None if labels[0] is None else np.concatenate(labels), args.scale)
    return f"{args.n} images -> {args.out}"


def _gan_end(model, value, names, args, which):
    """--from/--to of a GAN -> (code, class weights or None): seed:N is the code of seed N (with
    --class for a conditional GAN), a class is the code of --seed with that class."""
    if Path(value).suffix.lower() in (".png", ".jpg", ".jpeg") or Path(value).is_file():
        raise GenlabError(f"--{which} {value}: a GAN has no encoder, so its ends cannot be images: give a class "
                          "or seed:<integer> (a VAE model takes images)")
    if value.startswith("seed:"):
        if not value[5:].isdigit():
            raise GenlabError(f"--{which} {value}: a seed end is seed:<non-negative integer>")
        z = codes(model, 1, int(value[5:]))[0]
        return z, (one_hot(class_id(args.cls, names) if args.cls else 0, model.n_classes)[0]
                   if model.conditional else None)
    if not model.conditional:
        raise GenlabError(f"--{which} {value}: this GAN is unconditional, so its ends are codes: "
                          "give seed:<integer> (for example --from seed:1 --to seed:2)")
    return codes(model, 1, args.seed)[0], one_hot(class_id(value, names), model.n_classes)[0]


def _vae_end(model, value, names, args, which):
    """--from/--to of a VAE -> its code: an image file is encoded, a class is its mean training code."""
    if Path(value).suffix.lower() in (".png", ".jpg", ".jpeg") or Path(value).is_file():
        return model.encode(read_image(value, model.config["shape"]))[0][0]
    if args.class_codes is None:
        args.class_codes = vae_class_codes(model, args.data)
    return args.class_codes[class_id(value, names)]


def interpolation_images(model, args, names):
    """The strip `genlab interpolate` writes: (steps, H, W, C) in [0, 1]. args.class_codes: a VAE's
    class codes (vae_class_codes) when already known, else None (found when a class end needs them)."""
    from genlab.outputs.figures import interpolate
    t = np.linspace(0.0, 1.0, args.steps, dtype=np.float32)[:, None]
    if model.family == "vae":
        args.class_codes = getattr(args, "class_codes", None)
        z0, z1 = (_vae_end(model, v, names, args, w) for v, w in ((args.src, "from"), (args.dst, "to")))
        x01 = model.decode(np.asarray(interpolate(z0, z1, args.steps, spherical=False), np.float32))
    else:
        (z0, w0), (z1, w1) = (_gan_end(model, v, names, args, w) for v, w in ((args.src, "from"), (args.dst, "to")))
        z = np.asarray(interpolate(z0, z1, args.steps, spherical=True), np.float32)
        x01 = gan_images(model, z, None if w0 is None else (1 - t) * w0 + t * w1)
    return x01


def cmd_interpolate(model, args, names):
    x01 = interpolation_images(model, args, names)
    write_images(args.out, x01, args.steps, None, args.scale)
    return f"{args.steps} images from {args.src} to {args.dst} -> {args.out}"


def edit_images(model, args, names):
    """The strip `genlab edit` writes, from the original (a VAE: its reconstruction) to the edit:
    (x01 (steps, H, W, C) in [0, 1], start class id, target class id). args.image: a path or an open
    binary file; args.class_codes: a VAE's class codes when already known, else None."""
    to = class_id(args.to, names)
    t = np.linspace(0.0, 1.0, args.steps, dtype=np.float32)[:, None]
    if model.family == "gan":
        if args.image:
            raise GenlabError("a GAN has no encoder, so it cannot edit a given image: use a VAE model, "
                              "or give --seed to switch the class of a generated image")
        if not model.conditional:
            raise GenlabError("this GAN is unconditional (gan.conditional: false): it cannot switch classes; "
                              "train it with gan.conditional: true")
        # The image `genlab generate -n 1 --seed S` draws (its code and class), moved to class --to.
        start = class_id(args.src, names) if args.src else int(model.generate(1, args.seed, return_labels=True)[1][0])
        z = np.repeat(codes(model, 1, args.seed), args.steps, axis=0)
        x01 = gan_images(model, z, (1 - t) * one_hot(start, model.n_classes) + t * one_hot(to, model.n_classes))
    else:
        if not args.image:
            raise GenlabError("edit with a VAE takes --image in.png (the image to edit)")
        z = model.encode(read_image(args.image, model.config["shape"]))[0][0]
        means = getattr(args, "class_codes", None)
        means = vae_class_codes(model, args.data) if means is None else means
        start = class_id(args.src, names) if args.src else int(np.argmin(((means - z) ** 2).sum(axis=1)))
        x01 = model.decode(z[None] + t * (means[to] - means[start])[None])
    return x01, start, to


def cmd_edit(model, args, names):
    x01, start, to = edit_images(model, args, names)
    what = f"seed {args.seed}" if model.family == "gan" else args.image
    write_images(args.out, x01, args.steps, None, args.scale)
    return f"{what}: {names[start]} -> {names[to]} in {args.steps} steps -> {args.out}"


def _optional(path, read):
    """The parsed file, or None when it does not exist; one clear line when it cannot be read."""
    import yaml
    p = Path(path)
    if not p.is_file():
        return None
    try:
        return read(p.read_text())
    except (ValueError, yaml.YAMLError) as e:
        raise GenlabError(f"{p} cannot be read ({type(e).__name__}): fix it, or point the option elsewhere") from None


def cmd_export(model, args, names):
    import yaml

    from genlab.models.export import export
    from genlab.outputs.model_card import model_card
    files = ["export.json", "MODEL_CARD.md", "model/", "saved_model/"] + (
        ["generator.keras"] if model.family == "gan" else ["encoder.keras", "decoder.keras"])
    card = model_card(family=model.family, config=model.config, meta=_optional(args.meta, json.loads),
                      params=_optional(args.params, yaml.safe_load) or {},
                      evaluation=_optional(args.metrics, json.loads), spread=_optional(args.spread, json.loads),
                      files=sorted(files))
    with parents_made(args.out_dir):
        export(model, args.out_dir, names, extra={"MODEL_CARD.md": card}, source_dir=args.model_dir)
    return (f"{model.family} exported -> {args.out_dir} (Keras .keras files, a TensorFlow SavedModel and "
            "MODEL_CARD.md)")


def _serve_and_plots(sub):
    """The subcommands that are not about one model: serve (the web page) and plots (the PR comment's curves)."""
    s = sub.add_parser("serve", help="a local web page to generate, interpolate and edit with the models",
                       description="Loads the models once and serves a page (open the printed address in a "
                                   "browser): a grid of a class and seed, interpolation with a slider, and for "
                                   "a VAE an uploaded image reconstructed and moved along an attribute vector.")
    s.add_argument("models", nargs="+", metavar="MODEL",
                   help="model folders the pipeline wrote (models/gan models/vae)")
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    s.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    s.add_argument("--meta", default=META, action=PathOption,
                   help=f"the data's meta.json, for class names (default {META})")
    s.add_argument("--data", default=DATA, action=PathOption,
                   help=f"training data, for a VAE's class codes (default {DATA})")
    s.add_argument("--max-images", type=int, default=256, help="most images one request may ask for (default 256)")
    pl = sub.add_parser("plots", help="the curves of `dvc plots diff REV --json` as PNGs and a Markdown section",
                        description="For a pull-request comment (CML): each plot of dvc.yaml, this branch's "
                                    "curves over REV's, rendered to PNG (vl-convert), and a Markdown file "
                                    "linking them.")
    pl.add_argument("plots_json", help="the output of `dvc plots diff REV --json`")
    pl.add_argument("out_dir", help="folder for the PNG images (replaced)")
    pl.add_argument("--md", required=True, help="the Markdown file to write (links relative to its folder)")
    st = sub.add_parser("store", help="list the run store's entries with their sizes, or clear it",
                        description="The run store (GENLAB_RUN_STORE, default ~/.cache/genlab/runs) keeps runs' "
                                    "states (at snapshot points, and finished runs' ends) and scored quality-curve "
                                    "rows; it is held to GENLAB_RUN_STORE_MAX (default 5G), least recently used out.")
    st.add_argument("--clear", action="store_true", help="delete every entry (the next run trains from 0)")


def _mb(n):
    return f"{n / (1 << 20):.1f} MiB"


def cmd_store(args):
    """`genlab store`: one line per entry (size, last use), then the total against the cap; --clear empties it."""
    import time

    from genlab.training import checkpoint
    store = checkpoint.run_store()
    if store is None:
        return "genlab store: the run store is off (GENLAB_RUN_STORE=off)"
    limit = checkpoint.store_limit()
    if args.clear:
        n, size = checkpoint.clear(store)
        return f"genlab store: cleared {store}: {n} entries, {_mb(size)}"
    items = checkpoint.store_items(store)
    for path, size, last in items:
        print(f"{_mb(size):>12}  {time.strftime('%Y-%m-%d %H:%M', time.localtime(last))}  {path.relative_to(store)}")
    cap = _mb(limit) if limit else "no cap"
    return (f"genlab store: {store}: {len(items)} entries, {_mb(sum(size for _, size, _ in items))} of "
            f"GENLAB_RUN_STORE_MAX {cap} (least recently used first)")


def parser():
    title, usage = __doc__.split("\n\n", 1)
    ap = argparse.ArgumentParser(prog="genlab", description=title, epilog=usage,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)

    def common(p, out=True):
        p.add_argument("model", help="a model folder the pipeline wrote (models/gan or models/vae)")
        p.add_argument("--meta", default=META, action=PathOption,
                       help=f"the data's meta.json, for class names (default {META})")
        p.add_argument("--seed", type=int, default=0, help="seed of the codes drawn (default 0)")
        if out:
            p.add_argument("-o", "--out", required=True, help="output file: .png (a grid) or .npz (arrays)")
            p.add_argument("--scale", type=int, default=2, help="PNG pixels per image pixel (default 2)")
        return p

    g = common(sub.add_parser("generate", help="new images, of one class if the model is conditional"))
    g.add_argument("-n", type=int, default=64, help="how many images (default 64)")
    g.add_argument("--class", dest="cls", help="a class name or id (conditional GAN only)")
    g.add_argument("--ncol", type=int, help="images per row of the PNG (default: a square grid)")
    i = common(sub.add_parser("interpolate", help="a strip of images morphing from one end to the other",
                              description="Ends: a class (name or id) for a conditional GAN or a VAE; seed:N "
                                          "(the code of seed N) for a GAN; an image file for a VAE."))
    i.add_argument("--from", dest="src", required=True, help="start: a class, seed:N (GAN) or an image (VAE)")
    i.add_argument("--to", dest="dst", required=True, help="end: a class, seed:N (GAN) or an image (VAE)")
    i.add_argument("--steps", type=int, default=9, help="images in the strip (default 9)")
    i.add_argument("--class", dest="cls", help="conditional GAN with seed:N ends: the class drawn (default 0)")
    i.add_argument("--data", default=DATA, action=PathOption,
                   help=f"training data, for a VAE's class codes (default {DATA})")
    e = common(sub.add_parser("edit", help="move an image toward another class",
                              description="VAE: encode --image, move its code along the attribute vector "
                                          "(mean code of --to minus that of its class), decode. Conditional "
                                          "GAN: the image of --seed, drawn again with class --to."))
    e.add_argument("--image", action=PathOption, help="the image to edit (VAE): a PNG/JPEG of the model's size")
    e.add_argument("--to", required=True, help="the class to move toward (name or id)")
    e.add_argument("--from", dest="src", help="the image's class (default: for a VAE the nearest class in code "
                                              "space, for a GAN the class `generate -n 1 --seed S` draws)")
    e.add_argument("--steps", type=int, default=5, help="images from the original to the edit (default 5)")
    e.add_argument("--data", default=DATA, action=PathOption,
                   help=f"training data, for a VAE's class codes (default {DATA})")
    x = sub.add_parser("export", help="the networks as .keras files and a SavedModel, usable without genlab")
    x.add_argument("model", help="a model folder the pipeline wrote (models/gan or models/vae)")
    x.add_argument("out_dir", help="a new folder to write")
    x.add_argument("--meta", default=META, action=PathOption,
                   help=f"the data's meta.json, for class names (default {META})")
    x.add_argument("--metrics", default=METRICS, action=PathOption,
                   help=f"the model card's metrics (default {METRICS})")
    x.add_argument("--spread", default=SPREAD, action=PathOption,
                   help=f"the model card's seed spread (default {SPREAD})")
    x.add_argument("--params", default=PARAMS, action=PathOption,
                   help=f"the model card's training params (default {PARAMS})")
    _serve_and_plots(sub)
    return ap


def check_args(args):
    for name in ("n", "steps", "scale", "ncol"):
        value = getattr(args, name, None)
        if value is not None and value < 1:
            raise GenlabError(f"--{name} must be a positive integer, got {value}")
    if getattr(args, "steps", 2) < 2 and args.command == "interpolate":
        raise GenlabError("--steps must be at least 2 for a strip")
    if getattr(args, "seed", 0) < 0:
        raise GenlabError(f"--seed must be a non-negative integer, got {args.seed}")
    if getattr(args, "out", None) is not None:
        check_out(args.out)


def execute(args):
    """Run one parsed command; a problem the user can fix raises GenlabError. Returns the summary line."""
    check_paths(args)
    if args.command == "plots":
        from genlab.outputs.plot_images import render
        with parents_made(args.out_dir, args.md):
            n = render(args.plots_json, args.out_dir, args.md)
        return f"genlab plots: {n} plots -> {args.out_dir}, {args.md}"
    if args.command == "store":
        return cmd_store(args)
    if args.command == "serve":
        if args.max_images < 1:
            raise GenlabError(f"--max-images must be a positive integer, got {args.max_images}")
        from genlab.outputs.serve import serve
        return "genlab serve: " + serve(sys.modules[__name__], args.models, host=args.host, port=args.port,
                                        meta=args.meta, data=args.data, max_images=args.max_images)
    check_args(args)
    from genlab.models.load import load_model
    if not Path(args.model).is_dir():
        raise GenlabError(f"{args.model} is not a folder: give a model folder the pipeline wrote "
                          "(models/gan or models/vae)")
    args.model_dir = model_dir(args.model, args.command)
    model = load_model(args.model_dir)
    names = class_names(args.meta, model.config.get("n_classes"))
    commands = {"generate": cmd_generate, "interpolate": cmd_interpolate, "edit": cmd_edit, "export": cmd_export}
    return f"genlab {args.command}: {commands[args.command](model, args, names)}"


def main(argv=None):
    """The console command: one `error:` line and exit status 1 for bad input (genlab.stage.run)."""
    from genlab import stage
    args = parser().parse_args(argv)
    stage.run(lambda: print(execute(args)))


if __name__ == "__main__":
    sys.exit(main())
