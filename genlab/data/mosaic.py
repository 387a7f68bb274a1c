"""Image mosaics: many images tiled into one array, for figures and training-time sample grids.

Plain numpy without matplotlib, so training stages can draw their grids without the plotting code.
"""

import numpy as np


def tile(x01, ncol, pad=1):
    """(N, H, W, C) in [0, 1] -> one (rows*(H+pad)-pad, ncol*(W+pad)-pad, C) float32 mosaic, row-major;
    padding and the cells after the last image are white (1.0)."""
    x01 = np.clip(np.asarray(x01, dtype=np.float32), 0.0, 1.0)
    n, h, w, c = x01.shape
    nrow = -(-n // ncol)
    out = np.ones((nrow * (h + pad) - pad, ncol * (w + pad) - pad, c), dtype=np.float32)
    for i in range(n):  # a loop over at most a few hundred tiles of one figure
        r, k = divmod(i, ncol)
        out[r * (h + pad): r * (h + pad) + h, k * (w + pad): k * (w + pad) + w] = x01[i]
    return out


def tile_uint8(x01, ncol):
    """(N, H, W, C) in [0, 1] -> one unpadded uint8 mosaic, (rows*H, ncol*W) for one channel else
    (rows*H, ncol*W, C): the sample grid dvclive logs during training."""
    mosaic = np.round(tile(x01, ncol, pad=0) * 255).astype(np.uint8)
    return mosaic[..., 0] if mosaic.shape[-1] == 1 else mosaic
