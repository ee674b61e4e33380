"""Density models and their integer tables, checked against the coder's real output."""

import numpy as np
import pytest
import torch

from lic.entropy import FactorizedPrior, GaussianConditional
from lic.entropy import gaussian as G
from lic.entropy.tables import TOTAL, quantize_pmf
from lic.layers import IntegerNetwork


def test_quantize_pmf_is_a_valid_table():
    rng = np.random.default_rng(1)
    for n in (1, 2, 10, 3000):
        p = rng.random(n) ** 4
        p /= p.sum() * 1.001
        f = quantize_pmf(p, 0.001)
        assert f.sum() == TOTAL and f.min() >= 1 and len(f) == n + 1


@pytest.fixture(scope="module")
def gauss():
    g = GaussianConditional()
    g.update()
    return g


def test_gaussian_round_trip_and_size(gauss):
    rng = np.random.default_rng(0)
    idx = torch.from_numpy(rng.integers(0, G.N_SCALES, size=(1, 24, 20, 30)))
    y = torch.round(torch.randn(idx.shape) * gauss.table_scales[idx])
    y[0, 0, 0, :3] = torch.tensor([1e5, -7e4, 3e3])  # far outside every table: escapes
    data = gauss.compress(y, idx)
    assert torch.equal(gauss.decompress(data, idx), y)
    ideal = gauss.table_bits(y, idx) / 8
    assert ideal <= len(data) <= ideal * 1.002 + 8
    # the tables agree with the continuous density they were built from
    est = -torch.log2(G.gaussian_likelihood(y, gauss.table_scales[idx])).sum().item() / 8
    assert abs(len(data) - est) / est < 0.01


def test_gaussian_tables_cost_almost_nothing_over_the_density(gauss):
    """Coding with the integer tables costs < 0.002 bits/symbol more than the exact density (KL)."""
    for i in range(0, G.N_SCALES, 7):
        L, off = int(gauss.lengths[i]), int(gauss.offsets[i])
        v = torch.arange(off, off + L, dtype=torch.float64)
        p = G.gaussian_likelihood(v, torch.tensor(G.SCALES[i], dtype=torch.float64)).numpy()
        q = gauss.freqs[i, :L].numpy() / TOTAL
        kl = float(np.sum(p * np.log2(p / q)))
        assert kl < 2e-3, (i, kl)


def test_factorized_round_trip_and_size():
    torch.manual_seed(0)
    f = FactorizedPrior(8)
    f.update()
    assert f.tables_current()
    z = torch.round(torch.randn(1, 8, 16, 16) * 4)
    z[0, 3, 0, 0] = 5000
    data = f.compress(z)
    assert torch.equal(f.decompress(data, z.shape), z)
    est = -torch.log2(f.likelihood(z)).sum().item() / 8
    assert abs(len(data) - est) / est < 0.02
    with torch.no_grad():
        f.biases[0].add_(1.0)
    assert not f.tables_current()  # weights changed: tables are stale and will be rebuilt


def test_corrupt_payload_never_crashes(gauss):
    idx = torch.zeros(1, 4, 8, 8, dtype=torch.long) + 30
    y = torch.round(torch.randn(idx.shape) * 5)
    data = bytearray(gauss.compress(y, idx))
    data[0] ^= 0xFF
    try:
        gauss.decompress(bytes(data), idx)  # wrong values are fine here; the file CRC catches this case
    except Exception as exc:
        from lic.errors import FormatError

        assert isinstance(exc, FormatError)


def test_integer_network_is_exact_and_close_to_float():
    torch.manual_seed(0)
    layers = [torch.nn.ConvTranspose2d(8, 8, 5, 2, 2, 1), torch.nn.ConvTranspose2d(8, 8, 5, 2, 2, 1),
              torch.nn.Conv2d(8, 12, 3, 1, 1)]
    net = IntegerNetwork(layers)
    net.load_from(layers)
    z = torch.round(torch.randn(1, 8, 5, 7) * 3)
    out = net(z)
    assert torch.equal(out, torch.round(out))  # integers
    with torch.no_grad():
        ref = layers[2](torch.relu(layers[1](torch.relu(layers[0](z)))))
    assert torch.allclose(out.float() / 256, ref, atol=0.05)
    torch.set_num_threads(1)
    try:
        assert torch.equal(net(z), out)
    finally:
        torch.set_num_threads(2)


def test_a_stream_with_words_left_over_or_missing_is_refused(gauss):
    """Data that passed its chunk's checksum yet is not the stream the encoder wrote (a word added, one
    dropped, or random words) is refused: the coder must end exactly on its initial state."""
    from lic.errors import FormatError

    idx = torch.zeros(1, 4, 16, 16, dtype=torch.long) + 30
    y = torch.round(torch.randn(idx.shape, generator=torch.Generator().manual_seed(2)) * 5)
    data = gauss.compress(y, idx)
    assert len(data) >= 8 and torch.equal(gauss.decompress(data, idx), y)
    rng = np.random.default_rng(3)
    for bad in (data + b"\x01\x02\x03\x04", data[:-4], data[4:], rng.bytes(len(data))):
        with pytest.raises(FormatError, match="corrupt .lic file"):
            gauss.decompress(bad, idx)
