"""Factorized (non-parametric) prior of Ballé et al. 2018, appendix 6.1.

Each channel ``c`` has its own learned cumulative function
``F_c(x) = sigmoid(f_K ∘ ... ∘ f_1 (x))`` with
``f_k(x) = h_k(x) + tanh(a_k) ⊙ tanh(h_k(x))``, ``h_k(x) = softplus(H_k) x + b_k``
(softplus keeps the map monotone).  The probability of an integer ``v`` is
``F_c(v + 1/2) - F_c(v - 1/2)``.

    training:  z ──(+ U(-½, ½))──► z̃ ──► likelihoods (for the rate term)
    coding:    z ──round──► ẑ ──► integer tables (built by update()) ──► constriction

The tables replace a learned "quantile" auxiliary loss: :meth:`update` finds
each channel's support directly by evaluating ``F_c`` on an integer grid.
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..layers.bound import lower_bound
from . import coder, tables as T

LIKELIHOOD_BOUND = 1e-9
TAIL = 1e-9  # escape mass left outside a channel's table
SEARCH = 4096  # integer range searched for each channel's support: [-SEARCH, SEARCH]
MAX_WIDTH = 2047


class FactorizedPrior(nn.Module):
    def __init__(self, channels: int, filters=(3, 3, 3), init_scale: float = 10.0):
        super().__init__()
        self.channels = channels
        dims = (1,) + tuple(filters) + (1,)
        scale = init_scale ** (1 / (len(filters) + 1))
        self.matrices = nn.ParameterList()
        self.biases = nn.ParameterList()
        self.factors = nn.ParameterList()
        for i in range(len(filters) + 1):
            init = float(np.log(np.expm1(1 / scale / dims[i + 1])))
            self.matrices.append(nn.Parameter(torch.full((channels, dims[i + 1], dims[i]), init)))
            self.biases.append(nn.Parameter(torch.rand(channels, dims[i + 1], 1) - 0.5))
            if i < len(filters):
                self.factors.append(nn.Parameter(torch.zeros(channels, dims[i + 1], 1)))
        # integer coding tables, filled by update(); stored with the weights
        self.register_buffer("freqs", torch.zeros(0, 0, dtype=torch.int32))
        self.register_buffer("lengths", torch.zeros(0, dtype=torch.int32))
        self.register_buffer("offsets", torch.zeros(0, dtype=torch.int32))
        self.register_buffer("tables_of", torch.zeros(32, dtype=torch.uint8))

    # -- density ---------------------------------------------------------
    def _logits_cdf(self, x: torch.Tensor, params=None) -> torch.Tensor:
        """x: (C, 1, n) -> logits of F_c at x, same shape."""
        mats, biases, factors = params or (list(self.matrices), list(self.biases), list(self.factors))
        for i, (m, b) in enumerate(zip(mats, biases)):
            x = torch.matmul(F.softplus(m), x) + b
            if i < len(factors):
                x = x + torch.tanh(factors[i]) * torch.tanh(x)
        return x

    def likelihood(self, v: torch.Tensor) -> torch.Tensor:
        """Probability mass of the unit interval around each value; v: (B, C, H, W)."""
        shape = v.shape
        x = v.transpose(0, 1).reshape(self.channels, 1, -1)
        lower = self._logits_cdf(x - 0.5)
        upper = self._logits_cdf(x + 0.5)
        sign = -torch.sign(lower + upper).detach()
        lik = torch.abs(torch.sigmoid(sign * upper) - torch.sigmoid(sign * lower))
        lik = lik.reshape(self.channels, shape[0], *shape[2:]).transpose(0, 1)
        return lower_bound(lik, LIKELIHOOD_BOUND)

    def forward(self, z: torch.Tensor):
        """Training: noisy ẑ and its likelihoods; evaluation: rounded ẑ."""
        z_hat = z + torch.empty_like(z).uniform_(-0.5, 0.5) if self.training else torch.round(z)
        return z_hat, self.likelihood(z_hat)

    # -- coding tables ---------------------------------------------------
    def _fingerprint(self) -> torch.Tensor:
        h = hashlib.sha256()
        for p in self.parameters():
            h.update(p.detach().cpu().float().numpy().tobytes())
        return torch.frombuffer(bytearray(h.digest()), dtype=torch.uint8).clone()

    def tables_current(self) -> bool:
        return self.freqs.numel() > 0 and bool(torch.equal(self.tables_of.cpu(), self._fingerprint()))

    @torch.no_grad()
    def update(self) -> None:
        """Build the integer coding tables from the current weights (float64, CPU)."""
        params = tuple([p.detach().cpu().double() for p in group]
                       for group in (self.matrices, self.biases, self.factors))
        grid = torch.arange(-SEARCH, SEARCH + 2, dtype=torch.float64) - 0.5  # cdf at v - 1/2
        x = grid.expand(self.channels, 1, -1)
        cdf = torch.sigmoid(self._logits_cdf(x, params)).squeeze(1).numpy()  # (C, 2*SEARCH+2)
        rows, offsets = [], []
        for c in range(self.channels):
            pmf = np.diff(cdf[c])  # pmf[i] = P(v = i - SEARCH)
            lo = int(np.searchsorted(cdf[c], TAIL / 2, side="right")) - 1
            hi = int(np.searchsorted(cdf[c], 1 - TAIL / 2, side="left")) - 1
            lo, hi = max(lo, 0), min(max(hi, lo), len(pmf) - 1)
            if hi - lo + 1 > MAX_WIDTH:
                mid = int(np.argmax(pmf))
                lo = max(0, mid - MAX_WIDTH // 2)
                hi = min(len(pmf) - 1, lo + MAX_WIDTH - 1)
            p = pmf[lo:hi + 1]
            rows.append(T.quantize_pmf(p, 1.0 - p.sum()))
            offsets.append(lo - SEARCH)
        packed = T.pack_rows(rows, offsets)
        self.freqs = packed["freqs"]
        self.lengths = packed["lengths"]
        self.offsets = packed["offsets"]
        self.tables_of = self._fingerprint()

    def _tables(self):
        """The integer tables, on the CPU where the coder runs (the module may be on a GPU with its model)."""
        return {"freqs": self.freqs.cpu(), "lengths": self.lengths.cpu(), "offsets": self.offsets.cpu()}

    def _rows(self, shape) -> np.ndarray:
        return np.broadcast_to(np.arange(self.channels).reshape(1, -1, 1, 1), shape)

    def compress(self, z_hat: torch.Tensor) -> bytes:
        """Code integer-valued ẑ (B, C, H, W)."""
        v = z_hat.detach().cpu().numpy().astype(np.int64)
        return coder.encode(v, self._rows(v.shape), self._tables())

    def decompress(self, data: bytes, shape) -> torch.Tensor:
        v = coder.decode(data, self._rows(tuple(shape)), self._tables())
        return torch.from_numpy(v).float()

    def table_bits(self, z_hat: torch.Tensor) -> float:
        v = z_hat.detach().cpu().numpy().astype(np.int64)
        t = self._tables()
        return T.table_bits(v.ravel(), self._rows(v.shape).ravel(), t["freqs"].numpy(), t["lengths"].numpy(),
                            t["offsets"].numpy())
