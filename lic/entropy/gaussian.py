"""Gaussian conditional with a scale table (Ballé et al. 2018; Minnen et al. 2018).

Each latent ``y`` is modelled as a zero-mean Gaussian convolved with a unit
uniform, with a scale predicted per element by a hyperprior:

    P(ŷ = v | σ) = Φ((v + ½)/σ) − Φ((v − ½)/σ)

For coding, σ is replaced by one of ``len(SCALES)`` log-spaced table scales,
chosen by an *integer* index computed by the model (see
:mod:`lic.layers.integer`).  The tables for all table scales are built once by
:meth:`update` in float64 and stored as integers with the weights, so the
probabilities the coder uses never depend on the machine that decodes.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn as nn

from ..layers.bound import lower_bound
from . import coder, tables as T

SCALE_MIN, SCALE_MAX, N_SCALES = 0.11, 256.0, 64
LOG_STEP = (math.log(SCALE_MAX) - math.log(SCALE_MIN)) / (N_SCALES - 1)
SCALES = [math.exp(math.log(SCALE_MIN) + i * LOG_STEP) for i in range(N_SCALES)]
TAIL = 1e-9
LIKELIHOOD_BOUND = 1e-9


def _std_cdf(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * torch.erfc(-x / math.sqrt(2))


def gaussian_likelihood(y: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    scale = lower_bound(scale, SCALE_MIN)  # a scale predicted too small can still learn to grow
    v = torch.abs(y)
    lik = _std_cdf((0.5 - v) / scale) - _std_cdf((-0.5 - v) / scale)
    return lower_bound(lik, LIKELIHOOD_BOUND)


def log_scale_thresholds() -> list[float]:
    """Boundaries between table scales in log space (midpoints); len = N_SCALES - 1."""
    return [math.log(SCALE_MIN) + (i + 0.5) * LOG_STEP for i in range(N_SCALES - 1)]


class GaussianConditional(nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("freqs", torch.zeros(0, 0, dtype=torch.int32))
        self.register_buffer("lengths", torch.zeros(0, dtype=torch.int32))
        self.register_buffer("offsets", torch.zeros(0, dtype=torch.int32))
        self.register_buffer("table_scales", torch.tensor(SCALES, dtype=torch.float32))

    def forward(self, y: torch.Tensor, scale: torch.Tensor):
        y_hat = y + torch.empty_like(y).uniform_(-0.5, 0.5) if self.training else torch.round(y)
        return y_hat, gaussian_likelihood(y_hat, scale)

    def tables_current(self) -> bool:
        return self.freqs.shape[0] == N_SCALES

    @torch.no_grad()
    def update(self) -> None:
        rows, offsets = [], []
        for s in SCALES:
            # support covers all but TAIL of the mass: |v| <= L
            L = 0
            while 2 * float(_std_cdf(torch.tensor((-L - 0.5) / s, dtype=torch.float64))) > TAIL:
                L += max(1, L // 8)
            v = torch.arange(-L, L + 1, dtype=torch.float64)
            pmf = (_std_cdf((v + 0.5) / s) - _std_cdf((v - 0.5) / s)).numpy()
            rows.append(T.quantize_pmf(pmf, 1.0 - pmf.sum()))
            offsets.append(-L)
        packed = T.pack_rows(rows, offsets)
        self.freqs, self.lengths, self.offsets = packed["freqs"], packed["lengths"], packed["offsets"]

    def _tables(self):
        """The integer tables, on the CPU where the coder runs (the module may be on a GPU with its model)."""
        return {"freqs": self.freqs.cpu(), "lengths": self.lengths.cpu(), "offsets": self.offsets.cpu()}

    def compress(self, y_hat: torch.Tensor, indexes: torch.Tensor) -> bytes:
        v = y_hat.detach().cpu().numpy().astype(np.int64)
        return coder.encode(v, indexes.cpu().numpy(), self._tables())

    def decompress(self, data: bytes, indexes: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(coder.decode(data, indexes.cpu().numpy(), self._tables())).float()

    def table_bits(self, y_hat: torch.Tensor, indexes: torch.Tensor) -> float:
        v = y_hat.detach().cpu().numpy().astype(np.int64).ravel()
        t = self._tables()
        return T.table_bits(v, indexes.cpu().numpy().ravel().astype(np.int64), t["freqs"].numpy(),
                            t["lengths"].numpy(), t["offsets"].numpy())
