"""report: reports/report.md, a self-contained Markdown page (relative image links) that renders on
a pull request: what was trained, how good it is against the real-vs-real floor, what it looks like;
and the same report as reports/report.html, one page with its images embedded (html_report), which a
double click opens in a browser with no network.
"""

import csv
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

# (key in metrics/evaluate.json, label, better direction, one-line meaning); {k} is evaluate.pr_k
METRICS = [
    ("fd", "Fréchet distance", "lower", "distance between Gaussian fits of evaluator features"),
    ("kid", "KID", "lower", "unbiased kernel MMD² of evaluator features, cubic kernel"),
    ("precision", "precision (k={k})", "higher", "share of samples inside the real-data manifold"),
    ("recall", "recall (k={k})", "higher", "share of real images inside the sample manifold"),
    ("classes_covered", "classes covered", "higher", "classes that receive a fair share of samples"),
    ("kl_uniform", "KL(class hist ‖ uniform)", "lower", "imbalance of predicted classes (nats)"),
    ("classifier_score", "classifier score", "higher", "exp E KL(p(y|x) ‖ p(y)), the MNIST Inception score"),
    ("detector_accuracy", "detector accuracy", "closer to 0.5",
     "held-out accuracy of a real-vs-fake logistic regression on evaluator features"),
    ("pixel_detector_accuracy", "pixel detector accuracy", "closer to 0.5",
     "held-out accuracy of a small real-vs-fake CNN on raw pixels"),
    ("cas", "classification accuracy score", "higher",
     "real-test accuracy of a classifier trained only on generated images (floor: on as many real ones)"),
    ("nn_ratio", "memorization ratio", "≈ 1", "median nearest-train distance, samples / held-out real"),
    ("elbo", "test ELBO (nats)", "higher", "VAE evidence lower bound on binarized test images"),
    ("iw_bound", "IW bound (nats)", "higher", "importance-weighted bound, k samples"),
]
FIGURES = [("grid.png", "Samples"), ("classes.png", "One row per class"),
           ("interpolation.png", "Latent interpolation"), ("attribute.png", "Attribute-vector edit"),
           ("reconstructions.png", "Reconstructions"), ("latent_map.png", "Latent space")]


def _fmt(value, key):
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 1000 else f"{value:.1f}"
    return str(value)


def _labels(params):
    """METRICS with their labels filled in from params (the k of precision/recall)."""
    k = (params.get("evaluate") or {}).get("pr_k", "?")
    return [(key, label.format(k=k), better, meaning) for key, label, better, meaning in METRICS]


def metrics_table(evaluation, models, params, stats=None):
    """Markdown table: one row per metric present, one column per model, then the floor. stats: the
    seed spread's {"gan.fd": {"std": ...}} (studies/spread.py), shown as ± sd beside each value."""
    head = "| metric | " + " | ".join(models) + " | real vs real (floor) | better |"
    lines = [head, "|" + "---|" * (len(models) + 3)]
    floor = evaluation.get("floor", {})
    stats = stats or {}

    def cell(m, key):
        value, sd = evaluation.get(m, {}).get(key), stats.get(f"{m}.{key}", {}).get("std")
        return _fmt(value, key) + (f" ± {_fmt_sd(sd)}" if value is not None and sd is not None else "")

    for key, label, better, _ in _labels(params):
        if not any(key in evaluation.get(m, {}) for m in models):
            continue
        cells = [cell(m, key) for m in models]
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {_fmt(floor.get(key), key)} | {better} |")
    return "\n".join(lines)


def _fmt_sd(sd):
    return f"{sd:.2g}" if sd >= 0.01 or sd == 0 else f"{sd:.1e}"


def spread_applies(spread, params):
    """(the seed spread's stats, "") when it was measured at these params except its seed key, else
    (None, one line saying why not)."""
    from genlab.evaluation.spread import params_differences
    if not spread:
        return None, ("No seed spread measured yet: `python -m studies.spread` runs the pipeline with other "
                      "training seeds (docs/experiments.md, \"Seed noise\").")
    differ = params_differences(spread["params"], params, ignore={spread["key"]})
    if differ:
        return None, (f"The seed spread (`{spread['command']}`, {spread['date']}) was measured at params "
                      f"that differ from these in {', '.join(f'`{k}`' for k in differ[:6])}"
                      f"{' …' if len(differ) > 6 else ''}: not shown; `python -m studies.spread` measures it here.")
    return spread["stats"], ""


def spread_table(spread, models=("gan", "vae")):
    """Markdown of the seed spread (studies/spread.py): per metric and model, mean ± sd (min – max)."""
    stats = spread["stats"]
    lines = ["| metric | " + " | ".join(f"{m}: mean ± sd (min – max)" for m in models) + " |",
             "|" + "---|" * (len(models) + 1)]
    for key, label, _, _ in _labels(spread.get("params") or {}):
        if not any(f"{m}.{key}" in stats for m in models):
            continue
        cells = []
        for m in models:
            s = stats.get(f"{m}.{key}")
            cells.append("–" if s is None else
                         f"{s['mean']:.4g} ± {_fmt_sd(s['std'])} ({s['min']:.4g} – {s['max']:.4g})")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def cas_note(evaluation, models, params):
    """One line on the classification accuracy score: its N and floor, and why a model has none."""
    if "cas_n" not in evaluation:
        return ""
    why = {"vae": "the VAE is unconditional (it cannot be asked for a class)",
           "gan": "the GAN is unconditional (gan.conditional: false)"}
    skipped = [why.get(m, f"{m} has no class labels") for m in models if "cas" not in evaluation.get(m, {})]
    cas = (params.get("cas") or {})
    return (f"Classification accuracy score: a small CNN trained for {cas.get('epochs', '?')} epochs on "
            f"{evaluation['cas_n']} generated images with the labels the model was asked for, tested on the real "
            f"test split; the floor trains it on {evaluation['cas_n']} real training images"
            + (f"; no score where {'; '.join(skipped)}" if skipped else "") + ".")


def augmentation_table(study):
    """Markdown of the augmentation study's results (studies/augmentation.py): one row per real subset size,
    test accuracy mean ± std over the seeds, real subset alone and with generated images, and the answer."""
    lines = ["| real subset | real images | real only | real + generated | difference | noise (2 × SE) | helped? |",
             "|---|---|---|---|---|---|---|"]
    for r in study["rows"]:
        lines.append(f"| {100 * r['fraction']:g} % | {r['n_real']} "
                     f"| {r['real_only_mean']:.4f} ± {r['real_only_std']:.4f}"
                     f" | {r['augmented_mean']:.4f} ± {r['augmented_std']:.4f} | {r['difference']:+.4f} "
                     f"| {r['noise']:.4f} | {r['verdict']} |")
    return "\n".join(lines + [""] + [f"- {r['answer']}" for r in study["rows"]] + ["", study["rule"]])


def read_tsv(path):
    """A dvclive plot file (step, value columns) -> (steps, values)."""
    with open(path) as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    if not rows:
        return [], []
    key = [k for k in rows[0] if k not in ("step", "timestamp")][0]
    return [int(r["step"]) for r in rows], [float(r[key]) for r in rows]


def plot_curves(live_dir, out_png, title):
    """One panel per logged metric of a dvclive folder; returns False when there is nothing to plot."""
    files = sorted(Path(live_dir, "plots", "metrics").rglob("*.tsv"))
    if not files:
        return False
    cols = min(3, len(files))
    rows = -(-len(files) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 2.6 * rows), squeeze=False)
    for ax, f in zip(axes.flat, files):
        steps, values = read_tsv(f)
        ax.plot(steps, values, lw=1)
        ax.set_title(str(f.relative_to(Path(live_dir, "plots", "metrics")).with_suffix("")), fontsize=9)
        ax.set_xlabel("iteration", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in axes.flat[len(files):]:
        ax.axis("off")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    Path(out_png).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=90)
    plt.close(fig)
    return True


def read_curve(path):
    """A quality-curve TSV (metrics/curves/<model>.tsv) -> [{column: number}], by iteration."""
    with open(path) as f:
        return [{k: (int(v) if k == "iteration" else float(v)) for k, v in r.items()}
                for r in csv.DictReader(f, delimiter="\t")]


def trend(rows, metric="fd", tail=0.25):
    """One sentence on whether `metric` (lower is better) still improved over the last `tail` of
    training: the best value before that part against the best value within it (5% = the line)."""
    last = rows[-1]["iteration"] if rows else 0
    cut = last * (1 - tail)
    before = [r[metric] for r in rows if r["iteration"] <= cut]
    after = [r for r in rows if r["iteration"] > cut]
    if len(rows) < 3 or not before or not after:
        return "too few snapshots to tell whether quality was still improving"
    b, a = min(before), min(r[metric] for r in after)
    change = (b - a) / b if b > 0 else 0.0
    span = (f"{metric.upper()} {b:.3g} (best up to iteration {int(cut)}) → {a:.3g} (best after), "
            f"{-100 * change:+.0f}% in the last {100 * tail:.0f}% of training")
    if change > 0.05:
        return f"still improving: {span}; training longer should help"
    return f"levelled off: {span}"


def plot_quality(curves, out_png):
    """FD, precision/recall and detector accuracies against the iteration, one line per model."""
    panels = [("fd", "FD (validation split)"), ("precision", "precision"), ("recall", "recall"),
              ("detector_accuracy", "detector accuracy"), ("pixel_detector_accuracy", "pixel detector accuracy"),
              ("cas", "classification accuracy score")]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 2.6), squeeze=False)
    for ax, (key, title) in zip(axes.flat, panels):
        for name, rows in curves.items():
            if key not in rows[0]:
                continue
            ax.plot([r["iteration"] for r in rows], [r[key] for r in rows], marker="o", ms=2, lw=1,
                    label=name.upper())
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("iteration", fontsize=8)
        ax.tick_params(labelsize=7)
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    Path(out_png).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=90)
    plt.close(fig)


def _rel(path, start):
    return os.path.relpath(path, start).replace(os.sep, "/")


def build(*, out_md, meta, params, evaluation, evaluator, figures, curves, validation, data_docs=None,
          quality=None, quality_png=None, study=None, spread=None):
    """Markdown text of the report. figures/curves: {model: folder or PNG path}; quality: {model:
    quality-curve rows} and quality_png their figure; data_docs: the great-expectations Data Docs
    folder (its index.html is linked); study: the augmentation study's results
    (studies/augmentation.py), or None; spread: the seed spread's results (studies/spread.py), or None;
    links are made relative to out_md's folder so the page is self-contained."""
    base = Path(out_md).parent
    models = [m for m in ("gan", "vae") if m in evaluation]
    stats, why_not = spread_applies(spread, params)
    out = [f"# Generative models on {meta['dataset']}", ""]
    out += _summary(meta, params, evaluation, evaluator, models)
    out += _metrics(params, evaluation, models, spread, stats, why_not)
    out += _quality(params, quality, quality_png, base)
    out += _model_sections(models, figures, curves, base)
    if stats:
        out += ["## Seed spread", "",
                f"The pipeline at these params with {len(spread['seeds'])} training seeds (a queued `dvc exp run` "
                f"sweep of `{spread['key']}`; everything else as here). A change smaller than 2 × √2 sd is within "
                "what another seed gives; `python -m studies.spread diff main` applies that to a change.", "",
                spread_table(spread, models), ""]
    out += _study(study)
    out += _data(meta, validation, data_docs, base)
    out += ["## Params", "", "| key | value |", "|---|---|"]
    for section, values in params.items():   # every section, in params.yaml's order
        for k, v in (values.items() if isinstance(values, dict) else [(None, values)]):
            out.append(f"| `{section}{'' if k is None else '.' + k}` | `{v}` |")
    out += [""]
    return "\n".join(out)


def _summary(meta, params, evaluation, evaluator, models):
    summary = []
    for m in models:
        e, f = evaluation[m], evaluation.get("floor", {})
        bits = [f"FD {_fmt(e.get('fd'), 'fd')} (floor {_fmt(f.get('fd'), 'fd')})"]
        if "classes_covered" in e:
            bits.append(f"{e['classes_covered']}/{meta['n_classes']} classes covered")
        if "detector_accuracy" in e:
            bits.append(f"fakes detected with accuracy {_fmt(e['detector_accuracy'], '')}")
        if "cas" in e:
            bits.append(f"classification accuracy score {_fmt(e['cas'], '')} (floor {_fmt(f.get('cas'), '')})")
        summary.append(f"- **{m.upper()}** ({params.get(m, {}).get('arch', '?')}): " + ", ".join(bits))
    return ["Trained on the real training split and scored against "
            f"{evaluation.get('n', '?')} real test images with an evaluator CNN "
            f"(test accuracy **{_fmt(evaluator.get('test_accuracy'), '')}**) trained on real data only.", ""
            ] + summary + [""]


def _metrics(params, evaluation, models, spread, stats, why_not):
    out = ["## Metrics", "", metrics_table(evaluation, models, params, stats), ""]
    if stats:
        out += [f"± is the standard deviation over {len(spread['seeds'])} training seeds (`{spread['key']}` = "
                f"{', '.join(str(s) for s in spread['seeds'])}; measured on {spread['date']} with "
                f"`{spread['command']}`, the table below). {spread['rule']}", ""]
    else:
        out += [why_not, ""]
    note = cas_note(evaluation, models, params)
    out += [note, ""] if note else []
    out += ["| metric | what it measures |", "|---|---|"]
    out += [f"| {label} | {meaning} |" for key, label, _, meaning in _labels(params)
            if any(key in evaluation.get(m, {}) for m in models)]
    return out + [""]


def _quality(params, quality, quality_png, base):
    if not quality:
        return []
    n = (params.get("evaluate") or {}).get("curve_n", "?")
    out = ["## Quality during training", "",
           f"Every training snapshot (`train.snapshot_every`) scored on {n} samples against the validation "
           "split (`metrics/curves/`, `dvc plots show`); the VAE's from its N(0, I) prior.", ""]
    if quality_png and Path(quality_png).exists():
        out += [f"![quality curves]({_rel(quality_png, base)})", ""]
    return out + [f"- **{m.upper()}**: {trend(rows)}" for m, rows in quality.items()] + [""]


def _model_sections(models, figures, curves, base):
    out = []
    for m in models:
        out += [f"## {m.upper()}", ""]
        if curves.get(m) and Path(curves[m]).exists():
            out += [f"![{m} training curves]({_rel(curves[m], base)})", ""]
        for name, caption in FIGURES:
            p = Path(figures.get(m, "")) / name
            if figures.get(m) and p.exists():
                out += [f"**{caption}**", "", f"![{m} {caption.lower()}]({_rel(p, base)})", ""]
    return out


def _study(study):
    if not study:
        return []
    st = study.get("settings", {})
    return ["## Is the generated data useful? The augmentation study", "",
            f"Test accuracy of the classifier trained on a class-balanced real subset alone and with "
            f"{st.get('n_generated', '?')} generated images, mean ± std over {len(st.get('seeds', [])) or '?'} "
            f"seeds; the conditional GAN trained for {st.get('gan_iterations', '?')} iterations on each subset "
            f"only. Measured on {study.get('date', '?')} with `{study.get('command', '?')}` (not part of "
            "`dvc repro`; see docs/augmentation.md).", "", augmentation_table(study), ""]


def _data(meta, validation, data_docs, base):
    docs = Path(data_docs) / "index.html" if data_docs else None
    return ["## Data", "",
            f"{meta['dataset']}: {meta['counts']} images of shape {meta['shape']}, classes: "
            + ", ".join(meta["class_names"]) + ".",
            f"Validation: {validation.get('evaluated', 0) - validation.get('failed', 0)}/"
            f"{validation.get('evaluated', 0)} expectations passed"
            + (f" ([Data Docs]({_rel(docs, base)}): every expectation with its observed value)."
               if docs is not None and docs.exists() else "."), ""]


HTML_STYLE = """body { font-family: system-ui, sans-serif; max-width: 70rem; margin: 1.5rem auto; padding: 0 1rem;
  color: #222; line-height: 1.45; }
table { border-collapse: collapse; margin: .6rem 0; font-size: .92rem; }
th, td { border: 1px solid #ccc; padding: .25rem .55rem; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
img { max-width: 100%; }
code { background: #f3f3f3; padding: 0 .2rem; border-radius: 3px; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.25rem; border-bottom: 1px solid #ddd; padding-bottom: .2rem; }"""


def _local(url):
    """True for a link to a file beside the report (not http:, data:, mailto: or an #anchor)."""
    return bool(url) and "://" not in url and not url.startswith(("data:", "mailto:", "#", "/"))


def _data_uri(path):
    import base64
    import mimetypes
    kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return f"data:{kind};base64," + base64.b64encode(path.read_bytes()).decode()


def html_report(markdown_text, md_dir, html_dir, title):
    """The report as one self-contained HTML page (reports/report.html): the Markdown rendered with its
    tables, every image it links embedded as a data URI (the figures and the training and quality
    curves: static PNGs, so the page needs no script and no network), links to local files (the Data
    Docs) made relative to html_dir. md_dir: the folder the Markdown's links are relative to."""
    import html

    from markdown_it import MarkdownIt
    md = MarkdownIt("commonmark", {"html": False}).enable("table")
    env = {}
    tokens = md.parse(markdown_text, env)
    for tok in tokens:
        for t in tok.children or []:
            url = t.attrGet("src") if t.type == "image" else t.attrGet("href") if t.type == "link_open" else None
            if not _local(url):
                continue
            path = Path(md_dir) / url
            if t.type == "image" and path.is_file():
                t.attrSet("src", _data_uri(path))
            elif t.type == "link_open":
                t.attrSet("href", _rel(path, html_dir))
    body = md.renderer.render(tokens, md.options, env)
    return (f'<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f'<link rel="icon" href="data:,">\n<title>{html.escape(title)}</title>\n'
            f"<style>\n{HTML_STYLE}\n</style>\n</head>\n<body>\n{body}</body>\n</html>\n")
