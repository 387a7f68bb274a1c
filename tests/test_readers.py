"""The raw-data readers refuse every malformed file with a clear error (never crash or hang)."""

import gzip
import io
import json

import numpy as np
import pytest

from genlab.data.readers import load_raw, parse_idx, read_idx, read_npz
from genlab.errors import GenlabError


def idx_bytes(arr):
    codes = {np.dtype(np.uint8): 0x08}
    header = bytes([0, 0, codes[arr.dtype], arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    return header + arr.tobytes()


def test_roundtrip_real_images(fmnist_raw, tmp_path):
    x = fmnist_raw["x_test"][:100]
    np.testing.assert_array_equal(parse_idx(idx_bytes(x)), x)
    p = tmp_path / "a.gz"
    p.write_bytes(gzip.compress(idx_bytes(x)))
    np.testing.assert_array_equal(read_idx(p), x)


@pytest.mark.parametrize("mutate, msg", [
    (lambda b: b[:3], "shorter than its 4-byte header"),
    (lambda b: b"\x01" + b[1:], "bad magic"),
    (lambda b: b[:2] + b"\x42" + b[3:], "unknown type code"),
    (lambda b: b[:3] + b"\x09" + b[4:], "dimensions"),
    (lambda b: b[:-1], "header says"),
    (lambda b: b + b"\x00", "header says"),
    (lambda b: b[:6], "truncated header"),
])
def test_malformed_idx(fmnist_raw, mutate, msg):
    good = idx_bytes(fmnist_raw["x_test"][:10])
    with pytest.raises(GenlabError, match=msg):
        parse_idx(mutate(good), "f")


def test_random_byte_mutations_never_crash(fmnist_raw, tmp_path):
    """Mutated IDX.gz and .npz files either load or raise GenlabError."""
    rng = np.random.default_rng(0)
    good_idx = gzip.compress(idx_bytes(fmnist_raw["x_test"][:20]))
    buf = io.BytesIO()
    np.savez(buf, x_train=fmnist_raw["x_test"][:20], y_train=fmnist_raw["y_test"][:20],
             x_test=fmnist_raw["x_test"][:5], y_test=fmnist_raw["y_test"][:5])
    good_npz = buf.getvalue()
    outcomes = {"loaded": 0, "refused": 0}
    for i in range(150):
        for good, reader, name in ((good_idx, read_idx, "m.gz"), (good_npz, read_npz, "m.npz")):
            b = bytearray(good)
            for _ in range(rng.integers(1, 6)):
                b[rng.integers(len(b))] = rng.integers(256)
            if rng.random() < 0.3:
                b = b[: rng.integers(len(b))]
            p = tmp_path / name
            p.write_bytes(bytes(b))
            try:
                reader(p)
                outcomes["loaded"] += 1
            except GenlabError:
                outcomes["refused"] += 1
    assert outcomes["refused"] > 100


def test_npz_missing_keys_and_length_mismatch(fmnist_raw, tmp_path):
    np.savez(tmp_path / "a.npz", x_train=fmnist_raw["x_test"][:5])
    with pytest.raises(GenlabError, match="lacks arrays y_train, x_test, y_test"):
        read_npz(tmp_path / "a.npz")
    raw = tmp_path / "raw"
    raw.mkdir()
    np.savez(raw / "dataset.npz", x_train=fmnist_raw["x_test"][:5], y_train=fmnist_raw["y_test"][:4],
             x_test=fmnist_raw["x_test"][:5], y_test=fmnist_raw["y_test"][:5])
    (raw / "dataset.json").write_text(json.dumps({"format": "npz", "files": {"dataset.npz": "x"}}))
    with pytest.raises(GenlabError, match="train split has 5 images but 4 labels"):
        load_raw(raw)
