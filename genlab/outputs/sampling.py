"""sample: images from a trained model for evaluate, and the figures people look at first.

Figures (PNG, in one folder per model):
  grid.png           sample grid
  interpolation.png  latent interpolation strips (GAN: slerp between Gaussian codes; VAE: straight
                     lines between the codes of two real test images of different classes)
  attribute.png      attribute-vector edit: codes of class A moved along mean(code | B) - mean(code | A)
                     (VAE: test images' codes moved along the class means of the training codes, the
                     vector `genlab edit` uses too; GAN: codes whose samples the evaluator labels A/B;
                     conditional GAN: the same code with the label switched)
  classes.png        conditional GAN: one row per class
  reconstructions.png, latent_map.png   VAE: originals above reconstructions; 2-D map of test codes
stats.json records what the attribute edit achieved (share of edited images the evaluator
classifies as the target class), so the picture comes with a number.
"""

import numpy as np

from genlab.data.processed import to_unit
from genlab.io import write_json
from genlab.outputs.figures import attribute_vector, interpolate, project_2d, save_grid, save_latent_map, save_rows

EDIT_STEPS = (0.0, 0.5, 1.0, 1.5)   # multiples of the attribute vector shown in attribute.png
BEFORE, AFTER = EDIT_STEPS.index(0.0), EDIT_STEPS.index(1.0)   # rows scored in stats.json: unedited, +1 v


def _decode01(model, z, labels=None):
    """Codes (and labels for a conditional GAN) -> images in [0, 1] (GAN.decode / VAE.decode)."""
    return model.decode(z) if labels is None else model.decode(z, labels=labels)


def draw(model, n, seed):
    """n samples in the data range and their labels (conditional GAN) or None."""
    if model.family == "gan":
        return model.generate(n, seed, return_labels=True)
    return model.generate(n, seed), None


def vae_class_codes(model, x01, y, n_classes, per_class=2000):
    """Mean code of each class over its first per_class images (x01 in [0, 1], labels y): (K, latent_dim).
    The ends of every VAE attribute edit: the pipeline's attribute.png, and `genlab edit`, `interpolate`
    and `serve` (genlab.command.vae_class_codes, on the training split)."""
    y = np.asarray(y)
    means = []
    for k in range(n_classes):
        idx = np.flatnonzero(y == k)[:per_class]
        if not len(idx):
            raise ValueError(f"no image of class {k} to find its mean code from")
        means.append(model.encode(x01[idx])[0].mean(axis=0))
    return np.stack(means).astype(np.float32)


def _edit_rows(model, codes, vec, labels=None):
    return [_decode01(model, codes + t * vec, labels) for t in EDIT_STEPS]


def _edit_success(classify, images01, to_class):
    return float(np.mean(classify(images01) == to_class)) if classify is not None else None


def gan_figures(model, fig_dir, *, seed, grid, steps, rows, edit, classify, class_names):
    """Figures of a GAN. classify: images01 -> predicted class ids (the evaluator), or None."""
    rng = np.random.default_rng(seed)
    a, b = edit
    stats = {}
    x, labels = draw(model, grid * grid, seed)
    save_grid(fig_dir / "grid.png", to_unit(x, model.config["value_range"]), grid,
              title=f"{grid * grid} samples")
    z = rng.standard_normal((2 * rows, model.latent_dim)).astype(np.float32)
    path_labels = (np.repeat(rng.integers(0, model.n_classes, rows), steps).astype(np.int32)
                   if model.conditional else None)
    paths = np.concatenate([interpolate(z[2 * i], z[2 * i + 1], steps, spherical=True) for i in range(rows)])
    strip = _decode01(model, paths, path_labels).reshape(rows, steps, *x.shape[1:])
    save_rows(fig_dir / "interpolation.png", list(strip), [f"path {i + 1}" for i in range(rows)],
              title="latent interpolation (slerp)")
    if model.conditional:
        zc = rng.standard_normal((steps, model.latent_dim)).astype(np.float32)
        per_class = [_decode01(model, zc, np.full(steps, k, np.int32)) for k in range(model.n_classes)]
        save_rows(fig_dir / "classes.png", per_class, class_names, title="one row per class (same codes)")
        before = _decode01(model, zc, np.full(steps, a, np.int32))
        after = _decode01(model, zc, np.full(steps, b, np.int32))
        save_rows(fig_dir / "attribute.png", [before, after],
                  [class_names[a], class_names[b]], title=f"label switched: {class_names[a]} -> {class_names[b]}")
        stats["attribute_edit"] = {"from": class_names[a], "to": class_names[b],
                                   "to_share_after": _edit_success(classify, after, b)}
    elif classify is not None:
        pool = rng.standard_normal((4000, model.latent_dim)).astype(np.float32)
        pred = classify(_decode01(model, pool))
        if np.any(pred == a) and np.any(pred == b):
            vec = attribute_vector(pool, pred, b, a)
            src = pool[pred == a][:steps]
            edited = _edit_rows(model, src, vec)
            save_rows(fig_dir / "attribute.png", edited, [f"+{t:g} v" for t in EDIT_STEPS],
                      title=f"attribute vector v = mean z({class_names[b]}) - mean z({class_names[a]})")
            stats["attribute_edit"] = {"from": class_names[a], "to": class_names[b],
                                       "to_share_before": _edit_success(classify, edited[BEFORE], b),
                                       "to_share_after": _edit_success(classify, edited[AFTER], b)}
        else:
            stats["attribute_edit"] = {"from": class_names[a], "to": class_names[b],
                                       "skipped": "the generator produced no sample of one of the classes"}
    write_json(fig_dir / "stats.json", stats)
    return stats


def vae_figures(model, fig_dir, *, x_test01, y_test, class_codes, seed, grid, steps, rows, edit, classify,
                class_names):
    """Figures of a VAE/AE; x_test01, y_test: real test images in [0, 1] and their labels; class_codes:
    the training split's class means (vae_class_codes), the ends of the attribute vector."""
    rng = np.random.default_rng(seed)
    a, b = edit
    x = model.generate(grid * grid, seed)
    save_grid(fig_dir / "grid.png", to_unit(x, model.config["value_range"]), grid,
              title=f"{grid * grid} samples")
    z_test, _ = model.encode(x_test01)
    picks = rng.choice(len(x_test01), steps, replace=False)
    save_rows(fig_dir / "reconstructions.png", [x_test01[picks], model.decode(z_test[picks])],
              ["original", "reconstruction"], title="test images and their reconstructions")
    ends = []
    for _ in range(rows):
        i = rng.integers(len(y_test))
        j = rng.choice(np.flatnonzero(y_test != y_test[i]))
        ends.append((i, j))
    paths = np.concatenate([interpolate(z_test[i], z_test[j], steps, spherical=False) for i, j in ends])
    strip = model.decode(paths).reshape(rows, steps, *x_test01.shape[1:])
    save_rows(fig_dir / "interpolation.png", list(strip),
              [f"{class_names[y_test[i]]} -> {class_names[y_test[j]]}" for i, j in ends],
              title="latent interpolation between two test images")
    vec = class_codes[b] - class_codes[a]
    src = z_test[np.flatnonzero(y_test == a)[:steps]]
    edited = _edit_rows(model, src, vec)
    save_rows(fig_dir / "attribute.png", edited, [f"+{t:g} v" for t in EDIT_STEPS],
              title=f"attribute vector v = mean training z({class_names[b]}) - mean training z({class_names[a]})")
    save_latent_map(fig_dir / "latent_map.png", project_2d(z_test), y_test, class_names,
                    title="test codes" + (" (first two principal components)" if model.latent_dim != 2 else ""))
    stats = {"attribute_edit": {"from": class_names[a], "to": class_names[b],
                                "to_share_before": _edit_success(classify, edited[BEFORE], b),
                                "to_share_after": _edit_success(classify, edited[AFTER], b)}}
    write_json(fig_dir / "stats.json", stats)
    return stats
