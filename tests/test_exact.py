"""Exact synthesis (lic.layers.exact, ``lic compress --exact``): files whose decoded pixels cannot depend on
the machine, the thread count, the instruction set or the tiling."""

import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn as nn

import lic
from lic import codec, container
from lic.errors import FormatError, ModelError
from lic.layers import exact
from lic.layers.gdn import GDN

SHIPPED = ["bmshj2018-hyperprior", "attention-hyperprior"]
RECURRENT = ["toderici2017-rnn", "su2020-rnn-hyperprior"]


def test_exp_is_accurate_and_the_same_elementwise_as_vectorized():
    """One evaluation order for every element: a long tensor (vectorized kernels) gives the same bits as
    one element at a time (scalar path), and the values are e**x to within 2 ulp."""
    x = torch.linspace(-30, 30, 4099, dtype=torch.float64)
    vec = exact.exp(x)
    one_by_one = torch.cat([exact.exp(x[i:i + 1]) for i in range(0, len(x), 37)])
    assert torch.equal(vec[::37], one_by_one)
    ref = torch.tensor([math.exp(v) for v in x.tolist()], dtype=torch.float64)
    assert float(((vec - ref).abs() / ref).max()) < 4.5e-16
    assert float(exact.sigmoid(torch.tensor([0.0], dtype=torch.float64))) == 0.5


def _exactly(module):
    return exact.exact_copy(module.eval())


def test_exact_convolution_sums_are_exact_in_any_order():
    """Split the input channels in two, convolve each half, add: with rounded sums the result would move
    in the last bits; exact sums make both ways equal bit for bit (and both within 2**-30 of float64)."""
    torch.manual_seed(1)
    conv = nn.Conv2d(64, 32, 5, padding=2)
    x = torch.randn(1, 64, 40, 40, dtype=torch.float64) * 7
    whole = _exactly(conv)(x)
    halves = []
    for part in (slice(0, 32), slice(32, 64)):
        c = nn.Conv2d(32, 32, 5, padding=2, bias=part.start == 0)
        with torch.no_grad():
            c.weight.copy_(conv.weight[:, part])
            if c.bias is not None:
                c.bias.copy_(conv.bias)
        halves.append(_exactly(c)(x[:, part]))
    assert torch.equal(whole, halves[0] + halves[1])
    mirrored = nn.Conv2d(64, 32, 5, padding=2)  # the mirrored image through the mirrored kernel: other orders
    with torch.no_grad():
        mirrored.weight.copy_(conv.weight.flip(-1))
        mirrored.bias.copy_(conv.bias)
    assert torch.equal(whole, _exactly(mirrored)(x.flip(-1)).flip(-1))
    with torch.no_grad():
        plain = nn.functional.conv2d(exact.to_grid(x, exact.A_FRAC), exact.to_grid(conv.weight.double(), 24),
                                     exact.to_grid(conv.bias.double(), 24), padding=2)
    assert float((whole - plain).abs().max()) < 2 ** -30


def test_exact_copy_clamps_to_keep_sums_exact_and_refuses_unknown_modules():
    conv = nn.ConvTranspose2d(8, 4, 5, stride=2, padding=2, output_padding=1)
    limit = exact.input_limit(conv.weight.detach().abs().sum(dim=(0, 2, 3)), conv.bias)
    x = torch.full((1, 8, 3, 3), 1e12, dtype=torch.float64)
    out = _exactly(conv)(x)  # a huge input is clamped: every partial sum stays below 2**17
    assert float(out.abs().max()) < exact.SUM_LIMIT and limit < 1e12
    with pytest.raises(TypeError, match="Tanh has no exact evaluation"):
        exact.exact_copy(nn.Sequential(nn.Conv2d(3, 3, 1), nn.Tanh()))
    g = GDN(4, inverse=True)
    y = torch.randn(1, 4, 6, 6)
    assert torch.allclose(_exactly(g)(y).float(), g(y), atol=1e-3)
    assert g.exact is False  # the model's own layer is untouched


@pytest.fixture(scope="module")
def small(photos):
    return photos["coffee"]  # 168x200: two 64-pixel blocks across, odd remainders


@pytest.mark.parametrize("name", SHIPPED)
def test_exact_file_decodes_to_the_encoders_reconstruction_whatever_the_tiling(name, small):
    m = lic.load_model(name)
    enc = codec.encode(small, model=m, quality=2, reconstruct=True, exact=True)
    assert container.read(enc.data).header.params == container.PARAMS_EXACT_SYNTHESIS
    decoded = np.asarray(lic.decompress(enc.data, model=m))
    assert np.array_equal(decoded, np.asarray(enc.reconstruction))
    plain = np.asarray(codec.encode(small, model=m, quality=2, reconstruct=True).reconstruction)
    assert np.abs(decoded.astype(int) - plain).max() <= 1  # the same function as the float32 synthesis
    tile = m.TILE
    try:
        m.TILE = 64  # 3 x 4 tiles instead of one: the sums are exact, so the tiling cannot show
        assert np.array_equal(np.asarray(lic.decompress(enc.data, model=m)), decoded)
    finally:
        m.TILE = tile


ISA = r"""
import sys, hashlib, numpy as np, torch
torch.set_num_threads(int(sys.argv[2]))
import lic
d = lic.decompress(open(sys.argv[1], "rb").read())
print(torch.backends.cpu.get_cpu_capability(), hashlib.sha256(np.asarray(d).tobytes()).hexdigest())
"""


@pytest.mark.parametrize("name", SHIPPED + RECURRENT)
def test_exact_file_decodes_the_same_without_avx_and_at_any_thread_count(name, small, tmp_path):
    """The same file decoded by processes whose kernels are capped to older instruction sets (as
    benchmarks/cross_isa.py does; a float32 file differs in a few samples there) and at 1 or 2 threads."""
    path = tmp_path / "x.lic"
    path.write_bytes(lic.compress(small, model=name, quality=4, exact=True))  # 4 iterations / layers: recurrent
    out = []
    for threads, caps in ((2, {}), (1, {}), (2, {"ATEN_CPU_CAPABILITY": "default", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2",
                                               "ONEDNN_MAX_CPU_ISA": "SSE41"})):
        env = {**os.environ, **caps}
        p = subprocess.run([sys.executable, "-c", ISA, str(path), str(threads)], env=env, capture_output=True,
                           text=True, check=True)
        out.append(p.stdout.split())
    assert out[2][0] == "DEFAULT"  # the cap took effect: PyTorch's kernels without AVX
    assert out[0][1] == out[1][1] == out[2][1]


def test_exact_with_rate_control_and_refinement(tiny, small):
    """--exact goes with --bpp (every candidate file is exact) and with --refine (whose exact cost is then
    measured on the exact synthesis): the file still decodes to what the encoder measured."""
    data = lic.compress(small, model=tiny, bpp=0.8, exact=True)
    assert container.read(data).header.params == container.PARAMS_EXACT_SYNTHESIS
    enc = codec.encode(small, model=tiny, quality=2, reconstruct=True, refine=3, exact=True)
    assert np.array_equal(np.asarray(lic.decompress(enc.data, model=tiny)), np.asarray(enc.reconstruction))


def test_models_without_exact_synthesis_refuse_it_and_unknown_settings_are_corrupt(tiny, small):
    from types import SimpleNamespace

    with pytest.raises(ModelError, match="'other' has no exact synthesis"):
        codec.check_exact(SimpleNamespace(name="other", exact_synthesis=False), True)
    f = container.read(lic.compress(small, model=tiny, quality=1))
    h = f.header
    h.params = b"\x02"
    with pytest.raises(FormatError, match="unknown synthesis setting 02"):
        lic.decompress(container.write(h, f.chunks), model=tiny)


@pytest.mark.parametrize("k,s,p", [(5, 2, 2), (3, 2, 1), (4, 2, 1), (6, 2, 2), (5, 3, 2)])
def test_transposed_convolution_as_phases_gives_the_same_bits(k, s, p, monkeypatch):
    """Exact sums do not care how the products are grouped: the phase form of a transposed convolution
    (lic.layers.exact.PhaseTranspose, faster, on tap_conv) equals PyTorch's transposed convolution bit for bit."""
    torch.manual_seed(k * s)
    t = nn.ConvTranspose2d(6, 5, k, stride=s, padding=p, output_padding=s - k + 2 * p)
    x = torch.randn(1, 6, 7, 9, dtype=torch.float64) * 3
    fast = exact.exact_copy(nn.Sequential(t, nn.ReLU()))
    monkeypatch.setattr(exact, "PHASES", False)
    monkeypatch.setattr(exact, "TAPS", False)
    slow = exact.exact_copy(nn.Sequential(t, nn.ReLU()))
    assert isinstance(fast[0], exact.PhaseTranspose) and isinstance(slow[0], nn.ConvTranspose2d)
    assert fast(x).shape[-2:] == (7 * s, 9 * s)
    assert torch.equal(fast(x), slow(x))


@pytest.mark.parametrize("k,pad", [(3, 1), (1, 0), (5, 2), (3, 0), (4, (1, 2))])
def test_convolution_as_a_sum_over_taps_gives_the_same_bits(k, pad, monkeypatch):
    """lic.layers.exact.TapConv (no unfolded copy of the input) equals PyTorch's convolution, batch of 2."""
    torch.manual_seed(k)
    c = nn.Conv2d(7, 5, k, padding=pad)
    x = torch.randn(2, 7, 11, 13, dtype=torch.float64) * 5
    fast = exact.exact_copy(nn.Sequential(c))
    monkeypatch.setattr(exact, "TAPS", False)
    slow = exact.exact_copy(nn.Sequential(c))
    assert isinstance(fast[0], exact.TapConv) and isinstance(slow[0], nn.Conv2d)
    assert torch.equal(fast(x), slow(x))


def test_cli_exact(tmp_path, photo_file, tiny_weights):
    """lic compress --exact says so, and lic info shows it."""
    out = tmp_path / "x.lic"
    cmd = [sys.executable, "-m", "lic"]
    p = subprocess.run([*cmd, "compress", photo_file, "-o", out, "--exact", "--model", tiny_weights],
                       capture_output=True, text=True)
    assert p.returncode == 0 and "exact synthesis" in p.stdout
    info = subprocess.run([*cmd, "info", out], capture_output=True, text=True, check=True).stdout
    assert "synthesis exact" in info


@pytest.mark.parametrize("name", RECURRENT)
def test_exact_progressive_file_every_prefix_decodes_to_the_encoders_reconstruction(name, small):
    """The recurrent decoders (their cells' sigmoid and tanh from lic.layers.exact): each prefix of an exact
    file decodes to the encoder's exact reconstruction after that many iterations / layers."""
    from lic.ratecontrol import prefix_files
    from lic.imageio import from_tensor, prepare

    m = lic.load_model(name)
    comp, files = prefix_files(prepare(small), m, 4, exact=True)
    for k, data in enumerate(files, 1):
        assert container.read(data).header.params == container.PARAMS_EXACT_SYNTHESIS
        assert np.array_equal(np.asarray(lic.decompress(data, model=m)), from_tensor(comp.extra["x_hats"][k - 1]))


@pytest.mark.parametrize("kind", ["lstm", "associative", "gru", "residual-gru"])
def test_exact_recurrent_cells_compute_the_same_function(kind):
    from lic.layers.convrnn import make_cell

    torch.manual_seed(3)
    cell = make_cell(kind, 6, 8).eval()
    twin = exact.exact_copy(cell)
    x = torch.randn(1, 6, 9, 7)
    with torch.no_grad():
        out, state = cell(x)
        out2, state2 = twin(x.double())
        out, _ = cell(x, state)
        out2, _ = twin(x.double(), state2)
    assert float((out2 - out.double()).abs().max()) < 1e-3
    assert twin.exact and not cell.exact
