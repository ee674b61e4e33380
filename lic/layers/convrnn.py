"""Convolutional recurrent cells for the progressive codec of Toderici et al. 2017
("Full Resolution Image Compression with Recurrent Neural Networks", CVPR 2017, section 2.2).

Every cell maps ``(x_t, state_{t-1}) -> (out_t, state_t)``.  Gate pre-activations are
``W * x_t + U * h_{t-1}`` with two convolutions: ``W`` (kernel ``kernel``, stride
``stride``: the encoder's down-sampling happens here) and ``U`` (kernel
``hidden_kernel``, stride 1).  ``state=None`` means "first iteration": zeros of the
right size.

=================  ==========================================================================
``lstm``           Conv-LSTM: ``c = f⊙c + i⊙g``, ``h = o⊙tanh(c)``.
``associative``    Associative LSTM (Danihelka et al. 2016), without copies, as in the
                   paper: the hidden units are ``hidden/2`` complex numbers (real parts in
                   the first half of the channels, imaginary in the second);
                   ``c = f⊙c + r_i ⊛ (i⊙g)``, ``h = o⊙bound(r_o ⊛ c)``, ``⊛`` the complex
                   product, ``bound(z) = z / max(1, |z|)``.
``gru``            Conv-GRU: ``h = (1-z)⊙h + z⊙tanh(W x + U(r⊙h))``.
``residual-gru``   the paper's hybrid of GRU and ResNet: the GRU above, and the cell's
                   output adds a (1×1, strided when the cell down-samples) projection of its
                   input: ``out = h + P x`` (``P`` is the identity when shapes allow).
                   The recurrent state stays ``h``.
=================  ==========================================================================
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

CELLS = ("lstm", "associative", "gru", "residual-gru")


class _Cell(nn.Module):
    gates = 4.0  # pre-activation channels per hidden unit
    exact = False  # set on exact copies (lic.layers.exact): sigmoid and tanh from correctly rounded operations

    def _sigmoid(self, t: torch.Tensor) -> torch.Tensor:
        if self.exact:
            from .exact import sigmoid

            return sigmoid(t)
        return torch.sigmoid(t)

    def _tanh(self, t: torch.Tensor) -> torch.Tensor:
        if self.exact:
            from .exact import tanh

            return tanh(t)
        return torch.tanh(t)

    def __init__(self, cin: int, hidden: int, kernel: int = 3, stride: int = 1, hidden_kernel: int = 1):
        super().__init__()
        self.cin, self.hidden, self.stride = cin, hidden, stride
        n = int(self.gates * hidden)
        self.conv_x = nn.Conv2d(cin, n, kernel, stride, padding=kernel // 2)
        self.conv_h = nn.Conv2d(hidden, self._h_gates(n), hidden_kernel, 1, padding=hidden_kernel // 2, bias=False)

    def _h_gates(self, n: int) -> int:
        return n

    def _zeros(self, gx: torch.Tensor, channels: int) -> torch.Tensor:
        return gx.new_zeros(gx.shape[0], channels, gx.shape[2], gx.shape[3])


class ConvLSTM(_Cell):
    gates = 4.0

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        with torch.no_grad():  # forget-gate bias 1: remember by default
            self.conv_x.bias[self.hidden:2 * self.hidden].fill_(1.0)

    def forward(self, x, state=None):
        gx = self.conv_x(x)
        if state is None:
            state = (self._zeros(gx, self.hidden), self._zeros(gx, self.hidden))
        h, c = state
        i, f, o, g = (gx + self.conv_h(h)).chunk(4, 1)
        c = self._sigmoid(f) * c + self._sigmoid(i) * self._tanh(g)
        h = self._sigmoid(o) * self._tanh(c)
        return h, (h, c)


def _cmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Complex product of tensors holding [real | imaginary] halves along channels."""
    ar, ai = a.chunk(2, 1)
    br, bi = b.chunk(2, 1)
    return torch.cat([ar * br - ai * bi, ar * bi + ai * br], 1)


def _bound(z: torch.Tensor) -> torch.Tensor:
    """z / max(1, |z|) for complex z stored as [real | imaginary]."""
    re, im = z.chunk(2, 1)
    d = torch.sqrt(re * re + im * im + 1e-12).clamp_min(1.0)
    return z / torch.cat([d, d], 1)


class AssociativeLSTM(_Cell):
    gates = 4.5  # i, f, o: hidden/2 real each; g, r_i, r_o: hidden/2 complex each

    def __init__(self, cin: int, hidden: int, *args, **kw):
        if hidden % 2:
            raise ValueError("associative LSTM needs an even hidden width")
        super().__init__(cin, hidden, *args, **kw)
        with torch.no_grad():
            self.conv_x.bias[hidden // 2:hidden].fill_(1.0)

    def forward(self, x, state=None):
        gx = self.conv_x(x)
        n = self.hidden // 2
        if state is None:
            state = (self._zeros(gx, self.hidden), self._zeros(gx, self.hidden))
        h, c = state
        a = gx + self.conv_h(h)
        i, f, o = (self._sigmoid(t).repeat(1, 2, 1, 1) for t in a[:, :3 * n].chunk(3, 1))
        g, r_in, r_out = (_bound(t) for t in a[:, 3 * n:].chunk(3, 1))
        c = f * c + _cmul(r_in, i * g)
        h = o * _bound(_cmul(r_out, c))
        return h, (h, c)


class ConvGRU(_Cell):
    gates = 3.0
    residual = False

    def __init__(self, cin: int, hidden: int, kernel: int = 3, stride: int = 1, hidden_kernel: int = 1):
        super().__init__(cin, hidden, kernel, stride, hidden_kernel)
        self.conv_c = nn.Conv2d(hidden, hidden, hidden_kernel, 1, padding=hidden_kernel // 2, bias=False)
        if self.residual:
            self.skip = (nn.Identity() if cin == hidden and stride == 1
                         else nn.Conv2d(cin, hidden, 1, stride, bias=False))

    def _h_gates(self, n: int) -> int:
        return 2 * self.hidden  # z and r; the candidate has its own U (conv_c)

    def forward(self, x, state=None):
        gx = self.conv_x(x)
        h = self._zeros(gx, self.hidden) if state is None else state
        xz, xr, xc = gx.chunk(3, 1)
        hz, hr = self.conv_h(h).chunk(2, 1)
        z = self._sigmoid(xz + hz)
        r = self._sigmoid(xr + hr)
        cand = self._tanh(xc + self.conv_c(r * h))
        h = (1 - z) * h + z * cand
        out = h + self.skip(x) if self.residual else h
        return out, h


class ResidualGRU(ConvGRU):
    residual = True


def make_cell(kind: str, cin: int, hidden: int, kernel: int = 3, stride: int = 1, hidden_kernel: int = 1) -> nn.Module:
    classes = {"lstm": ConvLSTM, "associative": AssociativeLSTM, "gru": ConvGRU, "residual-gru": ResidualGRU}
    if kind not in classes:
        raise ValueError(f"unknown recurrent cell '{kind}' (choose from {', '.join(CELLS)})")
    return classes[kind](cin, hidden, kernel, stride, hidden_kernel)


def pixel_shuffle(x: torch.Tensor) -> torch.Tensor:
    """Depth-to-space by 2 (the decoder's up-sampling)."""
    return F.pixel_shuffle(x, 2)
