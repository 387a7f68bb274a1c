"""model_card: MODEL_CARD.md, the page `genlab export` puts beside an exported model: what it is, what it
was trained on, its params, how good it is (the metrics beside the real-vs-real floor, with the seed
spread's sd where studies/spread/results.json has it), what it is for, and what it must not be used for.
"""

from genlab.outputs.report import _fmt, _fmt_sd, _labels

WHAT = {"gan": "a generative adversarial network: a generator that turns random codes (and, if conditional, "
               "a class) into new images, trained against a discriminator",
        "vae": "a variational autoencoder: an encoder that maps an image to a code and a decoder that maps "
               "codes back to images; new images are decoded from sampled codes"}


def _metrics(family, evaluation, params, spread):
    """The metrics table of one model: value (± the seed spread's sd), the floor."""
    e, floor = evaluation.get(family) or {}, evaluation.get("floor") or {}
    stats = (spread or {}).get("stats") or {}
    rows = ["| metric | value | real vs real (floor) | better |", "|---|---|---|---|"]
    for key, label, better, _ in _labels(params):
        if key not in e:
            continue
        sd = (stats.get(f"{family}.{key}") or {}).get("std")
        value = _fmt(e[key], key) + (f" ± {_fmt_sd(sd)}" if sd is not None else "")
        rows.append(f"| {label} | {value} | {_fmt(floor.get(key), key)} | {better} |")
    return rows if len(rows) > 2 else []


def _trained_on(meta):
    if not meta:
        return ["The data's meta.json was not found: the training data is not recorded here."]
    counts = ", ".join(f"{k} {v:,}" for k, v in (meta.get("counts") or {}).items())
    return [f"**{meta.get('dataset', '?')}**: images of shape {meta.get('shape')} ({counts}), "
            f"{meta.get('n_classes', '?')} classes: " + ", ".join(meta.get("class_names") or []) + ".",
            "Only the training split was used for training; the metrics compare samples with the test split."]


def _can_and_cannot(family, config, meta):
    shape = "×".join(str(s) for s in config.get("shape", [])) or "?"
    data = (meta or {}).get("dataset", "its training data")
    can = [f"make new {shape} images that look like {data}"]
    if family == "gan" and config.get("conditional"):
        can.append("make an image of a chosen class, and morph one class into another for the same code")
    if family == "vae":
        can += ["encode an image of the same size and kind and reconstruct it (blurred: it keeps the shape, "
                "loses fine detail)", "interpolate between images and move an image toward another class "
                "along an attribute vector"]
    cannot = [f"make images of anything outside {data}'s classes, or at another size than {shape}",
              "make a given person's face, or any photograph-like scene: it has only seen these small images",
              "guarantee that an image is new: check the memorization ratio (near 1 means samples are no closer "
              "to the training images than held-out real images are)"]
    return can, cannot


def model_card(*, family, config, meta, params, evaluation, spread, files):
    """The Markdown of MODEL_CARD.md. config: the model's construction config (config.json); meta: the
    data's meta.json or None; params: params.yaml's sections or {}; evaluation: metrics/evaluate.json or
    None; spread: studies/spread/results.json or None; files: the export's file names."""
    arch = config.get("arch", "?")
    out = [f"# Model card: {family.upper()} ({arch}{', conditional' if config.get('conditional') else ''})", "",
           f"This is {WHAT.get(family, family)}, trained by the genlab pipeline (`dvc repro`, stage `train_{family}`).",
           "", "## Trained on", "", *_trained_on(meta), "", "## Params", "", "| key | value |", "|---|---|"]
    out += [f"| `{k}` | `{v}` |" for k, v in sorted(config.items()) if k not in ("code_gmm", "code_gaussian")]
    for section in ("train", family):
        out += [f"| `{section}.{k}` | `{v}` |" for k, v in (params.get(section) or {}).items()]
    out += ["", "## How good it is", ""]
    rows = _metrics(family, evaluation or {}, params, spread)
    if rows:
        out += [f"Scored on {(evaluation or {}).get('n', '?')} samples against as many real test images, with an "
                "evaluator CNN trained on real images only (`metrics/evaluate.json` of the run that exported it)."
                + (f" ± is the standard deviation over {len(spread.get('seeds', []))} training seeds "
                   f"(`{spread.get('command')}`, {spread.get('date')})." if spread else ""), "", *rows]
    else:
        out += ["No metrics were found for this model (`metrics/evaluate.json`): run `dvc repro evaluate`."]
    can, cannot = _can_and_cannot(family, config, meta)
    out += ["", "## Intended use", "",
            "Learning and teaching how generative models work, research on their evaluation, and making "
            "synthetic images of the training data's kind (for example to study data augmentation).", "",
            "## What it can and cannot do", "", *[f"- It can {c}." for c in can],
            *[f"- It cannot {c}." for c in cannot], "",
            "## Misuse", "",
            "GANs and autoencoders are the technique behind deepfakes: the same methods, trained on photographs "
            "of people, make faces and videos of people who do not exist or never did what is shown. This "
            "model was trained only on the data above and cannot make faces; do not train it on images of "
            "people who have not agreed to it, and do not present generated images as real. Say that an image "
            "is generated wherever you publish one.", "", "## Files", "", *[f"- `{f}`" for f in files], ""]
    return "\n".join(out)
