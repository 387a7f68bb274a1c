"""Readers for the raw dataset formats: IDX (MNIST/Fashion-MNIST, optionally gzipped), .npz, and
four .npy files (an image folder imported by genlab.data.image_folder).

Every malformed input is refused with a GenlabError naming the file; none crashes or hangs.
"""

import gzip
import io
import json
import math
import zipfile
import zlib
from pathlib import Path

import numpy as np

from genlab.errors import GenlabError

# IDX type codes (http://yann.lecun.com/exdb/mnist/ format description)
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_MAX_DIMS = 4


def _bad(path, why):
    return GenlabError(f"{path} is not a valid IDX file ({why}): delete it and run `dvc repro fetch` again")


def parse_idx(data, name="<bytes>"):
    """Parse IDX bytes into an array of the declared dtype and shape."""
    if len(data) < 4:
        raise _bad(name, "shorter than its 4-byte header")
    if data[0] != 0 or data[1] != 0:
        raise _bad(name, "bad magic number")
    code, ndim = data[2], data[3]
    if code not in _IDX_DTYPES:
        raise _bad(name, f"unknown type code 0x{code:02x}")
    if not 1 <= ndim <= _MAX_DIMS:
        raise _bad(name, f"{ndim} dimensions")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise _bad(name, "truncated header")
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_DTYPES[code])
    expected = math.prod(shape) * dtype.itemsize  # Python ints: a forged header cannot overflow
    if len(data) - header != expected:
        raise _bad(name, f"header says {expected} bytes of data, file has {len(data) - header}")
    arr = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    return arr.astype(dtype.newbyteorder("="), copy=False)


def read_idx(path):
    """Read an IDX file, transparently gunzipping a .gz one."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except FileNotFoundError:
        raise GenlabError(f"{path} not found: run `dvc repro fetch`") from None
    except (OSError, EOFError, zlib.error) as e:
        raise GenlabError(f"{path} is a corrupt or truncated gzip file ({e}): delete it and fetch again") from None
    return parse_idx(raw, path)


NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")


def read_npz(path, keys=NPZ_KEYS):
    """Read the arrays `keys` from an .npz (the keras mnist.npz layout) without pickle."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in keys if k not in z.files]
            if missing:
                raise GenlabError(f"{path} lacks arrays {', '.join(missing)}: an .npz dataset needs {', '.join(keys)}")
            return {k: np.asarray(z[k]) for k in keys}
    except FileNotFoundError:
        raise GenlabError(f"{path} not found: run `dvc repro fetch`") from None
    except GenlabError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error, KeyError,
            NotImplementedError, RuntimeError, MemoryError, io.UnsupportedOperation) as e:
        raise GenlabError(f"{path} is not a readable .npz file ({e.__class__.__name__}: {e}): "
                          "delete it and fetch again") from None


def read_npy(path):
    """Read one .npy array without pickle."""
    path = Path(path)
    try:
        return np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise GenlabError(f"{path} not found: run `dvc repro fetch`") from None
    except (ValueError, OSError, EOFError) as e:
        raise GenlabError(f"{path} is not a readable .npy file ({e.__class__.__name__}: {e}): "
                          "run `dvc repro -f fetch`") from None


def load_raw_info(raw_dir):
    """The fetch stage's dataset.json: name, format, files, counts, image_shape, class_names."""
    manifest = Path(raw_dir) / "dataset.json"
    if not manifest.exists():
        raise GenlabError(f"{manifest} not found: run `dvc repro fetch`")
    try:
        return json.loads(manifest.read_text())
    except ValueError:
        raise GenlabError(f"{manifest} is corrupt: run `dvc repro -f fetch`") from None


def load_raw(raw_dir):
    """Load the fetch stage's output as uint8/int arrays: dict x_train, y_train, x_test, y_test."""
    raw_dir = Path(raw_dir)
    manifest = raw_dir / "dataset.json"
    info = load_raw_info(raw_dir)
    if info.get("format") == "idx":
        parts = {"x_train": "train-images-idx3-ubyte", "y_train": "train-labels-idx1-ubyte",
                 "x_test": "t10k-images-idx3-ubyte", "y_test": "t10k-labels-idx1-ubyte"}
        arrays = {k: read_idx(raw_dir / f) for k, f in parts.items()}
    elif info.get("format") == "npz":
        (fname,) = info["files"]
        arrays = read_npz(raw_dir / fname)
    elif info.get("format") == "npy":
        arrays = {k: read_npy(raw_dir / f"{k}.npy") for k in NPZ_KEYS}
    else:
        raise GenlabError(f"{manifest} names an unknown format {info.get('format')!r}: run `dvc repro -f fetch`")
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if len(x) != len(y):
            raise GenlabError(f"the {split} split has {len(x)} images but {len(y)} labels: "
                              "the dataset is inconsistent; fix the source files and fetch again")
        if y.ndim != 1:
            raise GenlabError(f"the {split} labels have shape {y.shape}, expected one label per image")
        if x.ndim not in (3, 4):
            raise GenlabError(f"the {split} images have shape {x.shape}, expected (N, H, W) or (N, H, W, C)")
    return arrays
