"""Exact synthesis: the same decoded pixels on every machine, by construction.

Why: a file's latents decode identically everywhere (integer tables, integer hyperpriors), but the
synthesis transform that turns them into pixels runs in float, and float sums depend on the order in
which a CPU kernel adds them up: another instruction set (AVX2 instead of AVX-512, SSE4 on an old
machine) may move a few samples by one code value (``benchmarks/cross_isa.py``).  ``lic compress
--exact`` writes files whose synthesis is evaluated as below, and then no summation order can matter:

* every operand of a sum is a multiple of a fixed power of two: weights and biases of 2**-24 (the
  finest step of fp16, so shipped fp16 weights are used as they are), the activations a convolution
  reads of 2**-12 (rounded to that grid, half to even, just before the convolution; in practice the
  convolution reads the integers round(x·2**12) and its weights carry the 2**-12);
* every product is then a multiple of 2**-36, and the activations are clamped so that no partial sum
  can reach 2**17 (per layer from the weights: |x| ≤ (2**17 − max|b|) / max Σ|w|; over the 24 Kodak
  images at every quality no convolution read more than 9 % (bmshj2018-hyperprior) or 2.3 %
  (attention-hyperprior) of its limit, ``benchmarks/exact_headroom.py``: a guard, not a change); such sums are
  integers × 2**-36 below 2**53 × 2**-36 and float64 represents every one of them: each addition is
  exact, in any order, with or without fused multiply-add;
* between convolutions only IEEE-754 operations that are correctly rounded elementwise (+, −, ×, ÷,
  sqrt, rounding, comparison) touch the data, so they give the same bits on every conforming CPU
  (an exactly zero sum may come out as +0 or −0 depending on the kernel; no operation used here turns
  that sign into a different non-zero value: nothing divides by such a sum);
  the transcendental functions the models need (exp for the gain vectors, the sigmoid of the attention
  mask, the recurrent cells' sigmoid and tanh) are evaluated here from those operations in a fixed order
  (:func:`exp`), not by a vectorized library whose last bit may differ between instruction sets.

GDN (:mod:`lic.layers.gdn`) squares its input first: x² is rounded to the same 2**-12 grid before the
γ convolution, γ and β to 2**-24.  The convolutions run as float64 matrix products (:func:`tap_conv`,
:class:`PhaseTranspose`); bmshj2018-hyperprior then decodes a Kodak image in about 4× the time of its
float32 synthesis, with twice the memory (README; ``benchmarks/kodak_rd.py --exact``).

A module tree is evaluated exactly by :func:`exact_copy`: a float64 copy whose convolutions round and
clamp their input, whose GDN / attention layers switch to their exact branch (``exact = True``), and
which refuses any module it does not know to be exact.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn as nn

A_FRAC = 12  # activations read by a convolution: multiples of 2**-A_FRAC
W_FRAC = 24  # weights and biases: multiples of 2**-W_FRAC (every fp16 value is one)
SUM_LIMIT = 2.0 ** 17  # |partial sums| stay below this: 2**53 steps of 2**-(A_FRAC + W_FRAC)


def to_grid(x: torch.Tensor, frac: int) -> torch.Tensor:
    """x rounded (half to even) to a multiple of 2**-frac: both scalings are exact in binary float."""
    return torch.round(x * 2.0 ** frac) * 2.0 ** -frac


def input_limit(weight_abs_sums: torch.Tensor, bias: torch.Tensor | None) -> float:
    """The largest |activation| (on the A grid) a layer may read so that no partial sum reaches SUM_LIMIT;
    ``weight_abs_sums``: Σ|w| of each output channel."""
    b = float(bias.detach().abs().max()) if bias is not None and bias.numel() else 0.0
    room = SUM_LIMIT - b - 1.0
    s = float(weight_abs_sums.detach().max())
    if room <= 0:
        raise ValueError("a bias beyond 2**17 cannot be evaluated exactly")
    return math.inf if s == 0 else math.floor(room / s * 2 ** A_FRAC) / 2 ** A_FRAC


# -- exp, sigmoid and tanh from correctly rounded operations -------------------------------------------
_LN2_HI = 6.93147180369123816490e-01  # ln 2 split so that n·_LN2_HI is exact for |n| < 2**11 (fdlibm)
_LN2_LO = 1.90821492927058770002e-10
_INV_LN2 = 1.44269504088896338700e+00
_TAYLOR = [1.0 / math.factorial(k) for k in range(14)]  # |r| ≤ ln2/2: the 13th-degree remainder < 2**-56


def exp(x: torch.Tensor) -> torch.Tensor:
    """e**x in float64 from +, ×, rounding and an exponent written into the bits, in a fixed order:
    the same bits on every machine (within 2 ulp of the true value; |x| ≤ 700)."""
    x = x.double().clamp(-700.0, 700.0)
    n = torch.round(x * _INV_LN2)
    r = (x - n * _LN2_HI) - n * _LN2_LO
    p = torch.full_like(r, _TAYLOR[-1])
    for c in reversed(_TAYLOR[:-1]):  # Horner: separate multiply and add, never fused
        p = p * r + c
    two_n = ((n.to(torch.int64) + 1023) << 52).view(torch.float64)  # 2**n, exactly
    return p * two_n


def sigmoid(x: torch.Tensor) -> torch.Tensor:
    """1 / (1 + e**-x) with :func:`exp`."""
    return 1.0 / (1.0 + exp(-x))


def tanh(x: torch.Tensor) -> torch.Tensor:
    """1 − 2 / (e**2x + 1) with :func:`exp` (±1 far out, where exp saturates)."""
    return 1.0 - 2.0 / (exp(2.0 * x) + 1.0)


# -- exact copies of module trees ---------------------------------------------------------------------
def _conv_abs_sums(m: nn.Module) -> torch.Tensor:
    w = m.weight.detach().abs()
    if isinstance(m, nn.ConvTranspose2d):  # weight: in × out/groups × k × k
        return w.sum(dim=(0, 2, 3))
    return w.sum(dim=(1, 2, 3))


def _round_input(limit: float):
    """The hook before a convolution: its input in grid units, round(x·2**A_FRAC), clamped to ±limit·2**A_FRAC
    (the convolution's weights carry the 2**-A_FRAC instead: the same products, one pass less)."""
    units = limit * 2 ** A_FRAC

    def hook(module, args):
        t = args[0].double() * 2.0 ** A_FRAC  # a new tensor: the input may be needed again (residual paths)
        return (t.round_().clamp_(-units, units),)
    return hook


def tap_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, pad: tuple[int, int, int, int]):
    """A stride-1 convolution (``pad`` = left, right, top, bottom zeros, as F.pad) as a sum over its taps of
    matrix products: the padded image's pixels are rows of a matrix (channels-last), and tap (dy, dx) reads
    the rows dy·W + dx further on, one contiguous block, so no unfolded copy of the input is ever made.
    With exact sums the same values as F.conv2d bit for bit (tested).  Chosen because PyTorch's native
    float64 convolution unfolds its input 9-fold for a 3×3 kernel (0.9 GB for one 128-channel feature map at
    half Kodak size) and was slower on every layer shape of the shipped synthesis transforms tried here."""
    co, ci, kh, kw = weight.shape
    n, c, h0, w0 = x.shape
    left, right, top, bottom = pad
    hp, wp = top + h0 + bottom + 1, left + w0 + right  # a spare row: the last tap's block stays inside
    xp = x.new_zeros(n, hp, wp, c)  # padded, channels-last
    xp[:, top:top + h0, left:left + w0] = x.permute(0, 2, 3, 1)
    h, w = hp - kh, wp - kw + 1
    rows = h * wp  # outputs on the padded width; the kw − 1 columns past w are dropped
    taps = weight.permute(2, 3, 1, 0).contiguous()  # kh × kw × C_in × C_out
    out = []
    for i in range(n):
        img = xp[i].view(hp * wp, c)
        y = bias.expand(rows, co).clone() if bias is not None else img.new_zeros(rows, co)
        for dy in range(kh):
            for dx in range(kw):
                start = dy * wp + dx
                y.addmm_(img[start:start + rows], taps[dy, dx])
        out.append(y.view(h, wp, co)[:, :w].permute(2, 0, 1).unsqueeze(0))  # a channels-last view, no copy
    return out[0] if n == 1 else torch.cat(out)


class TapConv(nn.Module):
    """A stride-1 Conv2d evaluated by :func:`tap_conv` (same weights)."""

    def __init__(self, conv: nn.Conv2d):
        super().__init__()
        self.weight, self.bias = conv.weight, conv.bias
        ph, pw = conv.padding
        self.pad = (pw, pw, ph, ph)

    @staticmethod
    def applies(conv: nn.Conv2d) -> bool:
        return (conv.stride == (1, 1) and conv.dilation == (1, 1) and conv.groups == 1
                and conv.padding_mode == "zeros" and not isinstance(conv.padding, str))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return tap_conv(x, self.weight, self.bias, self.pad)


class PhaseTranspose(nn.Module):
    """A stride-s transposed convolution as one ordinary convolution to s²·C_out channels and a pixel
    shuffle (each output phase is a convolution of the input with every s-th tap).  The same products
    summed, so in exact arithmetic the same values bit for bit (tested).  In float64 on a CPU it was faster
    than PyTorch's transposed convolution here where it has many output channels (bmshj2018's 128 → 128
    layers), much slower where it has few (the last layer, 128 → 3), so it is used only where s²·C_out ≥ C_in
    (:meth:`applies`)."""

    def __init__(self, t: nn.ConvTranspose2d):
        super().__init__()
        (k, _), (s, _), (p, _) = t.kernel_size, t.stride, t.padding
        cin, cout = t.weight.shape[:2]
        # output row y = s·m + a takes input row m + d through tap a + p − s·d
        ds = [d for d in range(-k, k + 1) if any(0 <= a + p - s * d < k for a in range(s))]
        self.d0, self.s = ds[0], s
        w = t.weight.new_zeros(cout, s, s, cin, len(ds), len(ds))
        for a in range(s):
            for b in range(s):
                for i, d in enumerate(ds):
                    for j, e in enumerate(ds):
                        ka, kb = a + p - s * d, b + p - s * e
                        if 0 <= ka < k and 0 <= kb < k:
                            w[:, a, b, :, i, j] = t.weight[:, :, ka, kb].T
        self.weight = nn.Parameter(w.reshape(cout * s * s, cin, len(ds), len(ds)), requires_grad=False)
        bias = t.bias if t.bias is not None else t.weight.new_zeros(cout)
        self.bias = nn.Parameter(bias.repeat_interleave(s * s), requires_grad=False)
        self.pad = (-ds[0], ds[-1], -ds[0], ds[-1])
        self.taps = TAPS

    @staticmethod
    def applies(t: nn.ConvTranspose2d) -> bool:
        """Square, ungrouped, undilated, an output of exactly s × the input (output_padding = s − k + 2p),
        and where it pays: s²·C_out ≥ C_in."""
        (k, k2), (s, s2), (p, p2), (op, op2) = t.kernel_size, t.stride, t.padding, t.output_padding
        cin, cout = t.weight.shape[:2]
        return ((k, s, p, op) == (k2, s2, p2, op2) and t.groups == 1 and t.dilation == (1, 1)
                and op == s - k + 2 * p and s * s * cout >= cin)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.taps:
            y = tap_conv(x, self.weight, self.bias, self.pad)
        else:
            y = nn.functional.conv2d(nn.functional.pad(x, self.pad), self.weight, self.bias)
        return nn.functional.pixel_shuffle(y, self.s)


#: evaluate transposed convolutions as :class:`PhaseTranspose`, stride-1 convolutions as :class:`TapConv`
#: (the same values either way, faster; tests compare both ways)
PHASES = True
TAPS = True

SAFE = (TapConv, PhaseTranspose, nn.Sequential, nn.ModuleList, nn.ModuleDict, nn.PixelShuffle, nn.PixelUnshuffle, nn.ReLU, nn.LeakyReLU, nn.Identity)


def exact_copy(module: nn.Module) -> nn.Module:
    """A float64 copy of ``module`` (a synthesis transform) on the CPU, evaluated in exact arithmetic.

    Known modules: convolutions (rounded, clamped input; weights on the 2**-24 grid), modules with an
    ``exact`` attribute (switched on: GDN, the attention mask, the recurrent cells), modules marked ``exact_safe``
    (their own forward only adds, multiplies or reshapes what their children return) and the plain
    ones in :data:`SAFE`.  Anything else raises TypeError: it might call a kernel whose bits vary."""
    dup = copy.deepcopy(module).cpu().double().eval()  # on the CPU: the same kernels wherever the model is
    for name, m in list(dup.named_modules()):
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            with torch.no_grad():
                m.weight.data = to_grid(m.weight.data, W_FRAC).contiguous()
                if m.bias is not None:
                    m.bias.data = to_grid(m.bias.data, W_FRAC)
                hook = _round_input(input_limit(_conv_abs_sums(m), m.bias))  # the limit of the layer as it is
                m.weight.data *= 2.0 ** -A_FRAC  # it reads grid units (the hook); still exact: a power of two
            new = None
            if isinstance(m, nn.ConvTranspose2d) and PHASES and PhaseTranspose.applies(m):
                new = PhaseTranspose(m)
            elif isinstance(m, nn.Conv2d) and TAPS and TapConv.applies(m):
                new = TapConv(m)
            if new is not None:
                m = new
                if name:
                    parent, _, attr = name.rpartition(".")
                    setattr(dup.get_submodule(parent) if parent else dup, attr, m)
                else:
                    dup = m
            m.register_forward_pre_hook(hook)
        elif hasattr(m, "exact"):
            m.exact = True
        elif not (isinstance(m, SAFE) or getattr(m, "exact_safe", False)):
            raise TypeError(f"{type(m).__name__} has no exact evaluation")
    for p in dup.parameters():
        p.requires_grad_(False)
    return dup
