"""Stage validate: run the great-expectations suite over data/raw; write the result; fail on any failed expectation."""

import argparse

from genlab import stage
from genlab.params import read


def read_settings(params):
    """Every validate.* value this stage reads, checked (a genlab.params.Validate)."""
    return read(params, "validate")


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--raw", required=True, help="fetch's output folder (data/raw)")
    ap.add_argument("--report", required=True, help="JSON result (reports/validation.json)")
    ap.add_argument("--docs", required=True, help="great-expectations Data Docs, HTML (reports/data_docs)")
    ap.add_argument("--stamp", required=True, help="written only when every expectation passed: "
                    "which raw data passed, the gate normalize depends on (data/validated.json)")
    args = ap.parse_args()
    s = read_settings(stage.read_params())

    from genlab.data.readers import load_raw, load_raw_info
    from genlab.data.validate import raise_if_failed, stamp, validate_arrays
    from genlab.io import write_json

    info = load_raw_info(args.raw)
    arrays = load_raw(args.raw)
    n_classes = len(info["class_names"]) if info.get("class_names") else None
    report = validate_arrays(arrays, counts=info.get("counts"), shape=info.get("image_shape"),
                             n_classes=n_classes, files=(info.get("source") or {}).get("files"),
                             docs_dir=args.docs, balance_tol=s.class_balance_tolerance,
                             max_blank=s.max_blank_fraction)
    report["dataset"] = info.get("name")
    write_json(args.report, report)
    print(f"validate: {report['evaluated'] - report['failed']}/{report['evaluated']} expectations passed")
    raise_if_failed(report, args.report)
    write_json(args.stamp, stamp(args.raw, report))


if __name__ == "__main__":
    stage.run(main)
