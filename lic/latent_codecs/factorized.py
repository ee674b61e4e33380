"""ŷ coded with the factorized (non-parametric) prior of Ballé et al. 2018: one chunk, no side information.

    y ─round─► ŷ ─factorized prior (one density per channel)─► chunk
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ..entropy import FactorizedPrior


class FactorizedLatentCodec(nn.Module):
    multiple, chunks = 1, 1

    def __init__(self, M: int):
        super().__init__()
        self.prior = FactorizedPrior(M)

    def forward(self, y: torch.Tensor):
        y_hat, lik = self.prior(y)
        return y_hat, {"y": lik}

    def tables_current(self) -> bool:
        return self.prior.tables_current()

    def update(self) -> None:
        self.prior.update()

    def compress(self, y: torch.Tensor):
        y_hat = torch.round(y)
        return [self.prior.compress(y_hat)], y_hat, self.prior.table_bits(y_hat)

    def decompress(self, chunks: list[bytes], shape) -> torch.Tensor:
        return self.prior.decompress(chunks[0], shape)

    # -- encoder-side search (lic.models.refine) ---------------------------------------------------
    @torch.no_grad()
    def table_bits(self, y: torch.Tensor) -> float:
        """The ideal size in bits of what ``compress(y)`` would write, under the same integer tables."""
        return self.prior.table_bits(torch.round(y))

    def relaxed_bits(self, y: torch.Tensor, y_soft: torch.Tensor) -> torch.Tensor:
        """Differentiable bits of softly rounded latents ``y_soft`` (``y``: the latents they come from)."""
        return -torch.log2(self.prior.likelihood(y_soft)).sum()
