"""validate (great-expectations) and normalize on real Fashion-MNIST, and on broken copies."""

import json
import re

import numpy as np
import pytest

from genlab.data.normalize import check_validation, normalize, split_indices
from genlab.data.processed import load_meta, load_split
from genlab.data.validate import raise_if_failed, stamp, validate_arrays
from genlab.errors import GenlabError

FACTS = dict(counts={"train": 60000, "test": 10000}, shape=(28, 28), n_classes=10,
             balance_tol=0.2, max_blank=0.001)


def failed(report):
    return {(c["table"], c["expectation"], c["kwargs"].get("column")) for c in report["checks"] if not c["success"]}


@pytest.mark.slow   # validates all 70,000 images
def test_real_fashion_mnist_passes(fmnist_raw):
    report = validate_arrays(fmnist_raw, **FACTS)
    assert report["success"] and report["failed"] == 0 and report["evaluated"] >= 20


def page_text(path):
    """The visible text of a Data Docs page."""
    html = re.sub(r"<script.*?</script>", " ", path.read_text(), flags=re.S)
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


@pytest.mark.slow   # two validations
def test_data_docs_show_every_table_and_the_failed_expectation(fmnist_raw, tmp_path, monkeypatch):
    """docs_dir: the suite's HTML Data Docs, one validation page per table with its status and
    counts, the same results as without Data Docs; nothing temporary is left behind."""
    ok = validate_arrays(fmnist_raw, **FACTS, docs_dir=tmp_path / "ok")
    assert ok["checks"] == validate_arrays(fmnist_raw, **FACTS)["checks"]
    pages = {p.name: page_text(p) for p in (tmp_path / "ok" / "validations").rglob("*.html")}
    assert sorted(pages) == ["raw-test.classes.html", "raw-test.images.html", "raw-train.classes.html",
                             "raw-train.images.html"]
    assert all("Status: Succeeded" in t and "Unsuccessful Expectations 0" in t for t in pages.values())
    assert "Must have exactly 60000 rows" in pages["raw-train.images.html"]
    index = (tmp_path / "ok" / "index.html").read_text()
    assert all(name in index for name in pages)
    monkeypatch.chdir(tmp_path)                                          # a relative folder, as dvc.yaml gives
    bad = validate_arrays(broken(fmnist_raw, "label"), **FACTS, docs_dir="bad")
    pages = {p.name: page_text(p) for p in (tmp_path / "bad" / "validations").rglob("*.html")}
    n_failed = sum(1 for c in bad["checks"] if not c["success"] and c["table"] == "test.images")
    assert n_failed >= 1 and "Status: Failed" in pages["raw-test.images.html"]
    assert f"Unsuccessful Expectations {n_failed}" in pages["raw-test.images.html"]
    assert "Status: Succeeded" in pages["raw-train.images.html"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad", "ok"]     # no temporary sibling left


@pytest.mark.slow   # two validations
def test_data_docs_are_the_same_bytes_for_the_same_data(fmnist_raw, tmp_path):
    """Data Docs carry no clock and no random id: two validations of the same arrays, seconds apart,
    write byte-identical folders (dvc.lock's hash of reports/data_docs does not change), and the pages
    still link to each other: every validation page the index names exists, each collapsible section
    keeps its own target, and no time of day is left in any page."""
    import time

    from genlab.identity import tree_digest
    small = {k: v[:2000] for k, v in fmnist_raw.items()}
    facts = {**FACTS, "counts": None}
    validate_arrays(small, **facts, docs_dir=tmp_path / "a")
    time.sleep(1.1)
    validate_arrays(small, **facts, docs_dir=tmp_path / "b")
    assert tree_digest(tmp_path / "a") == tree_digest(tmp_path / "b")
    pages = sorted((tmp_path / "a").rglob("*.html"))
    index = (tmp_path / "a" / "index.html").read_text()
    linked = set(re.findall(r"validations/[^\"']+?\.html", index))
    assert len(linked) == 4 and all((tmp_path / "a" / p).is_file() for p in linked)
    for page in pages:
        html = page.read_text()
        assert not re.search(r"20[0-9]{2}[01][0-9][0-3][0-9]T[0-9]{6}\.[0-9]{6}Z", html.replace("20000101T000000", ""))
        targets = re.findall(r'href="#([^"]+-collapse-body-[0-9a-f-]+)"', html)
        assert all(f"id={t} " in html or f'id="{t}"' in html for t in targets)
    assert any(re.search(r'href="#[^"]+-collapse-body-', p.read_text()) for p in pages)
    # another dataset is another page (the docs do show the data)
    validate_arrays({k: v[:1000] for k, v in fmnist_raw.items()}, **facts, docs_dir=tmp_path / "c")
    assert tree_digest(tmp_path / "c") != tree_digest(tmp_path / "a")


def broken(fmnist_raw, what):
    a = {k: v.copy() for k, v in fmnist_raw.items()}
    if what == "label":
        a["y_test"][:7] = 11
    elif what == "dtype":
        a["x_train"] = a["x_train"].astype(np.float32) * 2.0
    elif what == "balance":
        a["y_train"][a["y_train"] == 3] = 4
    elif what == "blank":
        a["x_train"][:500] = 0
    elif what == "count":
        a["x_test"], a["y_test"] = a["x_test"][:9000], a["y_test"][:9000]
    elif what == "shape":
        a["x_test"] = a["x_test"][:, :27, :]
    return a


@pytest.mark.parametrize("what, expected", [
    ("label", ("test.images", "expect_column_values_to_be_in_set", "label")),
    ("dtype", ("train.images", "expect_column_values_to_be_in_set", "dtype")),
    ("dtype", ("train.images", "expect_column_values_to_be_between", "pix_max")),
    ("balance", ("train.classes", "expect_column_values_to_be_between", "count")),
    ("blank", ("train.images", "expect_column_values_to_be_in_set", "blank")),
    ("count", ("test.images", "expect_table_row_count_to_equal", None)),
    ("shape", ("test.images", "expect_column_values_to_be_in_set", "height")),
])
def test_broken_arrays_fail_naming_the_expectation(fmnist_raw, what, expected):
    report = validate_arrays(broken(fmnist_raw, what), **FACTS)
    assert not report["success"]
    assert expected in failed(report)
    with pytest.raises(GenlabError, match=rf"data validation failed.*{expected[0]}: {expected[1]}"):
        raise_if_failed(report, "reports/validation.json")


def test_normalize_real_data(fmnist_raw, tmp_path):
    out = tmp_path / "processed"
    meta = normalize(fmnist_raw, out, value_range=[-1.0, 1.0], val_fraction=0.1, seed=3,
                     dataset="fashion_mnist", class_names=[str(i) for i in range(10)])
    assert meta["counts"] == {"train": 54000, "val": 6000, "test": 10000}
    assert load_meta(out) == meta
    x, y = load_split(out, "train")
    assert x.dtype == np.float32 and x.shape == (54000, 28, 28, 1) and y.dtype == np.int32
    assert x.min() == -1.0 and x.max() == 1.0
    xt, yt = load_split(out, "test")
    np.testing.assert_allclose(xt[..., 0], fmnist_raw["x_test"] / 127.5 - 1.0, atol=1e-6)
    np.testing.assert_array_equal(yt, fmnist_raw["y_test"])
    xv, yv = load_split(out, "val")
    # train and val partition the original training split
    tr, va = split_indices(60000, 0.1, 3)
    assert not set(tr) & set(va) and len(tr) + len(va) == 60000
    np.testing.assert_array_equal(yv, fmnist_raw["y_train"][va])


def test_split_is_seeded():
    a, b = split_indices(1000, 0.2, 7), split_indices(1000, 0.2, 7)
    c = split_indices(1000, 0.2, 8)
    assert all(np.array_equal(u, v) for u, v in zip(a, b))
    assert not np.array_equal(a[1], c[1])


def test_normalize_refuses_failed_or_foreign_validation(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "dataset.json").write_text('{"name": "fashion_mnist"}')
    passed = stamp(raw, {"success": True, "dataset": "fashion_mnist"})
    ok = tmp_path / "validated.json"
    ok.write_text(json.dumps(passed))
    check_validation(ok, raw)                           # the raw data it names: accepted
    failed = tmp_path / "failed.json"
    failed.write_text(json.dumps({**passed, "success": False}))
    with pytest.raises(GenlabError, match="records a failed validation"):
        check_validation(failed, raw)
    with pytest.raises(GenlabError, match="run `dvc repro validate` first"):
        check_validation(tmp_path / "missing.json", raw)
    (raw / "dataset.json").write_text('{"name": "mnist"}')    # raw data changed since validation
    with pytest.raises(GenlabError, match="other raw data"):
        check_validation(ok, raw)
