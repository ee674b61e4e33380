"""Generalized divisive normalization (Ballé, Laparra, Simoncelli, ICLR 2016).

    GDN:   y_i = x_i / sqrt(β_i + Σ_j γ_ij x_j²)
    IGDN:  y_i = x_i * sqrt(β_i + Σ_j γ_ij x_j²)

β and γ are kept non-negative by a squared reparametrization with a small
pedestal (as in tensorflow-compression), and lower-bounded for stability by
:func:`lic.layers.bound.lower_bound`, which keeps the gradient of an entry that
sits at (or below) its bound whenever the gradient would raise it: the
off-diagonal γ entries start *at* the bound, and with ``clamp_min`` most of them
stepped below it in the first steps and never came back (measured on the weights
trained so: 94–99.7 % of γ entries dead per layer, a nearly diagonal GDN).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .bound import lower_bound

_PEDESTAL = 2.0 ** -36


class GDN(nn.Module):
    exact = False  # evaluated in exact arithmetic (lic.layers.exact; set on exact copies only)

    def __init__(self, channels: int, inverse: bool = False, beta_min: float = 1e-6, gamma_init: float = 0.1):
        super().__init__()
        self.inverse = inverse
        self.beta_bound = (beta_min + _PEDESTAL) ** 0.5
        self.gamma_bound = _PEDESTAL ** 0.5
        self.beta = nn.Parameter(torch.sqrt(torch.ones(channels) + _PEDESTAL))
        self.gamma = nn.Parameter(torch.sqrt(gamma_init * torch.eye(channels) + _PEDESTAL))

    @torch.no_grad()
    def settle_bounds(self) -> None:
        """Raise β and γ entries lying below their bounds to the bounds: the same function (forward
        sees the bound either way), but those entries can move again from the first step instead of
        first climbing back (weights trained before :mod:`lic.layers.bound` have many such entries)."""
        self.beta.clamp_(min=self.beta_bound)
        self.gamma.clamp_(min=self.gamma_bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.exact:
            return self._exact(x)
        beta = lower_bound(self.beta, self.beta_bound) ** 2 - _PEDESTAL
        gamma = lower_bound(self.gamma, self.gamma_bound) ** 2 - _PEDESTAL
        c = gamma.shape[0]
        norm = F.conv2d(x * x, gamma.view(c, c, 1, 1), beta)
        if torch.is_grad_enabled():
            return x * torch.sqrt(norm) if self.inverse else x * torch.rsqrt(norm)
        # coding: in place on the fresh ``norm`` (same values, two fewer full-size tensors to allocate)
        return (norm.sqrt_() if self.inverse else norm.rsqrt_()).mul_(x)

    def _exact(self, x: torch.Tensor) -> torch.Tensor:
        """The same function in exact arithmetic (:mod:`lic.layers.exact`): β, γ on the weight grid, x² on
        the activation grid, the γ sums exact in float64, then correctly rounded sqrt, × and ÷."""
        from .exact import A_FRAC, W_FRAC, input_limit, tap_conv, to_grid  # A_FRAC even: see x² below

        b = lower_bound(self.beta, self.beta_bound).double()
        g = lower_bound(self.gamma, self.gamma_bound).double()
        beta = to_grid(b * b - _PEDESTAL, W_FRAC)  # b * b: a plain product (no pow kernel)
        gamma = to_grid(g * g - _PEDESTAL, W_FRAC)
        x = x.double()
        # x² in grid units: (x·2**(A/2))² = x²·2**A, rounded once; γ carries the 2**-A (exact, a power of two)
        sq = x * 2.0 ** (A_FRAC // 2)
        sq = sq.mul_(sq).round_().clamp_(max=input_limit(gamma.sum(1), beta) * 2 ** A_FRAC)
        c = gamma.shape[0]
        norm = torch.sqrt(tap_conv(sq, (gamma * 2.0 ** -A_FRAC).view(c, c, 1, 1), beta, (0, 0, 0, 0)))
        return x * norm if self.inverse else x / norm


def IGDN(channels: int) -> GDN:
    return GDN(channels, inverse=True)
