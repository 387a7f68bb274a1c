"""validate: a great-expectations suite over the raw arrays.

Each split becomes two small tables that GX checks:
  images  one row per image: label, height, width, channels, dtype, pix_min, pix_max, blank
  classes one row per class: label, count
Expectations: counts per split, image shape, dtype uint8, pixel range 0..255, label set,
every class present and balanced within a tolerance, at most a share of blank images.
"""

import contextlib
import datetime
import logging
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from genlab.errors import GenlabError
from genlab.identity import file_digest
from genlab.io import atomic_dir

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")   # nothing leaves the machine


def image_table(x, y):
    """One row per image with the facts the suite checks (vectorized)."""
    x = np.asarray(x)
    flat = x.reshape(len(x), -1)
    pix_min = flat.min(axis=1) if len(x) else np.zeros(0)
    pix_max = flat.max(axis=1) if len(x) else np.zeros(0)
    return pd.DataFrame({
        "label": np.asarray(y).astype(np.int64),
        "height": np.full(len(x), x.shape[1] if x.ndim > 1 else 0),
        "width": np.full(len(x), x.shape[2] if x.ndim > 2 else 0),
        "channels": np.full(len(x), x.shape[3] if x.ndim > 3 else 1),
        "dtype": np.full(len(x), str(x.dtype), dtype=object),
        "pix_min": pix_min.astype(np.float64),
        "pix_max": pix_max.astype(np.float64),
        "blank": pix_min == pix_max,
    })


def class_table(y, n_classes):
    counts = np.bincount(np.asarray(y).astype(np.int64).clip(0), minlength=n_classes)[:n_classes]
    return pd.DataFrame({"label": np.arange(n_classes), "count": counts})


def _suites(split, expected_count, shape, n_classes, balance_tol, max_blank):
    """Expectation lists for the images and classes tables of one split."""
    import great_expectations.expectations as gxe
    images = [
        gxe.ExpectTableRowCountToEqual(value=expected_count) if expected_count
        else gxe.ExpectTableRowCountToBeBetween(min_value=1),
        gxe.ExpectColumnValuesToBeInSet(column="dtype", value_set=["uint8"]),
        gxe.ExpectColumnValuesToBeBetween(column="pix_min", min_value=0, max_value=255),
        gxe.ExpectColumnValuesToBeBetween(column="pix_max", min_value=0, max_value=255),
        gxe.ExpectColumnValuesToBeInSet(column="label", value_set=list(range(n_classes))),
        gxe.ExpectColumnValuesToBeInSet(column="blank", value_set=[False], mostly=1.0 - max_blank),
    ]
    for col, size in zip(("height", "width", "channels"), tuple(shape) + (1,) * (3 - len(shape))):
        images.append(gxe.ExpectColumnValuesToBeInSet(column=col, value_set=[int(size)]))
    mean = expected_count / n_classes if expected_count else None
    classes = [gxe.ExpectTableRowCountToEqual(value=n_classes),
               gxe.ExpectColumnValuesToBeBetween(column="count", min_value=1)]
    if mean is not None:
        classes.append(gxe.ExpectColumnValuesToBeBetween(
            column="count", min_value=mean * (1 - balance_tol), max_value=mean * (1 + balance_tol)))
    return {f"{split}.images": images, f"{split}.classes": classes}


def _summary(table, res):
    cfg = res.expectation_config
    kwargs = {k: v for k, v in cfg.kwargs.items() if k != "batch_id"}
    result = res.result or {}
    entry = {"table": table, "expectation": cfg.type, "kwargs": kwargs, "success": bool(res.success)}
    for key in ("observed_value", "unexpected_count", "unexpected_percent"):
        if key in result and result[key] is not None:
            value = result[key]
            entry[key] = value.item() if hasattr(value, "item") else value
    if result.get("partial_unexpected_list"):
        entry["examples"] = [v.item() if hasattr(v, "item") else v for v in result["partial_unexpected_list"][:5]]
    return entry


def _where(split, idx, files, limit=5):
    """'index 3, 17' or 'file a/x.png, b/y.png' (image folders), the first `limit` of idx."""
    names = (files or {}).get(split)
    shown = [names[i] for i in idx[:limit]] if names and len(names) > max(idx[:limit]) else None
    text = ("file " + ", ".join(shown)) if shown else ("index " + ", ".join(str(int(i)) for i in idx[:limit]))
    return text + (f" and {len(idx) - limit} more" if len(idx) > limit else "")


def explain(arrays, *, n_classes, max_blank, files=None):
    """The blank images and out-of-range labels that fail the suite, as plain sentences that name the
    image (index, or file of an image folder) and what decides (validate.max_blank_fraction, the classes).

    n_classes None: the classes are the training labels 0..K-1 up to the first missing one, so a stray
    label (42 among 0..9) is named instead of failing as 32 empty classes."""
    problems = []
    known = n_classes
    if known is None:
        seen = set(np.unique(np.asarray(arrays["y_train"]).astype(np.int64)).tolist())
        known = 0
        while known in seen:
            known += 1
    for split in ("train", "test"):
        y = np.asarray(arrays[f"y_{split}"]).astype(np.int64)
        bad = np.flatnonzero((y < 0) | (y >= known))
        if len(bad) and known:
            values = sorted(set(y[bad].tolist()))[:5]
            problems.append(f"{split} split: label {values[0] if len(values) == 1 else values} at "
                            f"{_where(split, bad, files)} is outside 0..{known - 1}, the {known} classes "
                            + ("of the dataset" if n_classes is not None else "of the training labels")
                            + ": fix or drop those labels (or re-fetch the data)")
        x = np.asarray(arrays[f"x_{split}"])
        if len(x):
            flat = x.reshape(len(x), -1)
            blank = np.flatnonzero(flat.min(axis=1) == flat.max(axis=1))
            if len(blank) > max_blank * len(x):
                problems.append(f"{split} split: {len(blank)} blank (single-valued) image(s) of {len(x)} at "
                                f"{_where(split, blank, files)}, more than validate.max_blank_fraction "
                                f"({max_blank}) allows: delete or replace them, or raise validate.max_blank_fraction")
    return problems


# Data Docs carry no clock and no random ids, so the same data give the same pages, byte for byte (the
# hash dvc.lock records): every validation is filed under this run (name and time) instead of the wall
# clock's, and the pages are rewritten once built (_make_reproducible)
RUN_NAME, RUN_TIME = "validate", datetime.datetime(2000, 1, 1, tzinfo=datetime.timezone.utc)
# the render time great-expectations appends to its logo's address (`logo-long.png?d=<time>Z`)
_RENDER_TIME = re.compile(r"\?d=\d{8}T\d{6}\.\d{6}Z(&?)")
# any other time of the clock (a batch's ge_load_time) and the random ids of collapsible page sections
_CLOCK = re.compile(r"\d{8}T\d{6}\.\d{6}Z")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _run_id():
    from great_expectations.core.run_identifier import RunIdentifier
    return RunIdentifier(run_name=RUN_NAME, run_time=RUN_TIME)


def _make_reproducible(site):
    """Rewrite the Data Docs pages in `site` without what changes from run to run: the render time is
    dropped, other clock times become RUN_TIME, and each random id becomes the next of a fixed sequence
    (the same id on every page gets the same replacement, so links between pages keep working)."""
    stamp, ids = RUN_TIME.strftime("%Y%m%dT%H%M%S.%fZ"), {}
    for page in sorted(Path(site).rglob("*.html")):
        text = page.read_text(encoding="utf-8")
        fixed = _RENDER_TIME.sub(lambda m: "?" if m.group(1) else "", text)   # keep a dataContextId= after it
        fixed = _UUID.sub(lambda m: ids.setdefault(m.group(0), f"00000000-0000-4000-8000-{len(ids):012d}"),
                          _CLOCK.sub(stamp, fixed))
        if fixed != text:
            page.write_text(fixed, encoding="utf-8")


def validate_arrays(arrays, *, counts=None, shape=None, n_classes=None, balance_tol, max_blank, files=None,
                    docs_dir=None):
    """Run the suite on dict x_train, y_train, x_test, y_test; return a JSON-able report.

    counts: expected images per split (None: any non-empty); shape: expected (H, W[, C]) (None:
    the training images' shape); n_classes: None infers max label + 1 from the training labels;
    files: {split: file names in array order} (image folders), to name a bad image's file.
    The report's "problems" say in plain words which images or labels fail (see explain).
    docs_dir: also write the suite's HTML Data Docs there (a new folder, written atomically), the
    way great-expectations users read validation results; built offline (the pages load their
    styling from public CDNs when opened).
    """
    import great_expectations as gx
    logging.getLogger("great_expectations").setLevel(logging.ERROR)
    shape = tuple(shape or arrays["x_train"].shape[1:])
    given_classes = n_classes
    if n_classes is None:
        n_classes = int(np.max(arrays["y_train"])) + 1 if len(arrays["y_train"]) else 1
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = {"globally": False}
    source = context.data_sources.add_pandas("raw")
    checks = []
    with contextlib.ExitStack() as stack:
        if docs_dir is not None:
            site = stack.enter_context(atomic_dir(docs_dir))
            if "local_site" in context.get_site_names():   # a context made earlier in this process
                context.delete_data_docs_site("local_site")
            context.add_data_docs_site("local_site", {
                "class_name": "SiteBuilder", "show_how_to_buttons": False,
                "store_backend": {"class_name": "TupleFilesystemStoreBackend",
                                  "base_directory": str(Path(site).resolve())},
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"}})
        for split in ("train", "test"):
            x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
            tables = {f"{split}.images": image_table(x, y), f"{split}.classes": class_table(y, n_classes)}
            suites = _suites(split, (counts or {}).get(split), shape, n_classes, balance_tol, max_blank)
            for name, df in tables.items():
                batches = source.add_dataframe_asset(name).add_batch_definition_whole_dataframe("all")
                suite = gx.ExpectationSuite(name=name, expectations=suites[name])
                if docs_dir is None:
                    results = batches.get_batch(batch_parameters={"dataframe": df}).validate(suite).results
                else:   # through a checkpoint, whose action renders the result into the Data Docs site
                    definition = context.validation_definitions.add(
                        gx.ValidationDefinition(data=batches, suite=context.suites.add(suite), name=name))
                    run = context.checkpoints.add(gx.Checkpoint(
                        name=f"validate {name}", validation_definitions=[definition],
                        actions=[gx.checkpoint.UpdateDataDocsAction(name="data_docs")]))
                    (result,) = run.run(batch_parameters={"dataframe": df}, run_id=_run_id()).run_results.values()
                    results = result.results
                checks += [_summary(name, r) for r in results]
        if docs_dir is not None:
            _make_reproducible(site)
    failed = [c for c in checks if not c["success"]]
    problems = explain(arrays, n_classes=given_classes, max_blank=max_blank, files=files) if failed else []
    return {"success": not failed, "evaluated": len(checks), "failed": len(failed),
            "n_classes": n_classes, "image_shape": list(shape), "problems": problems, "checks": checks}


def describe_failure(check):
    """One readable line for a failed check."""
    args = ", ".join(f"{k}={v}" for k, v in check["kwargs"].items())
    seen = ""
    if "observed_value" in check:
        seen = f"observed {check['observed_value']}"
    elif "unexpected_count" in check:
        seen = f"{check['unexpected_count']} unexpected ({check.get('unexpected_percent', 0):.2f}%)"
        if check.get("examples"):
            seen += f", e.g. {check['examples']}"
    return f"{check['table']}: {check['expectation']}({args}): {seen}"


def raise_if_failed(report, report_path):
    if not report["success"]:
        lines = report.get("problems", []) + [describe_failure(c) for c in report["checks"] if not c["success"]]
        raise GenlabError(f"data validation failed, {report['failed']} of {report['evaluated']} expectations: "
                          + " | ".join(lines) + f" (details in {report_path}); fix or re-fetch the data")


def stamp(raw_dir, report):
    """The gate normalize depends on: which raw data passed. It holds no thresholds, so changing a
    validate.* param that still passes leaves it byte-identical and nothing downstream re-runs."""
    manifest = Path(raw_dir) / "dataset.json"
    return {"success": bool(report["success"]), "dataset": report.get("dataset"),
            "raw_manifest_sha256": file_digest(manifest)}
