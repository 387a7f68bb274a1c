"""Figures of generated images: grids, latent interpolation strips, attribute-vector edits, 2-D latent maps.

Everything takes images already mapped to [0, 1] (genlab.data.processed.to_unit) with shape (N, H, W, C),
and writes PNG files atomically. Latent-space helpers are plain numpy on code arrays.
"""

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from genlab.data.mosaic import tile  # noqa: E402
from genlab.io import atomic_file  # noqa: E402


def _save(fig, path):
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    with atomic_file(path) as f:
        f.write(buf.getvalue())


def _show(ax, mosaic):
    ax.imshow(mosaic[..., 0] if mosaic.shape[-1] == 1 else mosaic, cmap="gray", vmin=0, vmax=1,
              interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def save_grid(path, x01, ncol, title=None):
    """A grid of images, row-major, ncol per row."""
    mosaic = tile(x01, ncol)
    fig, ax = plt.subplots(figsize=(max(2.0, mosaic.shape[1] / 30), max(2.0, mosaic.shape[0] / 30)))
    _show(ax, mosaic)
    if title:
        ax.set_title(title, fontsize=9)
    _save(fig, path)


def save_rows(path, rows, labels, title=None):
    """One strip per row with a label at its left: rows is a list of (K, H, W, C) arrays."""
    fig, axes = plt.subplots(len(rows), 1, figsize=(max(3.0, rows[0].shape[0] * 0.45), 0.5 * len(rows) + 0.4),
                             squeeze=False)
    for ax, row, label in zip(axes[:, 0], rows, labels):
        _show(ax, tile(row, len(row)))
        ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
    if title:
        axes[0, 0].set_title(title, fontsize=9)
    _save(fig, path)


def save_latent_map(path, codes2d, labels, class_names, title=None):
    """Scatter of 2-D codes coloured by class."""
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    for k, name in enumerate(class_names):
        sel = labels == k
        ax.scatter(codes2d[sel, 0], codes2d[sel, 1], s=3, alpha=0.6, label=name)
    ax.legend(markerscale=4, fontsize=7, loc="best", frameon=False)
    if title:
        ax.set_title(title, fontsize=9)
    _save(fig, path)


def interpolate(z0, z1, steps, spherical):
    """Codes on the path from z0 to z1 (inclusive): straight, or along the great circle (slerp),
    which keeps Gaussian codes at a typical norm."""
    t = np.linspace(0.0, 1.0, steps)[:, None]
    z0, z1 = np.asarray(z0, np.float64), np.asarray(z1, np.float64)
    if not spherical:
        return ((1 - t) * z0 + t * z1).astype(np.float32)
    cos = np.dot(z0, z1) / (np.linalg.norm(z0) * np.linalg.norm(z1))
    omega = np.arccos(np.clip(cos, -1.0, 1.0))
    if omega < 1e-6:
        return ((1 - t) * z0 + t * z1).astype(np.float32)
    return ((np.sin((1 - t) * omega) * z0 + np.sin(t * omega) * z1) / np.sin(omega)).astype(np.float32)


def attribute_vector(codes, labels, to_class, from_class):
    """Mean code of class `to_class` minus mean code of class `from_class` (the deepfake edit)."""
    codes, labels = np.asarray(codes), np.asarray(labels)
    for k in (to_class, from_class):
        if not np.any(labels == k):
            raise ValueError(f"no code of class {k} to build an attribute vector from")
    return codes[labels == to_class].mean(axis=0) - codes[labels == from_class].mean(axis=0)


def project_2d(codes):
    """Codes -> 2-D: themselves when 2-D, else their first two principal components (scikit-learn's PCA)."""
    codes = np.asarray(codes, np.float64)
    if codes.shape[1] == 2:
        return codes
    from sklearn.decomposition import PCA
    return PCA(n_components=2).fit_transform(codes)
