"""Image mosaics (genlab.data.mosaic): the figures' padded grids and the training grids dvclive logs."""

import numpy as np

from genlab.data.mosaic import tile, tile_uint8


def test_tile_places_images_row_major_with_white_padding():
    x = np.stack([np.full((2, 3, 1), v, np.float32) for v in (0.0, 0.25, 0.5, 1.5)])   # 1.5 is clipped
    m = tile(x, ncol=3, pad=1)
    assert m.shape == (2 * 3 - 1, 3 * 4 - 1, 1) and m.dtype == np.float32
    assert m[0, 0, 0] == 0.0 and m[0, 4, 0] == 0.25 and m[0, 8, 0] == 0.5 and m[3, 0, 0] == 1.0
    assert m[2, 0, 0] == 1.0 and m[0, 3, 0] == 1.0      # padding row and column
    assert (m[3:, 4:] == 1.0).all()                      # the empty cells after the last image


def test_tile_uint8_is_an_unpadded_byte_grid():
    rng = np.random.default_rng(0)
    x = rng.random((16, 4, 5, 1), dtype=np.float32)
    g = tile_uint8(x, 8)
    assert g.shape == (2 * 4, 8 * 5) and g.dtype == np.uint8
    np.testing.assert_array_equal(g[4:8, 5:10], np.round(x[9, ..., 0] * 255).astype(np.uint8))
    assert tile_uint8(rng.random((8, 4, 4, 3), dtype=np.float32), 4).shape == (8, 16, 3)
