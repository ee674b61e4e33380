"""A convolutional GRU that can be evaluated *exactly* in fixed point, for recurrent hyperpriors.

A recurrent hyper-synthesis carries a hidden state from one layer (iteration) of a
scalable codec to the next, and the scale index of every latent depends on it, so
encoder and decoder must compute that state *bit for bit* alike on any machine and
thread count.  Sigmoid and tanh cannot be evaluated exactly in fixed point; their
piecewise-linear versions can:

    hard-sigmoid(a) = clamp(a/4 + ½, 0, 1)        hard-tanh(a) = clamp(a, -1, 1)

:class:`HardConvGRU` is the float cell used in training: the GRU of
:mod:`lic.layers.convrnn` (same parameters) with these activations::

    z = hσ(W_z x + U_z h)   r = hσ(W_r x + U_r h)   c = htanh(W_c x + U_c (r ⊙ h))
    h' = h + z ⊙ (c − h)

:class:`IntegerConvGRU` is its fixed-point twin, built from the float cell by
:meth:`~IntegerConvGRU.load_from`, in the units of :mod:`lic.layers.integer`
(weights with ``W_BITS`` fractional bits, activations and state with ``A_BITS``):
every convolution is an integer sum below 2**53 evaluated in float64 (exact whatever
the summation order), every rescaling a floor division by a power of two, ``a/4``
is ``⌊a/4⌋``, products ``z·(c−h)`` are rescaled by ``⌊·/2**A_BITS⌋``, and the
state stays an integer in ``[-2**A_BITS, 2**A_BITS]``.  So the state after any
number of steps is a deterministic integer function of the integer inputs.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .convrnn import ConvGRU
from .integer import A_BITS, A_MAX, IN_MAX, W_BITS, _check_bounds, check_storable

ONE = 2 ** A_BITS  # 1.0 in activation units


def hard_sigmoid(a: torch.Tensor) -> torch.Tensor:
    return (a / 4 + 0.5).clamp(0.0, 1.0)


class HardConvGRU(ConvGRU):
    """Conv-GRU with hard-sigmoid gates and a hard-tanh candidate; state in [-1, 1]."""

    def __init__(self, cin: int, hidden: int, kernel: int = 3, hidden_kernel: int = 3):
        super().__init__(cin, hidden, kernel, 1, hidden_kernel)

    def forward(self, x, state=None):
        gx = self.conv_x(x)
        h = self._zeros(gx, self.hidden) if state is None else state
        xz, xr, xc = gx.chunk(3, 1)
        hz, hr = self.conv_h(h).chunk(2, 1)
        z = hard_sigmoid(xz + hz)
        r = hard_sigmoid(xr + hr)
        c = (xc + self.conv_c(r * h)).clamp(-1.0, 1.0)
        h = h + z * (c - h)
        return h, h


class QConv(nn.Module):
    """One fixed-point (transposed) convolution: input with ``in_bits`` fractional bits -> ``A_BITS``."""

    def __init__(self, layer: nn.Module, in_bits: int = A_BITS):
        super().__init__()
        self.transposed = isinstance(layer, nn.ConvTranspose2d)
        self.stride, self.padding = layer.stride[0], layer.padding[0]
        self.output_padding = getattr(layer, "output_padding", (0,))[0]
        self.in_bits = in_bits
        self.has_bias = layer.bias is not None
        self.register_buffer("w", torch.zeros_like(layer.weight, dtype=torch.int16))
        n_out = layer.weight.shape[1] if self.transposed else layer.weight.shape[0]
        self.register_buffer("b", torch.zeros(n_out, dtype=torch.int64))

    @torch.no_grad()
    def load_from(self, layer: nn.Module) -> None:
        w_q = torch.round(layer.weight.detach().double().cpu() * 2 ** W_BITS)
        check_storable(w_q)
        fan_in = layer.weight.shape[0] * layer.weight[0, 0].numel() if self.transposed else layer.weight[0].numel()
        _check_bounds(w_q, fan_in, IN_MAX if self.in_bits == 0 else A_MAX)
        self.w.copy_(w_q.to(torch.int16))
        if self.has_bias:
            self.b.copy_(torch.round(layer.bias.detach().double().cpu() * 2 ** (W_BITS + self.in_bits)).to(torch.int64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w, b = self.w.cpu().double(), (self.b.cpu().double() if self.has_bias else None)
        if self.transposed:
            acc = F.conv_transpose2d(x, w, b, stride=self.stride, padding=self.padding,
                                     output_padding=self.output_padding)
        else:
            acc = F.conv2d(x, w, b, stride=self.stride, padding=self.padding)
        return torch.div(acc, 2.0 ** (W_BITS + self.in_bits - A_BITS), rounding_mode="floor")


class IntegerConvGRU(nn.Module):
    """Fixed-point twin of a :class:`HardConvGRU` (see the module docstring)."""

    def __init__(self, cell: HardConvGRU):
        super().__init__()
        self.hidden = cell.hidden
        self.conv_x, self.conv_h, self.conv_c = QConv(cell.conv_x), QConv(cell.conv_h), QConv(cell.conv_c)

    def load_from(self, cell: HardConvGRU) -> None:
        for name in ("conv_x", "conv_h", "conv_c"):
            getattr(self, name).load_from(getattr(cell, name))

    @torch.no_grad()
    def forward(self, x: torch.Tensor, h: torch.Tensor | None = None) -> torch.Tensor:
        """x: activations (float64 integers, units 2**-A_BITS, |x| < A_MAX); h: the previous state or None.
        Returns the new state (float64 integers in [-2**A_BITS, 2**A_BITS])."""
        x = x.to("cpu", torch.float64).clamp(-A_MAX + 1, A_MAX - 1)
        gx = self.conv_x(x)
        if h is None:
            h = gx.new_zeros(gx.shape[0], self.hidden, gx.shape[2], gx.shape[3])
        xz, xr, xc = gx.chunk(3, 1)
        hz, hr = self.conv_h(h).chunk(2, 1)
        z = (torch.div(xz + hz, 4.0, rounding_mode="floor") + ONE // 2).clamp(0, ONE)
        r = (torch.div(xr + hr, 4.0, rounding_mode="floor") + ONE // 2).clamp(0, ONE)
        rh = torch.div(r * h, float(ONE), rounding_mode="floor")
        c = (xc + self.conv_c(rh)).clamp(-ONE, ONE)
        return (h + torch.div(z * (c - h), float(ONE), rounding_mode="floor")).clamp(-ONE, ONE)


__all__ = ["HardConvGRU", "IntegerConvGRU", "QConv", "hard_sigmoid"]
