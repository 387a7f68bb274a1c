"""Stage sample: draw sample.n images from a trained model (for evaluate) and make its figures."""

import argparse

import numpy as np

from genlab import stage
from genlab.errors import GenlabError
from genlab.params import read


def read_settings(params):
    """Every sample.* value this stage reads, checked (a genlab.params.Sample). (That the attribute
    classes exist in the data is checked in main, where the data's meta is read.)"""
    return read(params, "sample")


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", required=True, help="trained model folder (models/gan or models/vae)")
    ap.add_argument("--evaluator", required=True, help="evaluator folder (labels samples for the attribute edit)")
    ap.add_argument("--data", required=True, help="processed data folder (data/processed)")
    ap.add_argument("--samples", required=True, help="output .npz of generated images (samples/<model>.npz)")
    ap.add_argument("--figures", required=True, help="output folder of PNG figures (reports/figures/<model>)")
    args = ap.parse_args()
    s = read_settings(stage.read_params())
    n, seed, grid, steps, rows, edit = s.n, s.seed, s.grid, s.steps, s.rows, s.attribute

    from genlab.data.processed import from_unit, load_meta, load_split, to_unit
    from genlab.evaluation.evaluator import load_evaluator, predict_proba
    from genlab.io import atomic_dir, check_outputs, write_npz
    from genlab.models.load import load_model
    from genlab.outputs.sampling import draw, gan_figures, vae_class_codes, vae_figures

    meta = load_meta(args.data)
    names = meta["class_names"]
    if max(edit) >= len(names):
        raise GenlabError(f"sample.attribute must be [from_class, to_class], two different class ids in "
                          f"0..{len(names) - 1}, got {edit!r}")

    pixels = int(np.prod(meta["shape"]))
    check_outputs({args.samples: 4 * n * pixels, args.figures: 1 << 20}, "sample")   # float32 images, a few PNGs

    model = load_model(args.model)
    evaluator = load_evaluator(args.evaluator)
    value_range = meta["range"]

    def classify(images01):
        return predict_proba(evaluator, from_unit(images01, value_range)).argmax(axis=1)

    x, labels = draw(model, n, seed)
    if not np.isfinite(x).all():
        raise GenlabError(f"{args.model} generates non-finite pixels: retrain it (`dvc repro -f train_{model.family}`)")
    write_npz(args.samples, x=x, **({"labels": labels} if labels is not None else {}))
    with atomic_dir(args.figures) as fig_dir:
        if model.family == "gan":
            stats = gan_figures(model, fig_dir, seed=seed, grid=grid, steps=steps, rows=rows, edit=edit,
                                classify=classify, class_names=names)
        else:
            x_test, y_test = load_split(args.data, "test")
            x_train, y_train = load_split(args.data, "train")
            codes = vae_class_codes(model, to_unit(x_train, value_range), y_train, len(names))
            stats = vae_figures(model, fig_dir, x_test01=to_unit(x_test, value_range), y_test=y_test,
                                class_codes=codes, seed=seed, grid=grid, steps=steps, rows=rows, edit=edit,
                                classify=classify, class_names=names)
    print(f"sample: {n} images -> {args.samples}; figures -> {args.figures}; {stats}")


if __name__ == "__main__":
    stage.run(main)
