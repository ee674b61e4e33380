"""Large images are coded in tiles (lic.models.tiling): bounded memory, the same result as in one piece."""

import numpy as np
import pytest
import torch

from lic import codec
from lic.models import AttentionCodec, ScaleHyperprior


def _receptive_radius(fn, channels: int, size: int, down: int) -> tuple[int, int]:
    """How far before / after one output position the inputs that change it reach, in input units,
    found with autograd on random weights.  ``down`` = 16: analysis (one latent covers 16 pixels);
    ``down`` = 1: synthesis (16 pixels come from one latent)."""
    x = torch.randn(1, channels, size, size, requires_grad=True)
    out = fn(x)
    if down > 1:
        c = out.shape[-1] // 2
        out[0, :, c, c].sum().backward()
        first, last = c * down, c * down + down - 1  # the latent's own pixels
    else:
        c = out.shape[-1] // 32 * 16  # a latent's 16×16 pixels in the middle
        out[0, :, c:c + 16, c:c + 16].sum().backward()
        first = last = c // 16
    reach = torch.nonzero(x.grad[0].abs().sum(0) > 0)  # (row, column) of every input that counts
    return first - int(reach.min()), int(reach.max()) - last  # rows and columns alike (square cell)


@pytest.mark.parametrize("cls, kwargs", [(ScaleHyperprior, dict(N=8, M=8)), (AttentionCodec, dict(N=8, M=8))])
def test_tile_halo_covers_the_receptive_field(cls, kwargs):
    torch.manual_seed(0)
    m = cls(**kwargs).eval()
    before, after = _receptive_radius(m.g_a, 3, 1024, 16)
    assert 0 < max(before, after) <= m.HALO_A, (before, after)
    before, after = _receptive_radius(m.g_s, m.M, 48, 1)
    assert 0 < max(before, after) <= m.HALO_S, (before, after)
    assert m.TILE % 16 == 0 and m.HALO_A % 16 == 0


def test_large_image_coded_in_tiles_equals_one_piece(tiny, photos):
    """A tiny tile forces a 3×4 grid on a 161×230 photo: the file decodes to the encoder's own
    reconstruction, and to what decoding in one piece gives (to float rounding)."""
    img = photos["chelsea"]
    try:
        tiny.TILE = 64
        enc = codec.encode(img, model=tiny, quality=2, reconstruct=True)
        tiled = np.asarray(codec.decode(enc.data, model=tiny))
        assert np.array_equal(tiled, np.asarray(enc.reconstruction))
    finally:
        del tiny.TILE  # back to the class's
    whole_enc = codec.encode(img, model=tiny, quality=2)
    whole = np.asarray(codec.decode(enc.data, model=tiny)).astype(int)
    assert tiled.shape == whole.shape == np.asarray(img).shape
    assert np.abs(tiled.astype(int) - whole).max() <= 1
    assert np.mean(tiled != whole) < 1e-3
    # the latents the analysis tiles give differ from one piece's only where float rounding flips a rounding
    assert abs(len(whole_enc.data) - len(enc.data)) <= 0.01 * len(enc.data)
