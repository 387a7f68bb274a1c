"""Stage report: write reports/report.md (metrics beside floors, curves, figures, data, params) and the
same report as one self-contained HTML page, reports/report.html (images embedded)."""

import argparse
import json
from pathlib import Path

from genlab import stage
from genlab.errors import GenlabError


def read_json(path):
    p = Path(path)
    if not p.exists():
        raise GenlabError(f"{p} not found: run `dvc repro` to produce it")
    return json.loads(p.read_text())


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", required=True, help="processed data folder (its meta.json)")
    ap.add_argument("--validation", required=True)
    ap.add_argument("--data-docs", required=True, help="validate's great-expectations Data Docs folder (linked)")
    ap.add_argument("--evaluator-metrics", required=True)
    ap.add_argument("--metrics", required=True, help="evaluate's JSON")
    ap.add_argument("--figures", required=True, nargs="+", metavar="NAME=DIR")
    ap.add_argument("--live", required=True, nargs="+", metavar="NAME=DIR", help="dvclive folders")
    ap.add_argument("--curves", required=True, help="output folder of training-curve PNGs")
    ap.add_argument("--quality", help="evaluate's quality curves folder (metrics/curves), <model>.tsv")
    ap.add_argument("--study", help="the augmentation study's results (studies/augmentation/results.json): "
                    "its table and answer are shown when the file exists")
    ap.add_argument("--spread", help="the seed spread's results (studies/spread/results.json): ± sd beside the "
                    "metrics when it was measured at these params")
    ap.add_argument("--out", required=True, help="output Markdown file (reports/report.md)")
    ap.add_argument("--html", help="also write the report as one self-contained HTML page (reports/report.html)")
    args = ap.parse_args()
    params = stage.read_params()

    from genlab.data.processed import load_meta
    from genlab.io import atomic_dir, atomic_file
    from genlab.outputs.report import build, html_report, plot_curves, plot_quality, read_curve

    figures = dict(s.split("=", 1) for s in args.figures)
    live = dict(s.split("=", 1) for s in args.live)
    curves = {}
    quality = {p.stem: read_curve(p) for p in sorted(Path(args.quality).glob("*.tsv"))} if args.quality else {}
    quality = {name: rows for name, rows in quality.items() if rows}
    with atomic_dir(args.curves) as tmp:
        for name, folder in live.items():
            if plot_curves(folder, Path(tmp) / f"{name}.png", f"{name.upper()} training curves (dvclive)"):
                curves[name] = Path(args.curves) / f"{name}.png"
        if quality:
            plot_quality(quality, Path(tmp) / "quality.png")
    text = build(out_md=args.out, meta=load_meta(args.data), params=params,
                 evaluation=read_json(args.metrics), evaluator=read_json(args.evaluator_metrics),
                 figures=figures, curves=curves, validation=read_json(args.validation),
                 data_docs=args.data_docs, quality=quality, quality_png=Path(args.curves) / "quality.png",
                 study=read_json(args.study) if args.study and Path(args.study).exists() else None,
                 spread=read_json(args.spread) if args.spread and Path(args.spread).exists() else None)
    with atomic_file(args.out, "w") as f:
        f.write(text)
    if args.html:
        page = html_report(text, Path(args.out).parent, Path(args.html).parent,
                           title=text.splitlines()[0].lstrip("# "))
        with atomic_file(args.html, "w") as f:
            f.write(page)
    print(f"report: {args.out}" + (f", {args.html}" if args.html else ""))


if __name__ == "__main__":
    stage.run(main)
