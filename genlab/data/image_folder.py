"""image_folder: a folder of PNG/JPEG images in class subfolders -> the raw arrays fetch writes.

Layout read: <root>/<class>/**/<image>.png|.jpg|.jpeg. The classes are the subfolder names,
sorted; their labels are 0..K-1. Files directly in <root>, hidden files and folders (".name")
and files with other extensions are skipped (and counted in the log line).
Each image is decoded with Pillow, turned upright by its EXIF orientation, 16-bit grey scaled to 8 bits
(v * 255 / 65535, rounded; Pillow's own conversion would clip it to two grey levels), converted to grey
("L", channels 1) or RGB (channels 3), centre-cropped to a square and resized to
image_size x image_size (bicubic, antialiased when shrinking), so images of mixed sizes and
modes become one uint8 array (N, S, S, C).
The test split is stratified and seeded: in every class a share test_fraction of its images
(at least one) is held out, chosen by a permutation from `seed`; the rest is the training split.

Output (read by genlab.data.readers.load_raw, format "npy"): x_train.npy, y_train.npy, x_test.npy,
y_test.npy and dataset.json (its source.files: each split's files, relative to the folder, in array
order, so validate can name a bad image's file), written atomically. Same folder and params -> byte-identical output.
"""

import sys
from pathlib import Path

import numpy as np

from genlab.errors import GenlabError
from genlab.identity import file_digest
from genlab.io import atomic_dir, write_json
from genlab.params import check_image_folder

NAME = "image_folder"
EXTENSIONS = (".png", ".jpg", ".jpeg")
ARRAYS = ("x_train", "y_train", "x_test", "y_test")


def _hidden(path, root):
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def list_images(root):
    """(class_names, files, labels, skipped): image paths sorted by class then relative path."""
    if not str(root).strip():
        raise GenlabError("data.path is empty: with data.name image_folder set it to the folder of class subfolders")
    root = Path(root)
    if not root.is_dir():
        raise GenlabError(f"data.path {root} is not a folder: set data.path to a folder holding one "
                          "subfolder of PNG/JPEG images per class")
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise GenlabError(f"{root} has no class subfolders: put the images in one subfolder per class "
                          f"(e.g. {root / 'class_a'}/, {root / 'class_b'}/)")
    if len(classes) < 2:
        raise GenlabError(f"{root} has a single class subfolder ({classes[0]}): the evaluator is a classifier "
                          "and needs at least 2 classes; split the images into 2 or more subfolders")
    files, labels, skipped = [], [], 0
    for label, name in enumerate(classes):
        found = []
        for p in sorted((root / name).rglob("*")):
            if not p.is_file() or _hidden(p, root):
                continue
            if p.suffix.lower() in EXTENSIONS:
                found.append(p)
            else:
                skipped += 1
        if len(found) < 2:
            raise GenlabError(f"class folder {root / name} holds {len(found)} PNG/JPEG image(s), at least 2 are "
                              "needed (one for the test split): add images or remove the folder")
        files += found
        labels += [label] * len(found)
    return classes, files, np.asarray(labels, np.int64), skipped


def _to_8bit(img, path):
    """A 16-bit grey image (Pillow mode I;16*, or I from a 16-bit PNG) scaled to 8-bit grey ("L")."""
    from PIL import Image
    if not (img.mode.startswith("I;16") or img.mode == "I"):
        return img
    arr = np.asarray(img).astype(np.int64)
    if arr.size and (arr.min() < 0 or arr.max() > 65535):
        raise GenlabError(f"{path} holds {img.mode} pixel values {arr.min()}..{arr.max()}, outside 16 bits: "
                          "save it as an 8- or 16-bit PNG, or delete it")
    return Image.fromarray(((arr * 255 + 32767) // 65535).astype(np.uint8), "L")


def decode(path, image_size, channels):
    """One image file -> uint8 (image_size, image_size, channels), or a GenlabError naming the file."""
    from PIL import Image, ImageOps

    try:
        with Image.open(path) as img:
            img.load()
            img = ImageOps.exif_transpose(img)
            img = _to_8bit(img, path)
            img = img.convert("L" if channels == 1 else "RGB")
            w, h = img.size
            side = min(w, h)
            box = ((w - side) / 2, (h - side) / 2, (w + side) / 2, (h + side) / 2)
            img = img.resize((image_size, image_size), Image.Resampling.BICUBIC, box=box)
            arr = np.asarray(img, dtype=np.uint8)
    except GenlabError:
        raise
    except Exception as e:  # Pillow raises many types for broken files (OSError, SyntaxError, ValueError, ...)
        raise GenlabError(f"{path} cannot be read as an image ({e.__class__.__name__}: {e}): "
                          "delete or replace the file") from None
    return arr.reshape(image_size, image_size, channels)


def split_indices(labels, test_fraction, seed):
    """Stratified seeded split -> (train, test) index arrays, each sorted; every class in both."""
    rng = np.random.default_rng(seed)
    test = []
    for k in range(int(labels.max()) + 1):
        idx = np.flatnonzero(labels == k)
        n_test = min(len(idx) - 1, max(1, int(round(len(idx) * test_fraction))))
        test.append(rng.permutation(idx)[:n_test])
    test = np.sort(np.concatenate(test))
    return np.setdiff1d(np.arange(len(labels)), test), test


def load_folder(root, *, image_size, channels, test_fraction, seed):
    """Decode the folder: (dict x_train, y_train, x_test, y_test and files {split: relative paths in
    array order}, class_names, skipped)."""
    check_image_folder(image_size, channels, test_fraction)
    classes, files, labels, skipped = list_images(root)
    x = np.empty((len(files), image_size, image_size, channels), np.uint8)
    for i, path in enumerate(files):
        x[i] = decode(path, image_size, channels)
    train, test = split_indices(labels, test_fraction, seed)
    y = labels.astype(np.int32)
    arrays = {"x_train": x[train], "y_train": y[train], "x_test": x[test], "y_test": y[test]}
    names = [Path(f).relative_to(Path(root)).as_posix() for f in files]
    arrays["files"] = {"train": [names[i] for i in train], "test": [names[i] for i in test]}
    return arrays, classes, skipped


def import_folder(root, out_dir, *, image_size, channels, test_fraction, seed, log=None):
    """Write the folder's images as fetch's raw output (see the module docstring) into out_dir
    atomically; return the dataset.json dict."""
    log = log or (lambda msg: print(msg, file=sys.stderr))
    arrays, classes, skipped = load_folder(root, image_size=image_size, channels=channels,
                                           test_fraction=test_fraction, seed=seed)
    files = arrays.pop("files")
    with atomic_dir(out_dir) as tmp:
        for key in ARRAYS:
            np.save(tmp / f"{key}.npy", arrays[key], allow_pickle=False)
        info = {"name": NAME, "format": "npy",
                "files": {f"{k}.npy": file_digest(tmp / f"{k}.npy") for k in ARRAYS},
                "counts": None, "image_shape": [image_size, image_size, channels], "class_names": classes,
                "source": {"path": str(root), "images": int(len(arrays["y_train"]) + len(arrays["y_test"])),
                           "skipped_files": skipped, "test_fraction": test_fraction, "seed": seed,
                           "files": files}}   # per split, in array order: validate names them
        write_json(tmp / "dataset.json", info)
    log(f"fetch: {info['source']['images']} images in {len(classes)} classes from {root} "
        f"({len(arrays['y_train'])} train, {len(arrays['y_test'])} test, {image_size}x{image_size}x{channels})"
        + (f"; skipped {skipped} non-PNG/JPEG files" if skipped else ""))
    return info
